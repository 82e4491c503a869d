"""``StreamingGender``: gender moment by moment from a live stream of audio chunks.

A stateful callable in the style of Silero's ``VADIterator``::

    stream = StreamingGender(GenderPipeline.from_run(run_dir))
    for chunk in chunks:                 # 16 kHz mono float32, any chunk size
        event = stream(chunk)            # the latest decision, or None
        if event and event.changed:
            print(f"{event.t_s:5.1f}s  {event.label}")
    stream.reset()                       # before a new, unrelated stream

Silero's ``VADIterator`` marks each 32 ms block as speech or not; a ring of the last
``window_s`` of blocks is kept; every ``hop_s`` the speech blocks in the ring are
embedded and scored (only those since the last pause of ``pause_split_s`` once there
are ``min_speech_s`` of them, so a new turn is not diluted by the previous speaker).
Hysteresis keeps the label from flickering: a new speaker label must win
``change_hops`` decisions in a row unless it is very sure (``sure_change_p``), and the
label turns ``unknown`` only after ``silence_unknown_s`` without enough speech.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
import torch

from src.data.audio import SAMPLE_RATE_HZ
from src.inference.params import QualityParams, StreamParams
from src.inference.pipeline import MAJORITY_SHARE, GenderPipeline, majority_label
from src.inference.quality import assess
from src.labels import UNKNOWN
from src.vad.silero import WINDOW_SAMPLES, load_silero_model


@dataclass
class StreamEvent:
    """One decision. ``t_s`` is the stream time (s) at the end of the hop."""

    t_s: float
    label: str
    p_male: float | None
    speech_s: float
    changed: bool = False
    previous: str | None = None
    p_label: float | None = None  # the held label's probability, from the last decision that supported it
    heard: str | None = None  # this hop's own label (None: silence); differs from label while a change waits
    quality: tuple[str, ...] = ()  # what capped this decision's confidence (clipped, noisy ...; see quality.py)

    @property
    def is_speech(self) -> bool:
        """Whether this hop had enough speech to be scored (else the label is held through silence)."""
        return self.p_male is not None

    def text(self) -> str:
        """One line that cannot contradict itself: the held label with its own probability, then
        what this hop heard when it differs, or ``(silence)``::

            12.6s  Female 0.94
            12.9s  Female 0.94   (hearing male 0.81)
            13.2s  Female 0.94   (silence)
        """
        head = f"{self.t_s:6.1f}s  {self.label.capitalize()}"
        if self.p_label is not None and self.label != UNKNOWN:
            head += f" {self.p_label:.2f}"
        if not self.is_speech:
            return f"{head}   (silence)"
        if self.heard == UNKNOWN and self.label != UNKNOWN:
            return f"{head}   (not sure: p(male) {self.p_male:.2f})"
        if self.heard != self.label and self.heard != UNKNOWN:
            p = max(self.p_male, 1.0 - self.p_male)
            return f"{head}   (hearing {self.heard} {p:.2f})"
        return head


QUALITY_WINDOW_S = 10.0  # each decision is capped by the quality of the last this many seconds


class StreamingGender:
    """Feed 16 kHz mono float32 chunks; get :class:`StreamEvent` decisions. Each decision's
    confidence is capped by the quality (:func:`~src.inference.quality.assess`) of the last
    :data:`QUALITY_WINDOW_S` of audio, at its native rate when :meth:`feed` is given it."""

    def __init__(self, pipeline: GenderPipeline, params: StreamParams = StreamParams(), vad_model=None,
                 quality_params: QualityParams | None = None):
        from silero_vad import VADIterator

        self.pipeline = pipeline
        self.params = params
        self.quality_params = quality_params or getattr(pipeline, "quality_params", QualityParams())
        self.vad = VADIterator(vad_model if vad_model is not None else load_silero_model(),
                               threshold=params.vad_threshold, sampling_rate=SAMPLE_RATE_HZ,
                               min_silence_duration_ms=params.vad_min_silence_ms)
        self.ring: deque[tuple[np.ndarray, bool, int]] = deque(maxlen=max(1, round(params.window_s * SAMPLE_RATE_HZ
                                                                                 / WINDOW_SAMPLES)))
        self.reset()

    def reset(self) -> None:
        """Forget everything heard so far (a new stream starts at t = 0)."""
        self.vad.reset_states()
        self.ring.clear()
        self._pending = np.zeros(0, np.float32)
        self._segment = 0  # counts speech stretches separated by pauses of pause_split_s
        self._quiet_s = 0.0
        self._samples = 0
        self._since_hop = 0
        self._silence_s = 0.0
        self.label = UNKNOWN
        self.speaking_time_s: dict[str, float] = {}  # speech hops per held label, seconds
        self._label_p: float | None = None
        self._candidate: str | None = None
        self._streak = 0
        self._native: deque[np.ndarray] = deque()  # the last QUALITY_WINDOW_S of audio at its own rate
        self._native_rate, self._native_len = SAMPLE_RATE_HZ, 0

    def __call__(self, chunk: np.ndarray) -> StreamEvent | None:
        """Feed a chunk; return its last change event if any, else its last decision, else None."""
        events = self.feed(chunk)
        changes = [e for e in events if e.changed]
        return changes[-1] if changes else (events[-1] if events else None)

    def feed(self, chunk: np.ndarray, native: np.ndarray | None = None, native_rate_hz: int | None = None
             ) -> list[StreamEvent]:
        """Feed a 16 kHz chunk of any length (and, if it was resampled, the same audio at its own rate
        as ``native``, for the quality check); return every decision it completed."""
        chunk = np.asarray(chunk, np.float32).reshape(-1)
        if not np.isfinite(chunk).all():
            chunk = np.nan_to_num(chunk, nan=0.0, posinf=1.0, neginf=-1.0)
        self._keep_native(chunk if native is None else np.asarray(native, np.float32).reshape(-1),
                          SAMPLE_RATE_HZ if native is None else int(native_rate_hz))
        buf = np.concatenate([self._pending, chunk])
        n_blocks = len(buf) // WINDOW_SAMPLES
        self._pending = buf[n_blocks * WINDOW_SAMPLES:]
        hop = int(self.params.hop_s * SAMPLE_RATE_HZ)
        events = []
        for b in range(n_blocks):
            block = buf[b * WINDOW_SAMPLES:(b + 1) * WINDOW_SAMPLES]
            with torch.inference_mode():
                self.vad(torch.from_numpy(block))
            self.ring.append((block, bool(self.vad.triggered), self._track_segments(bool(self.vad.triggered))))
            self._samples += WINDOW_SAMPLES
            self._since_hop += WINDOW_SAMPLES
            if self._since_hop >= hop:
                self._since_hop -= hop
                events.append(self._decide())
        return events

    def _keep_native(self, x: np.ndarray, rate_hz: int) -> None:
        if rate_hz != self._native_rate:
            self._native.clear()
            self._native_rate, self._native_len = rate_hz, 0
        self._native.append(x)
        self._native_len += len(x)
        while len(self._native) > 1 and self._native_len - len(self._native[0]) >= QUALITY_WINDOW_S * rate_hz:
            self._native_len -= len(self._native.popleft())

    def summary(self) -> tuple[str, dict[str, float]]:
        """The stream so far: its answer (:func:`stream_verdict` of the speaking time, not the last
        decision) and speaking time per label in seconds, to 0.01 s (speech hops only, by the
        label held at each, as ``predict`` counts it)."""
        return stream_verdict(self.speaking_time_s), {k: round(v, 2) for k, v in self.speaking_time_s.items()}

    def _track_segments(self, is_speech: bool) -> int:
        """The id of the speech stretch this block belongs to (a long enough pause starts a new one)."""
        block_s = WINDOW_SAMPLES / SAMPLE_RATE_HZ
        if not is_speech:
            self._quiet_s += block_s
        else:
            if self.params.pause_split_s and self._quiet_s >= self.params.pause_split_s:
                self._segment += 1
            self._quiet_s = 0.0
        return self._segment

    def _ring_speech(self) -> list[np.ndarray]:
        """Speech blocks to score: those since the last pause if there are enough, else all in the ring."""
        speech = [(blk, seg) for blk, is_speech, seg in self.ring if is_speech]
        if speech and self.params.pause_split_s:
            recent = [blk for blk, seg in speech if seg == speech[-1][1]]
            if len(recent) * WINDOW_SAMPLES >= self.params.min_speech_s * SAMPLE_RATE_HZ:
                return recent
        return [blk for blk, _ in speech]

    def _decide(self) -> StreamEvent:
        """Score the speech in the ring and update the label with hysteresis."""
        p = self.params
        t_s = self._samples / SAMPLE_RATE_HZ
        speech = self._ring_speech()
        speech_s = len(speech) * WINDOW_SAMPLES / SAMPLE_RATE_HZ
        previous = self.label
        if speech_s < p.min_speech_s:
            self._silence_s += p.hop_s
            self._candidate, self._streak = None, 0
            if self._silence_s >= p.silence_unknown_s:
                self.label, self._label_p = UNKNOWN, None
            return StreamEvent(t_s, self.label, None, speech_s, self.label != previous, previous, self._label_p)
        self._silence_s = 0.0
        quality = assess(np.concatenate(self._native), self._native_rate, self.quality_params)
        p_raw, shifted = self.pipeline.p_male_shifted([np.concatenate(speech)])
        if shifted[0]:  # the model's shift gate on this window (1.5 s windows: 0 of 157 natural flagged)
            quality = quality.with_note("pitch_shifted", self.quality_params.pitch_shifted_cap)
        p_male = quality.shrink(float(p_raw[0]))
        new = self.pipeline.label_for(p_male)
        if new == self.label or new == UNKNOWN:
            self._candidate, self._streak = None, 0
        else:
            self._streak = self._streak + 1 if new == self._candidate else 1
            self._candidate = new
            sure = max(p_male, 1.0 - p_male) >= p.sure_change_p
            if self.label == UNKNOWN or sure or self._streak >= p.change_hops:
                self.label, self._candidate, self._streak = new, None, 0
        hop_blocks = max(1, round(p.hop_s * SAMPLE_RATE_HZ / WINDOW_SAMPLES))
        if np.mean([is_speech for _, is_speech, _ in list(self.ring)[-hop_blocks:]]) >= 0.5:
            # this hop itself is speech (as predict's timeline counts a hop), not a pause after it
            self.speaking_time_s[self.label] = round(self.speaking_time_s.get(self.label, 0.0) + p.hop_s, 6)
        if new == self.label and new != UNKNOWN:
            self._label_p = round(p_male if new == "male" else 1.0 - p_male, 4)
        return StreamEvent(t_s, self.label, p_male, speech_s, self.label != previous, previous, self._label_p, new,
                           quality.notes)


def stream_verdict(speaking_time_s: dict[str, float], majority_share: float = MAJORITY_SHARE) -> str:
    """The whole stream's answer from its speaking time per label (not its last decision): the same
    rule as a recording's (:func:`src.inference.pipeline.majority_label`)."""
    return majority_label(speaking_time_s, majority_share)
