"""Silero VAD over many clips, with either of the models the silero-vad wheel ships.

``backend="onnx"`` (the default): Silero's *sequence* ONNX model run by ONNX Runtime
(``load_silero_vad(sequence=True)``): one call per 512 windows (16.4 s) instead of one per
32 ms window, the recurrent state carried between calls, so a clip of any length is stepped
whole, as the stock call steps it. ``backend="jit"``: the TorchScript model, which takes a batch
dimension (``model(x, sr)`` with ``x`` of shape (B, 512) keeps one recurrent state per row):
:class:`SileroSegmenter` steps a batch of clips (sorted by length, zero-padded) through it
together. Either way each clip's probabilities go to Silero's own
``get_speech_timestamps_from_probs``, so the segments are those of the stock per-file
``get_speech_timestamps`` (the same windows, the same zero padding of the last window, the same
post-processing), only faster.

The two models' probabilities differ by at most ~3e-5 (float arithmetic); on all 2,632 shared
clips the timestamps were identical and the sequence model 5.6x faster than the JIT model clip by
clip (508x against 91x real time, one thread; ``tests/test_vad.py`` holds the agreement).
"""

from __future__ import annotations

import numpy as np
import torch

from src.data.audio import SAMPLE_RATE_HZ
from src.vad.params import VadParams

WINDOW_SAMPLES = 512  # Silero's window at 16 kHz


def load_silero_model(backend: str = "jit"):
    """A model shipped in the silero-vad wheel: ``jit`` (TorchScript, the streaming model the live
    stream steps window by window) or ``onnx`` (the sequence ONNX model, ``SileroVADSequence``).

    Importing ``silero_vad`` calls ``torch.set_num_threads(1)``; the thread count the
    caller had is put back.
    """
    threads = torch.get_num_threads()
    from silero_vad import load_silero_vad

    model = load_silero_vad(sequence=True) if backend == "onnx" else load_silero_vad()
    torch.set_num_threads(threads)
    return model


def is_sequence_model(model) -> bool:
    """Whether ``model`` is Silero's sequence ONNX model (it has ``audio_forward`` and no batch
    dimension) rather than the JIT one."""
    return hasattr(model, "session") and hasattr(model, "audio_forward")


