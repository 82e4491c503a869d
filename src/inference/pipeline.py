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

from src.data.audio import SAMPLE_RATE_HZ, AudioError, decode_audio, resample, without_dc
from src.encoders.base import Encoder, embed_slices
from src.inference.quality import Quality, QualityMeter, assess
from src.labels import CLASSES, MIXED, UNKNOWN
from src.models.checkpoint import TrainedClassifier
from src.inference.params import QualityParams, TimelineParams, check_unknown_below  # noqa: F401 (re-exported)
from src.vad.silero import SileroSegmenter, join_segments


@dataclass
class Segment:
    """A stretch of speech with one label; times in seconds from the start of the file."""

    start_s: float
    end_s: float
    label: str
    p_male: float
    speech_s: float | None = None  # speech in it (a segment may span a short pause); None: end_s - start_s


@dataclass
class GenderResult:
    """The answer for one recording.

    ``label`` is ``female``, ``male``, ``mixed`` (with a timeline: both voices, neither with
    :data:`MAJORITY_SHARE` of the speaking time; ``speaking_time_s`` says how much of each) or
    ``unknown``. ``status`` says why: ``ok`` (an answer), ``unknown`` (speech, but confidence under
    the pipeline's ``unknown_below`` or a voice unlike the model's training data: ``reason`` says
    which), ``no_speech`` or ``error`` (the file could not be read: ``reason``). ``age_group`` (child / teen / adult)
    and its calibrated probability come from models trained where ages exist; ``age_band`` and its
    (uncalibrated) probability from end-to-end runs with an age head. ``model`` names the model
    that answered. ``quality`` names what makes the recording untrustworthy (``clipped``,
    ``short_speech``, ``noisy``, ``narrowband``, ``truncated``; see :mod:`src.inference.quality`);
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
    def from_run(cls, run_dir: str | Path, device: str = "cpu", **kwargs) -> GenderPipeline:
        """Build the pipeline a training run describes (its encoder, VAD settings and checkpoint;
        an end-to-end run's trunk is the encoder, its gender head the classifier)."""
        from src.inference.run_model import load_run_model

        kwargs.setdefault("model_name", Path(run_dir).name)
        rm = load_run_model(run_dir, device=device)
        return cls(rm.classifier, rm.encoder, rm.segmenter(), age_classifier=rm.age_classifier, **kwargs)

    @classmethod
    def from_pretrained(cls, name: str = "default", device: str = "cpu", **kwargs) -> GenderPipeline:
        """The model shipped with the toolkit (``models/<name>/``: a head and its normalisation; the
        encoders' weights come from their wheels). Its card is ``models/<name>/MODEL_CARD.md``."""
        from src.inference.pretrained import pretrained_dir

        path = pretrained_dir(name)
        kwargs.setdefault("model_name", f"{name} (shipped: {path.name}/)")
        return cls.from_run(path, device=device, **kwargs)

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
        if not speech:
            return np.zeros(0)
        return self.classifier.predict_proba(self.features(speech))[:, CLASSES.index("male")]

    def features(self, speech: list[np.ndarray]) -> np.ndarray:
        """The encoder's vectors of speech signals, each signal's DC offset removed first."""
        return self.encoder.embed([without_dc(s) for s in speech])

    def __call__(self, audio: str | Path | np.ndarray, sample_rate_hz: int = SAMPLE_RATE_HZ,
                 timeline: bool = False) -> GenderResult:
        """Classify a file path or a mono waveform (any rate); never raises for bad audio."""
        path = str(audio) if isinstance(audio, (str, Path)) else None
        truncated = False
        try:
            if path is not None:
                decoded = decode_audio(audio, SAMPLE_RATE_HZ, self.max_duration_s, native=self.quality_meter)
                wave, truncated, quality = decoded.wave, decoded.truncated, decoded.native.result()
            else:
                native = np.asarray(audio, np.float32)
                if not np.isfinite(native).all():
                    raise AudioError("non_finite", "NaN or infinite samples")
                quality = assess(native, sample_rate_hz, self.quality_params)  # before resampling
                wave = resample(native, sample_rate_hz)
            if not np.isfinite(wave).all():
                raise AudioError("non_finite", "NaN or infinite samples")
        except AudioError as e:
            return GenderResult(UNKNOWN, None, None, 0.0, 0.0, status="error", reason=e.reason, path=path,
                                model=self.model_name)
        result = self.classify_wave(wave, timeline, quality)
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
        duration_s = len(wave) / SAMPLE_RATE_HZ
        segments = self.segmenter.timestamps([wave])[0]
        speech = join_segments(wave, segments)
        speech_s = len(speech) / SAMPLE_RATE_HZ
        if speech_s < self.min_speech_s:
            return GenderResult(UNKNOWN, None, None, round(speech_s, 3), round(duration_s, 3), status="no_speech",
                                reason="no speech found by the VAD", model=self.model_name)
        x = self.features([speech])
        if quality is None:
            quality = assess(wave, SAMPLE_RATE_HZ, self.quality_params)
        quality = quality.with_speech(speech_s, self.quality_params)  # clipped, short, noisy ...: confidence capped
        p = quality.shrink(float(self.classifier.predict_proba(x)[0, CLASSES.index("male")]))
        below = float(self.classifier.unknown_thresholds(x)[0]) if self._own_thresholds else self.unknown_below
        result = GenderResult(self.label_for(p, below), round(1.0 - p, 6), round(p, 6), round(speech_s, 3),
                              round(duration_s, 3), model=self.model_name, quality=list(quality.notes))
        if result.label == UNKNOWN:
            result.status = UNKNOWN
            result.reason = f"not sure: top probability under {below:g}" + (
                f" (audio: {', '.join(quality.notes)})" if quality.notes else "")
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
            result.timeline = self.timeline(wave, segments, quality)
            result.speaking_time_s = speaking_time(result.timeline)
            verdict = majority_label(result.speaking_time_s)
            if verdict == MIXED and not ood and quality.max_confidence > 0.5:  # two voices (never over an
                # unknown the audio or an unfamiliar voice forced): no single headline label or probability
                result.label, result.status, result.p_female, result.p_male = MIXED, "ok", None, None
                result.reason = "both voices: " + ", ".join(
                    f"{k} {result.speaking_time_s.get(k, 0.0):.1f} s" for k in CLASSES)
        return result

    def timeline(self, wave: np.ndarray, segments: list[dict[str, int]], quality: Quality | None = None
                 ) -> list[Segment]:
        """Label speech hop by hop (window of speech around each hop, smoothed, capped by ``quality``
        as the whole answer is), then merge runs."""
        tp = self.timeline_params
        scored, bounds, speech = self.timeline_windows(wave, segments)
        if not scored:
            return []
        x = embed_slices(self.encoder, speech, bounds)  # all windows at once (eGeMAPS: one openSMILE pass)
        p_male = self.classifier.predict_proba(x)[:, CLASSES.index("male")]
        p = smooth(p_male, tp.smooth_hops)
        if quality is not None:
            p = np.array([quality.shrink(float(v)) for v in p])
        out = merge_gaps(merge_hops(np.array(scored), p, tp.hop_s, self.label_for), tp.merge_gap_s)
        duration_s = math.floor(len(wave) / SAMPLE_RATE_HZ * 1000) / 1000  # the last hop may run past the end
        if out[-1].end_s > duration_s:
            out[-1].speech_s = round(max(0.0, out[-1].speech_s - (out[-1].end_s - duration_s)), 3)
            out[-1].end_s = duration_s
        return out

    def timeline_windows(self, wave: np.ndarray, segments: list[dict[str, int]]
                         ) -> tuple[list[int], list[tuple[int, int]], np.ndarray]:
        """The hops a timeline scores: their indices, each one's window as ``(start, end)`` samples
        of ``speech``, and ``speech`` itself (the VAD segments joined, DC offset removed).

        A hop is scored when at least half of it is speech; its window is the speech within
        ``window_s`` around its centre, if there is ``min_window_speech_s`` of it. That speech,
        ``wave[lo:hi][speech_mask[lo:hi]]``, is one stretch of the joined speech, so the windows are
        slices of one signal and an encoder can compute them in one pass.
        """
        tp, sr = self.timeline_params, SAMPLE_RATE_HZ
        hop, half = int(tp.hop_s * sr), int(tp.window_s * sr / 2)
        speech_mask = np.zeros(len(wave), bool)
        for s in segments:
            speech_mask[s["start"]:s["end"]] = True
        before = np.concatenate([[0], np.cumsum(speech_mask)])  # speech samples before each sample
        bounds, scored = [], []
        for k, c in enumerate(np.arange(hop // 2, len(wave), hop)):
            lo, hi = max(0, c - half), min(len(wave), c + half)
            if speech_mask[max(0, c - hop // 2):c + hop // 2].mean() < 0.5:
                continue  # this hop is not speech
            if before[hi] - before[lo] >= tp.min_window_speech_s * sr:
                bounds.append((int(before[lo]), int(before[hi])))
                scored.append(k)
        return scored, bounds, without_dc(wave[speech_mask])


def smooth(p: np.ndarray, n: int) -> np.ndarray:
    """Centred moving average over ``n`` values (shorter at the ends)."""
    if n <= 1 or len(p) < 2:
        return p
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
