"""``GenderPipeline``: the one inference object (VAD -> encoder -> classifier -> calibrated answer).

    from src.inference.pipeline import GenderPipeline
    pipe = GenderPipeline.from_run("runs/resemblyzer-2026-11-21_12-00-00")
    result = pipe("call.wav", timeline=True)
    result.label, result.p_male, result.timeline

``predict``, ``stream`` and the web service all use it; it holds no training code.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from src.data.audio import SAMPLE_RATE_HZ, AudioError, decode_audio, wave_from_array, without_dc
from src.encoders.base import Encoder, Waves, embed_slices, embed_with_slices
from src.inference.params import QualityParams, TimelineParams, check_unknown_below
from src.inference.quality import Quality, QualityMeter, assess
from src.inference.run_folder import RunFolder
from src.labels import CLASSES, MIXED, UNKNOWN
from src.models.checkpoint import TrainedClassifier
from src.vad.silero import SileroSegmenter, join_segments, speech_samples


@dataclass
class Segment:
    """A stretch of speech with one label; times in seconds from the start of the file."""

    start_s: float
    end_s: float
    label: str
    p_male: float
    speech_s: float | None = None  # speech in it (a segment may span a short pause); None: end_s - start_s


@dataclass
class Voices:
    """A recording's timeline and the evidence for two voices in it.

    ``hops`` are the scored hops (``hop_s`` apart), ``p_male`` their smoothed p(male) and ``speaker``
    their L2-normalised speaker embeddings. ``side`` splits the hops in two by speaker (2-means on
    the embeddings), ``distance`` is the cosine distance between the two sides' mean embeddings and
    ``p_voice`` each side's p(male) from all of its speech at once and ``voice_labels`` each side's
    answer by the pipeline's own rule (its threshold and ``unknown_below``); both are computed only
    when the sides pass the size and distance gates, else None.
    """

    segments: list[Segment]
    hops: np.ndarray
    p_male: np.ndarray
    speaker: np.ndarray
    hop_s: float
    side: np.ndarray | None = None
    distance: float = float("nan")
    p_voice: tuple[float, float] | None = None
    voice_labels: tuple[str, str] | None = None

    def side_s(self) -> tuple[float, float]:
        """Seconds of scored hops on each side."""
        if self.side is None:
            return 0.0, 0.0
        n1 = int(self.side.sum())
        return (len(self.side) - n1) * self.hop_s, n1 * self.hop_s

    def gates(self, params: TimelineParams) -> bool:
        """Maybe two speakers: each side ``min_voice_s`` of hops, the sides at least the smaller of
        ``min_voice_distance`` and ``sure_voice_distance`` apart (each side's answer decides the rest)."""
        return (min(self.side_s()) >= max(params.min_voice_s, self.hop_s)
                and self.distance >= min(params.min_voice_distance, params.sure_voice_distance))

    def two_voices(self, params: TimelineParams) -> bool:
        """Both voices established: two speakers (:meth:`gates`), one side answered female and the
        other male, each from all of its own speech (not ``unknown``), and the sides either
        ``min_voice_distance`` apart or each answered with at least ``sure_voice_p``. One voice whose
        windows waver is one speaker; two voices of one gender are that gender."""
        if self.voice_labels is None or self.p_voice is None or not self.gates(params):
            return False
        sure = min(max(p, 1.0 - p) for p in self.p_voice) >= params.sure_voice_p
        return (sorted(self.voice_labels) == ["female", "male"]
                and (self.distance >= params.min_voice_distance or sure))


def two_way_split(v: np.ndarray, iterations: int = 20, init: np.ndarray | None = None) -> np.ndarray:
    """0/1 per row of ``v`` (L2-normalised vectors): spherical 2-means, started from the row
    farthest from the mean and the row farthest from that one (deterministic) and, when ``init``
    (0/1 per row, e.g. the hops' labels) is given, from that split as well; the tighter result
    (the larger sum of each row's cosine to its side's mean direction) wins."""
    a = v[int(np.argmin(v @ v.mean(axis=0)))]
    best = _two_means(v, a, v[int(np.argmin(v @ a))], iterations)
    if init is not None and 0 < int(init.sum()) < len(init):
        other = _two_means(v, *_directions(v, init), iterations)
        if _tightness(v, other) > _tightness(v, best):
            best = other
    return best


def _directions(v: np.ndarray, side: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = v[side == 0].mean(axis=0), v[side == 1].mean(axis=0)
    return a / max(np.linalg.norm(a), 1e-12), b / max(np.linalg.norm(b), 1e-12)


def _tightness(v: np.ndarray, side: np.ndarray) -> float:
    return float(sum(np.linalg.norm(v[side == k].sum(axis=0)) for k in (0, 1) if (side == k).any()))


def _two_means(v: np.ndarray, a: np.ndarray, b: np.ndarray, iterations: int) -> np.ndarray:
    side = np.zeros(len(v), int)
    for _ in range(iterations):
        new = (v @ b > v @ a).astype(int)
        if new.min() == new.max():
            return new
        a, b = _directions(v, new)
        if (new == side).all():
            break
        side = new
    return side


@dataclass
class GenderResult:
    """The answer for one recording.

    ``label`` is ``female``, ``male``, ``mixed`` (with a timeline: two voices, each established,
    see :meth:`Voices.two_voices`; ``p_male`` stays the whole recording's and ``speaking_time_s``
    says how much of each) or ``unknown``. ``status`` says why: ``ok`` (an answer), ``unknown`` (speech,
    but confidence under
    the pipeline's ``unknown_below`` or a voice unlike the model's training data: ``reason`` says
    which), ``no_speech`` or ``error`` (the file could not be read: ``reason``). ``age_group`` (child / teen / adult)
    and its calibrated probability come from models trained where ages exist; ``age_band`` and its
    (uncalibrated) probability from end-to-end runs with an age head. ``model`` names the model
    that answered. ``quality`` names what makes the recording untrustworthy (``clipped``,
    ``short_speech``, ``noisy``, ``narrowband``, ``quiet``, ``truncated``, ``pitch_shifted``; see
    :mod:`src.inference.quality`);
    the probabilities are already capped for it, down to ``unknown``.
    """

    label: str
    p_female: float | None
    p_male: float | None
    speech_s: float
    duration_s: float
    status: str = "ok"
    reason: str | None = None
    age_band: str | None = None
    p_age_band: float | None = None
    timeline: list[Segment] = field(default_factory=list)
    speaking_time_s: dict[str, float] = field(default_factory=dict)
    path: str | None = None
    age_group: str | None = None
    p_age_group: float | None = None
    model: str | None = None
    quality: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


class GenderPipeline:
    """VAD, encoder and trained classifier behind one call.

    Args:
        classifier: the trained head (normalisation, temperature, threshold inside).
        encoder: must be the encoder the classifier was trained on.
        segmenter: Silero VAD.
        unknown_below: answer ``unknown`` when the calibrated top probability is under this
            (``None``: the model's own, set when it was trained).
        min_speech_s: less speech than this is ``no_speech``.
        age_classifier: an age-band head on the same features (end-to-end runs with one), or None.
        model_name: what to call the model in every answer (``GenderResult.model``).
        quality_params: when audio is too degraded for a confident answer (:mod:`src.inference.quality`).
    """

    def __init__(self, classifier: TrainedClassifier, encoder: Encoder, segmenter: SileroSegmenter,
                 unknown_below: float | None = None, min_speech_s: float = 0.25,
                 timeline_params: TimelineParams = TimelineParams(), max_duration_s: float = 4 * 3600.0,
                 age_classifier: TrainedClassifier | None = None, model_name: str | None = None,
                 quality_params: QualityParams = QualityParams()):
        self.quality_params = quality_params
        self.classifier = classifier
        self.age_classifier = age_classifier
        self.encoder = encoder
        self.segmenter = segmenter
        self.model_name = model_name
        self.unknown_below = classifier.unknown_below if unknown_below is None else check_unknown_below(unknown_below)
        self._own_thresholds = unknown_below is None  # the model's threshold per predicted age group
        self.min_speech_s = min_speech_s
        self.timeline_params = timeline_params
        self.max_duration_s = max_duration_s

    @classmethod
    def from_run(cls, run: RunFolder | str | Path, device: str = "cpu", **kwargs) -> GenderPipeline:
        """Build the pipeline a finished run folder describes (its encoder, VAD settings and checkpoint;
        an end-to-end run's trunk is the encoder, its gender head the classifier)."""
        folder = RunFolder.open(run)
        kwargs.setdefault("model_name", folder.name)
        rm = folder.load(device=device)
        return cls(rm.classifier, rm.encoder, rm.segmenter(), age_classifier=rm.age_classifier, **kwargs)

    @classmethod
    def from_pretrained(cls, name: str = "default", device: str = "cpu", **kwargs) -> GenderPipeline:
        """The model shipped with the toolkit (``models/<name>/``: a head and its normalisation; the
        encoders' weights come from their wheels). Its card is ``models/<name>/MODEL_CARD.md``."""
        folder = RunFolder.shipped(name)
        kwargs.setdefault("model_name", folder.name)  # as predict, serve and stream name it (models/<name>)
        return cls.from_run(folder, device=device, **kwargs)

    @staticmethod
    def classes() -> tuple[str, ...]:
        """The labels the classifier decides between (``unknown`` is the answer when it cannot)."""
        return CLASSES

    def label_for(self, p_male: float, unknown_below: float | None = None) -> str:
        """``male``/``female`` by the trained threshold, ``unknown`` when the top probability is under
        ``unknown_below`` (default: the pipeline's)."""
        if max(p_male, 1.0 - p_male) < (self.unknown_below if unknown_below is None else unknown_below):
            return UNKNOWN
        return "male" if p_male >= self.classifier.threshold else "female"

    def p_male(self, speech: list[np.ndarray]) -> np.ndarray:
        """Calibrated p(male) for each speech signal (16 kHz mono); each signal's DC offset is
        removed first (an offset of 0.3 turned a sure 0.97 into an unsure 0.57 with Resemblyzer)."""
        return self.p_male_shifted(speech)[0]

    def p_male_shifted(self, speech: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`p_male` of each speech signal and whether the model's shift gate calls it
        pitch-shifted (a man raised an octave; all False for a model without a gate)."""
        if not speech:
            return np.zeros(0), np.zeros(0, bool)
        x = self.features(speech)
        return self.classifier.predict_proba(x)[:, CLASSES.index("male")], self.classifier.shifted(x)

    def features(self, speech: list[np.ndarray]) -> np.ndarray:
        """The encoder's vectors of speech signals, each signal's DC offset removed first."""
        return self.encoder.embed([without_dc(s) for s in speech])

    def __call__(self, audio, sample_rate_hz: int | None = None, timeline: bool = True,
                 channel: int | None = None) -> GenderResult:
        """Classify a recording: a file path (any container libsndfile or FFmpeg decodes), or an
        array in any form :func:`src.data.audio.wave_from_array` takes (a bare array is 16 kHz unless
        ``sample_rate_hz`` says otherwise; int16/int32/uint8 samples are scaled; channels averaged,
        or ``channel`` alone). ``timeline`` (on, as on every surface) adds the segments per voice and
        decides ``mixed``.

        Bad audio (unreadable, empty, NaN ...) gives ``status="error"`` and never raises; an argument
        that is not audio at all (a 3-D array, a string of bytes, float samples far outside [-1, 1]
        ...) raises one ``ValueError`` saying which forms are taken.
        """
        path = str(audio) if isinstance(audio, (str, Path)) else None
        truncated = False
        try:
            if path is not None:
                decoded = decode_audio(audio, SAMPLE_RATE_HZ, self.max_duration_s, channel, native=self.quality_meter)
                wave, truncated, quality = decoded.wave, decoded.truncated, decoded.native.result()
            else:
                wave, quality = wave_from_array(audio, sample_rate_hz, channel), None  # assessed at 16 kHz
            if not np.isfinite(wave).all():
                raise AudioError("non_finite", "NaN or infinite samples")
        except AudioError as e:
            return GenderResult(UNKNOWN, None, None, 0.0, 0.0, status="error", reason=e.reason, path=path,
                                model=self.model_name)
        result = self._classify(wave, timeline, quality, own=path is not None)
        result.path = path
        if truncated:  # the file ends before its header says: the answer is for what decoded
            result.quality.append("truncated")
        return result

    def quality_meter(self, sample_rate_hz: int) -> QualityMeter:
        """The quality check fed block by block at a file's own rate (``decode_audio(native=...)``)."""
        return QualityMeter(int(sample_rate_hz), self.quality_params)

    def classify_wave(self, wave: np.ndarray, timeline: bool = False, quality: Quality | None = None) -> GenderResult:
        """Classify a 16 kHz mono waveform: whole-recording answer, and optionally a timeline.

        ``quality`` is the assessment of the recording at its native rate (:func:`assess`, before it
        was resampled); ``None``: assessed here, on the 16 kHz wave. Its cap applies to the answer
        and to every timeline segment."""
        return self._classify(wave, timeline, quality, own=False)

    def _classify(self, wave: np.ndarray, timeline: bool, quality: Quality | None, own: bool) -> GenderResult:
        """:meth:`classify_wave`; ``own``: ``wave`` is this call's to overwrite (a file decoded by
        :meth:`__call__`), so the speech is gathered into its own buffer instead of a copy.

        Memory (issue 24): the only arrays as long as the recording are ``wave`` and its joined
        speech (DC offset removed once, shared by the whole answer and the timeline; in ``wave``'s
        own buffer when ``own``); the timeline's windows are read from it one at a time
        (:class:`~src.encoders.base.Waves`) and the encoders work on long speech piece by piece."""
        n_samples = len(wave)
        duration_s = n_samples / SAMPLE_RATE_HZ
        segments = self.segmenter.timestamps([wave], retry_below_s=self.min_speech_s)[0]  # screams: a second look
        speech_s = speech_samples(segments) / SAMPLE_RATE_HZ
        if speech_s < self.min_speech_s:
            return GenderResult(UNKNOWN, None, None, round(speech_s, 3), round(duration_s, 3), status="no_speech",
                                reason="no speech found by the VAD", model=self.model_name)
        if quality is None:
            quality = assess(wave, SAMPLE_RATE_HZ, self.quality_params)
        shared = not overlapping(segments)  # the joined speech is the timeline's speech too
        speech = joined_speech(wave, segments, in_place=own and shared)
        timeline_speech = speech if shared else without_dc(wave[speech_mask(len(wave), segments)])
        del wave  # (the caller's reference may keep it)
        windows = None  # the timeline's windows and their vectors, when computed with the whole answer's
        if timeline and shared:  # the whole speech and its windows at once (eGeMAPS: one openSMILE run)
            scored, bounds = self.window_bounds(n_samples, segments)
            whole, x_windows = embed_with_slices(self.encoder, speech, bounds)
            x, windows = whole[None], (scored, bounds, x_windows)
        else:
            x = self.encoder.embed([speech])  # = self.features([the speech before its DC offset was removed])
        quality = quality.with_speech(speech_s, self.quality_params)  # clipped, short, noisy ...: confidence capped
        if self.classifier.shifted(x)[0]:  # a man raised an octave: a voice the model was never shown
            quality = quality.with_note("pitch_shifted", self.quality_params.pitch_shifted_cap)
        p = quality.shrink(float(self.classifier.predict_proba(x)[0, CLASSES.index("male")]))
        below = float(self.classifier.unknown_thresholds(x)[0]) if self._own_thresholds else self.unknown_below
        result = GenderResult(self.label_for(p, below), round(1.0 - p, 6), round(p, 6), round(speech_s, 3),
                              round(duration_s, 3), model=self.model_name, quality=list(quality.notes))
        if result.label == UNKNOWN:
            result.status = UNKNOWN
            result.reason = f"not sure: top probability under {below:g}" + (
                f" (audio: {', '.join(quality.notes)})" if quality.notes else "")
            if "pitch_shifted" in quality.notes:
                result.reason = ("a voice unlike those the model learnt: it sounds pitch-shifted (a man raised an "
                                 "octave?) or strained (a scream)")
        ood = bool(self.classifier.outside(x)[0])
        if ood:
            result.label, result.status = UNKNOWN, UNKNOWN
            result.reason = "a voice unlike the model's training data (out of distribution)"
        if self.classifier.age_head is not None:
            pa = self.classifier.age_head.predict_proba(x)[0]
            result.age_group = self.classifier.age_head.classes[int(pa.argmax())]
            result.p_age_group = round(float(pa.max()), 6)
        if self.age_classifier is not None:
            pa = self.age_classifier.predict_proba(x)[0]
            result.age_band = self.age_classifier.classes[int(pa.argmax())]
            result.p_age_band = round(float(pa.max()), 6)
        if timeline:
            del speech
            voices = self._voices(n_samples, segments, timeline_speech, quality=quality, windows=windows)
            result.timeline, result.speaking_time_s = voices.segments, speaking_time(voices.segments)
            # one answer per voice (never over an unknown the audio or an unfamiliar voice forced);
            # p_male stays the whole recording's
            if voices.two_voices(self.timeline_params) and not ood and quality.max_confidence > 0.5:
                result.label, result.status = MIXED, "ok"
                result.reason = "two voices: " + ", ".join(
                    f"{k} {result.speaking_time_s.get(k, 0.0):.1f} s" for k in CLASSES) + (
                    f" (p(male) {min(voices.p_voice):.2f} and {max(voices.p_voice):.2f}; speaker-embedding "
                    f"distance {voices.distance:.2f})")
        return result

    def timeline(self, wave: np.ndarray, segments: list[dict[str, int]], quality: Quality | None = None
                 ) -> list[Segment]:
        """Label speech hop by hop (window of speech around each hop, smoothed, capped by ``quality``
        as the whole answer is), then merge runs; with two voices (:meth:`Voices.two_voices`), each
        hop takes its voice's label."""
        return self.voices(wave, segments, quality=quality).segments

    def voices(self, wave: np.ndarray, segments: list[dict[str, int]], gate: TimelineParams | None = None,
               quality: Quality | None = None) -> Voices:
        """The timeline and the evidence for two voices (:class:`Voices`); each side's own p(male)
        is computed only when the sides pass ``gate``'s size and distance gates (default: the
        pipeline's ``timeline_params``), as it costs one more encoder pass over the speech. Every
        probability is capped by ``quality`` as the whole answer is."""
        return self._voices(len(wave), segments, without_dc(wave[speech_mask(len(wave), segments)]), gate, quality)

    def _voices(self, n_samples: int, segments: list[dict[str, int]], speech: np.ndarray,
                gate: TimelineParams | None = None, quality: Quality | None = None,
                windows: tuple[list[int], list[tuple[int, int]], np.ndarray] | None = None) -> Voices:
        """:meth:`voices` of a recording of ``n_samples`` whose speech (the VAD segments joined, DC
        offset removed) is ``speech``; ``windows``: its scored hops, their windows and the windows'
        vectors, when already computed (:func:`~src.encoders.base.embed_with_slices`)."""
        tp = self.timeline_params
        scored, bounds, x = windows if windows is not None else (*self.window_bounds(n_samples, segments), None)
        if not scored:
            return Voices([], np.zeros(0, int), np.zeros(0), np.zeros((0, 1), np.float32), tp.hop_s)
        hops = np.array(scored)
        if x is None:
            x = embed_slices(self.encoder, speech, bounds)  # all windows at once (eGeMAPS: one openSMILE pass)
        p = self.capped(smooth(self.classifier.predict_proba(x)[:, CLASSES.index("male")], tp.smooth_hops), quality)
        v = Voices(self.segments_of(hops, p, n_samples), hops, p, self.speaker_vectors(x, speech, bounds), tp.hop_s)
        if len(hops) < 2:
            return v
        v.side = two_way_split(v.speaker, init=(p >= 0.5).astype(int))  # by voice, or by the hops' labels if tighter
        if v.side.min() == v.side.max():
            return v
        a, b = (v.speaker[v.side == k].mean(axis=0) for k in (0, 1))
        v.distance = float(1.0 - a @ b / max(float(np.linalg.norm(a) * np.linalg.norm(b)), 1e-12))
        if not v.gates(gate or tp):
            return v
        sides = self.side_intervals(len(speech), bounds, v.side)  # each side's speech, made when an encoder reads it
        p_sides = self.capped(self.classifier.predict_proba(self.encoder.embed(Waves(2, lambda k: without_dc(
            gather(speech, sides[k])))))[:, CLASSES.index("male")], quality)
        v.p_voice = (float(p_sides[0]), float(p_sides[1]))
        v.voice_labels = (self.label_for(v.p_voice[0]), self.label_for(v.p_voice[1]))
        if v.two_voices(tp):  # the timeline by voice: each hop labelled with its side's answer
            v.segments = self.segments_of(hops, p_sides[v.side], n_samples)
        return v

    @staticmethod
    def capped(p_male: np.ndarray, quality: Quality | None) -> np.ndarray:
        """``p_male`` with ``quality``'s confidence cap (as the whole answer has it)."""
        return p_male if quality is None else np.array([quality.shrink(float(v)) for v in p_male])

    def side_speech(self, speech: np.ndarray, bounds: list[tuple[int, int]], side: np.ndarray) -> list[np.ndarray]:
        """Each side's speech: the hop around each of its hops' window centres, without the hops
        next to a change of side (their windows hold the other voice), unless that leaves none."""
        return [gather(speech, iv) for iv in self.side_intervals(len(speech), bounds, side)]

    def side_intervals(self, n: int, bounds: list[tuple[int, int]], side: np.ndarray) -> list[list[tuple[int, int]]]:
        """:meth:`side_speech` as ``(start, end)`` sample ranges of the speech (sorted, disjoint), per side."""
        half = int(self.timeline_params.hop_s * SAMPLE_RATE_HZ / 2)
        reach = max(1, round(self.timeline_params.window_s / self.timeline_params.hop_s / 2))
        near = np.array([len(set(side[max(0, i - reach):i + reach + 1])) > 1 for i in range(len(side))])
        out = []
        for k in (0, 1):
            keep = (side == k) & ~near if ((side == k) & ~near).any() else side == k
            ranges = [(max(0, (lo + hi) // 2 - half), min(n, (lo + hi) // 2 + half))
                      for (lo, hi), use in zip(bounds, keep) if use]
            out.append(union(sorted(r for r in ranges if r[1] > r[0])))
        return out

    def segments_of(self, hops: np.ndarray, p_male: np.ndarray, n_samples: int) -> list[Segment]:
        """Scored hops and their p(male) -> merged segments, the last one ending at the recording's end."""
        tp = self.timeline_params
        out = merge_gaps(merge_hops(hops, p_male, tp.hop_s, self.label_for), tp.merge_gap_s)
        duration_s = math.floor(n_samples / SAMPLE_RATE_HZ * 1000) / 1000  # the last hop may run past the end
        if out and out[-1].end_s > duration_s:
            out[-1].speech_s = round(max(0.0, out[-1].speech_s - (out[-1].end_s - duration_s)), 3)
            out[-1].end_s = duration_s
        return out

    def speaker_vectors(self, x: np.ndarray, speech: np.ndarray, bounds: list[tuple[int, int]]) -> np.ndarray:
        """L2-normalised speaker embeddings of the windows: the Resemblyzer columns of the features
        when the encoder has them (``resemblyzer``, ``resemblyzer_*`` fusions), else Resemblyzer run on
        the windows (loaded once)."""
        cols = (slice(None) if getattr(self.encoder, "name", "") == "resemblyzer"
                else getattr(self.encoder, "columns", dict)().get("resemblyzer"))
        if cols is not None:
            v = x[:, cols]
        else:
            if getattr(self, "_speaker_encoder", None) is None:
                from src.encoders.resemblyzer import ResemblyzerEncoder

                self._speaker_encoder = ResemblyzerEncoder()
            v = embed_slices(self._speaker_encoder, speech, bounds)
        return (v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-9)).astype(np.float32)

    def timeline_windows(self, wave: np.ndarray, segments: list[dict[str, int]]
                         ) -> tuple[list[int], list[tuple[int, int]], np.ndarray]:
        """The hops a timeline scores: their indices, each one's window as ``(start, end)`` samples
        of ``speech``, and ``speech`` itself (the VAD segments joined, DC offset removed).

        A hop is scored when at least half of it is speech; its window is the speech within
        ``window_s`` around its centre, if there is ``min_window_speech_s`` of it. That speech,
        ``wave[lo:hi][speech_mask[lo:hi]]``, is one stretch of the joined speech, so the windows are
        slices of one signal and an encoder can compute them in one pass.
        """
        scored, bounds = self.window_bounds(len(wave), segments)
        return scored, bounds, without_dc(wave[speech_mask(len(wave), segments)])

    def window_bounds(self, n_samples: int, segments: list[dict[str, int]]) -> tuple[list[int], list[tuple[int, int]]]:
        """The scored hops and their windows of :meth:`timeline_windows` for a recording of
        ``n_samples``, from the segments alone (no per-sample mask or count)."""
        tp, sr = self.timeline_params, SAMPLE_RATE_HZ
        hop, half = int(tp.hop_s * sr), int(tp.window_s * sr / 2)
        iv = union(sorted((s["start"], s["end"]) for s in segments if s["end"] > s["start"]))
        starts = np.array([a for a, _ in iv], np.int64)
        lens = np.array([b - a for a, b in iv], np.int64)
        cum = np.concatenate([[0], np.cumsum(lens)])

        def before(x: np.ndarray) -> np.ndarray:  # speech samples before sample x
            k = np.searchsorted(starts, x, "left")  # the segments starting before x
            last = np.maximum(k - 1, 0)
            inside = np.minimum(x - starts[last], lens[last]) if len(iv) else np.zeros_like(x)
            return np.where(k > 0, cum[last] + inside, 0)

        c = np.arange(hop // 2, n_samples, hop, dtype=np.int64)
        a, b = np.maximum(0, c - hop // 2), np.minimum(n_samples, c + hop // 2)
        lo, hi = np.maximum(0, c - half), np.minimum(n_samples, c + half)
        s_lo, s_hi = before(lo), before(hi)
        speech_hop = (before(b) - before(a)) / (b - a) >= 0.5  # at least half of this hop is speech
        ok = speech_hop & (s_hi - s_lo >= tp.min_window_speech_s * sr)
        return ([int(k) for k in np.flatnonzero(ok)],
                [(int(x), int(y)) for x, y in zip(s_lo[ok], s_hi[ok])])


def union(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted ``(start, end)`` ranges with the overlapping or touching ones merged."""
    out: list[tuple[int, int]] = []
    for a, b in ranges:
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def gather(signal: np.ndarray, ranges: list[tuple[int, int]]) -> np.ndarray:
    """``signal[a:b]`` over ``ranges`` joined (float32)."""
    if not ranges:
        return np.zeros(0, np.float32)
    return np.concatenate([signal[a:b] for a, b in ranges]).astype(np.float32, copy=False)


def overlapping(segments: list[dict[str, int]]) -> bool:
    """Whether any segment starts before the one before it ends (Silero's never do)."""
    return any(b["start"] < a["end"] for a, b in zip(segments, segments[1:]))


def speech_mask(n: int, segments: list[dict[str, int]]) -> np.ndarray:
    """True on the samples inside a segment."""
    mask = np.zeros(n, bool)
    for s in segments:
        mask[s["start"]:s["end"]] = True
    return mask


MOVE_BLOCK = 1 << 20  # samples moved at a time when the speech is gathered in place


def joined_speech(wave: np.ndarray, segments: list[dict[str, int]], in_place: bool = False) -> np.ndarray:
    """``without_dc(join_segments(wave, segments))``, the same numbers; ``in_place``: gathered into the
    start of ``wave``'s own buffer (overwriting it; segments sorted and disjoint), no copy."""
    if not in_place:
        speech = join_segments(wave, segments)
    else:
        pos = 0
        for s in segments:
            a, b = s["start"], s["end"]
            if a != pos:
                for k in range(0, b - a, MOVE_BLOCK):  # left to right: a block never overwrites what is still to move
                    m = min(MOVE_BLOCK, b - a - k)
                    wave[pos + k:pos + k + m] = wave[a + k:a + k + m]
            pos += b - a
        speech = wave[:pos]
    if len(speech):
        speech -= np.float32(speech.mean(dtype=np.float64))  # = without_dc, in place
    return speech


def smooth(p: np.ndarray, n: int) -> np.ndarray:
    """Centred moving average over ``n`` values (shorter at the ends)."""
    if n <= 1 or len(p) < 2:
        return p
    if len(p) < n:  # np.convolve's "same" is as long as the longer input: the kernel, here
        c = np.concatenate([[0.0], np.cumsum(p, dtype=np.float64)])
        i = np.arange(len(p))
        lo, hi = np.maximum(0, i - n // 2), np.minimum(len(p), i + (n - 1) // 2 + 1)
        return (c[hi] - c[lo]) / (hi - lo)
    kernel = np.ones(n)
    return np.convolve(p, kernel, "same") / np.convolve(np.ones_like(p), kernel, "same")


def merge_hops(hops: np.ndarray, p_male: np.ndarray, hop_s: float, label_for) -> list[Segment]:
    """Consecutive scored hops with the same label become one segment (a gap splits segments)."""
    out: list[Segment] = []
    for k, p in zip(hops, p_male):
        label, start, end = label_for(float(p)), int(k) * hop_s, (int(k) + 1) * hop_s
        last = out[-1] if out else None
        if last and last.label == label and abs(last.end_s - start) < 1e-6:
            n = round((last.end_s - last.start_s) / hop_s)
            last.p_male = (last.p_male * n + float(p)) / (n + 1)
            last.end_s = end
        else:
            out.append(Segment(round(start, 3), round(end, 3), label, float(p)))
    for s in out:
        s.end_s, s.p_male = round(s.end_s, 3), round(s.p_male, 4)
        s.speech_s = round(s.end_s - s.start_s, 3)
    return out


def merge_gaps(segments: list[Segment], max_gap_s: float) -> list[Segment]:
    """Neighbouring segments of one label with a pause of at most ``max_gap_s`` between them become
    one; its ``speech_s`` stays the speech only and its ``p_male`` the speech-weighted mean."""
    out: list[Segment] = []
    for s in segments:
        last = out[-1] if out else None
        if last and last.label == s.label and s.start_s - last.end_s <= max_gap_s + 1e-6:
            a, b = last.speech_s or 0.0, s.speech_s or 0.0
            last.p_male = round((last.p_male * a + s.p_male * b) / max(a + b, 1e-9), 4)
            last.end_s, last.speech_s = s.end_s, round(a + b, 3)
        else:
            out.append(Segment(s.start_s, s.end_s, s.label, s.p_male, s.speech_s))
    return out


def speaking_time(timeline: list[Segment]) -> dict[str, float]:
    """Seconds of speech per label (pauses inside a segment not counted)."""
    out: dict[str, float] = {}
    for s in timeline:
        speech_s = s.end_s - s.start_s if s.speech_s is None else s.speech_s
        out[s.label] = round(out.get(s.label, 0.0) + speech_s, 3)
    return out


MAJORITY_SHARE = 2 / 3
"""A label needs this share of the speech labelled female or male to be a recording's (or a stream's) answer."""


def majority_label(speaking_time_s: dict[str, float], majority_share: float = MAJORITY_SHARE) -> str:
    """The answer from speaking time per label: the label with at least ``majority_share`` of the
    time labelled female or male; neither: ``mixed``; none of either: ``unknown``. E.g. male 9.6 s,
    female 4.2 s -> male (70 %); male 5 s, female 4 s -> mixed."""
    times = {c: speaking_time_s.get(c, 0.0) for c in CLASSES}
    total = sum(times.values())
    if total <= 0:
        return UNKNOWN
    top = max(times, key=times.get)
    return top if times[top] >= majority_share * total else MIXED