class SileroSegmenter:
    """Finds speech in 16 kHz mono clips.

    ``backend="onnx"`` (or an ONNX sequence ``model``): each clip stepped whole through the
    sequence model, 512 windows per call (``batch_size``, ``long_chunk_s`` and ``warmup_s`` are not
    used): the stock call's probabilities to ~3e-5, for a one-hour file as for a short clip.

    ``backend="jit"`` (or a JIT ``model``): many clips per model call. A clip longer than
    ``long_chunk_s`` is cut into pieces of that length, each stepped through the model as one more
    row of a batch after ``warmup_s`` of the audio before it (whose probabilities are thrown away),
    so a one-hour file runs as fast per second as a batch of short clips (VAD of an 8.4-minute real
    recording: 76x real time whole, 349x in pieces, one thread). The recurrent state mostly forgets
    within seconds but not always, so the pieces' segments are close to the stock call's, not
    identical: 99.8 % of the samples get the same speech / non-speech decision on that recording
    (``tests/test_vad.py``). Clips up to ``long_chunk_s + warmup_s`` are stepped whole, exactly as
    the stock call; ``long_chunk_s=None`` steps every clip whole.
    """

    def __init__(self, params: VadParams = VadParams(), batch_size: int = 32, model=None,
                 long_chunk_s: float | None = 30.0, warmup_s: float = 5.0, backend: str = "onnx",
                 retry_threshold: float | None = None):
        self.params = params
        self.retry_threshold = retry_threshold  # see VadSettings.retry_threshold and timestamps()
        self.batch_size = batch_size
        self.model = model if model is not None else load_silero_model(backend)
        self.backend = "onnx" if is_sequence_model(self.model) else "jit"
        self.long_chunk_windows = None if long_chunk_s is None else int(long_chunk_s * SAMPLE_RATE_HZ) // WINDOW_SAMPLES
        self.warmup_windows = int(warmup_s * SAMPLE_RATE_HZ) // WINDOW_SAMPLES

    def speech_probs(self, waves: list[np.ndarray]) -> list[np.ndarray]:
        """Per-window speech probabilities of each clip (one per 512 samples, 32 ms)."""
        if self.backend == "onnx":
            return [self.model.audio_forward(np.ascontiguousarray(w, np.float32)) if len(w)
                    else np.zeros(0, np.float32) for w in waves]
        chunk = self.long_chunk_windows
        if chunk is None or all(len(w) <= (chunk + self.warmup_windows) * WINDOW_SAMPLES for w in waves):
            return self._batched_probs(waves)
        pieces: list[np.ndarray] = []
        plan: list[list[tuple[int, int, int]]] = []  # per clip: (piece index, windows to skip, windows to keep)
        for w in waves:
            n = -(-len(w) // WINDOW_SAMPLES)
            if n <= chunk + self.warmup_windows:
                plan.append([(len(pieces), 0, n)])
                pieces.append(w)
                continue
            parts = []
            for start in range(0, n, chunk):
                lead = min(self.warmup_windows, start)
                lo, hi = (start - lead) * WINDOW_SAMPLES, min(len(w), (start + chunk) * WINDOW_SAMPLES)
                parts.append((len(pieces), lead, min(chunk, n - start)))
                pieces.append(w[lo:hi])
            plan.append(parts)
        probs = self._batched_probs(pieces)
        return [np.concatenate([probs[i][skip:skip + keep] for i, skip, keep in parts]) for parts in plan]

    @torch.inference_mode()
    def _batched_probs(self, waves: list[np.ndarray]) -> list[np.ndarray]:
        """Each wave stepped whole, as rows of length-sorted, zero-padded batches."""
        out: list[np.ndarray] = [np.zeros(0, np.float32)] * len(waves)
        order = sorted(range(len(waves)), key=lambda i: len(waves[i]))
        for start in range(0, len(order), self.batch_size):
            idx = [i for i in order[start:start + self.batch_size] if len(waves[i])]
            if not idx:
                continue
            n_windows = [-(-len(waves[i]) // WINDOW_SAMPLES) for i in idx]
            x = torch.zeros(len(idx), max(n_windows) * WINDOW_SAMPLES)
            for row, i in enumerate(idx):
                x[row, : len(waves[i])] = torch.from_numpy(np.ascontiguousarray(waves[i], np.float32))
            self.model.reset_states()
            probs = torch.cat([self.model(x[:, k * WINDOW_SAMPLES:(k + 1) * WINDOW_SAMPLES], SAMPLE_RATE_HZ)
                               for k in range(max(n_windows))], dim=1).numpy()
            for row, i in enumerate(idx):
                out[i] = probs[row, : n_windows[row]]
        return out

    def timestamps(self, waves: list[np.ndarray], retry_below_s: float | None = None
                   ) -> list[list[dict[str, int]]]:
        """Speech segments of each clip as Silero gives them: ``[{'start': n, 'end': n}]`` in samples.

        ``retry_below_s``: a clip with less speech than this is looked at again at ``retry_threshold``
        (from the same probabilities, no second model run), when the segmenter has one."""
        p = self.params
        out = []
        for w, probs in zip(waves, self.speech_probs(waves)):
            segments = _segments(probs, len(w), p, p.threshold)
            if (retry_below_s is not None and self.retry_threshold is not None
                    and speech_samples(segments) < retry_below_s * SAMPLE_RATE_HZ):
                segments = _segments(probs, len(w), p, self.retry_threshold)
            out.append(segments)
        return out

    def speech_only(self, waves: list[np.ndarray]) -> list[np.ndarray]:
        """Each clip's speech segments joined into one signal (empty when there is none)."""
        return [join_segments(w, ts) for w, ts in zip(waves, self.timestamps(waves))]


def _segments(probs: np.ndarray, n: int, p: VadParams, threshold: float) -> list[dict[str, int]]:
    from silero_vad import get_speech_timestamps_from_probs

    neg = p.neg_threshold if threshold == p.threshold else None  # a retry: Silero's default under its threshold
    return get_speech_timestamps_from_probs(
        probs.tolist(), sampling_rate=SAMPLE_RATE_HZ, threshold=threshold, neg_threshold=neg,
        min_speech_duration_ms=p.min_speech_duration_ms, max_speech_duration_s=p.max_speech_duration_s,
        min_silence_duration_ms=p.min_silence_duration_ms, speech_pad_ms=p.speech_pad_ms, audio_length_samples=n)


def speech_samples(segments: list[dict[str, int]]) -> int:
    """Samples of speech in ``segments``."""
    return sum(s["end"] - s["start"] for s in segments)


def join_segments(wave: np.ndarray, segments: list[dict[str, int]]) -> np.ndarray:
    """Concatenate ``wave[start:end]`` over ``segments`` (sample indices)."""
    if not segments:
        return np.zeros(0, np.float32)
    return np.concatenate([wave[s["start"]:s["end"]] for s in segments]).astype(np.float32, copy=False)
