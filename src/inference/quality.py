"""Is a recording good enough for a confident answer? Clipping, noise, a telephone band, a voice
unlike those the model was shown to work on (a pitch-shifted one), and too little speech each make the answer
untrustworthy, so the pipeline caps its confidence (down to ``unknown``) and says why.

One assessment, on the decoded audio at its **native rate**, before any resampling (resampling a
clip clipped at 48 kHz smooths its flat tops: the old 16 kHz check saw 0 of 10; so does a lossy
codec, whose ringing hides the plateau from a "share of samples at the peak" count):

    q = assess(wave, sample_rate_hz)      # any rate, mono float32: the whole recording
    q = q.with_speech(speech_s)           # after the VAD: too little speech
    q.notes                               # e.g. ['clipped']
    p = q.shrink(p_male)                  # the top probability capped at q.max_confidence (0.5: unknown)

The file answer, every timeline segment, ``stream`` and the service's WebSocket use it (the
decoder feeds a :class:`QualityMeter` block by block, so a long file is assessed in bounded
memory). The thresholds and caps are :class:`~src.inference.params.QualityParams` (the ``quality``
config group), each set from ``python bench/quality.py`` (README, "Bad input").
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from src.inference.params import QualityParams

FRAME_S = 0.032  # frames for the level, spectrum and pitch statistics
MAX_FRAMES = 3000  # frames kept for the statistics (about 96 s, spread evenly over a longer recording)
ACTIVE_DB = 30.0  # frames within this of the loud frames (95th percentile) are the voice
BAND_TOP_HZ = 8000.0  # the model hears up to here (16 kHz)
HIGH_BAND_HZ = 4000.0


@dataclass(frozen=True)
class Quality:
    """What was measured and what it means for the answer."""

    clip_score: float  # 95th over 99.9th percentile of |sample| of the voice: ~0.4 clean, 1.0 flat-topped
    snr_db: float
    high_band_db: float  # energy 4-8 kHz relative to 80 Hz-8 kHz; -inf when the rate holds no band over 4 kHz
    f0_hz: float  # median pitch of voiced frames (NaN: none)
    voice_centroid_hz: float  # median spectral centroid (80 Hz-4 kHz) of voiced frames: rises with formants
    sample_rate_hz: int
    speech_s: float | None = None
    notes: tuple[str, ...] = ()
    max_confidence: float = 1.0  # the top probability allowed; 0.5 means unknown
    voice_level_db: float = float("nan")  # 99.9th percentile of |sample| of the voice, dBFS

    def shrink(self, p_male: float) -> float:
        """``p_male`` with its top probability capped at ``max_confidence`` (the side kept)."""
        top = max(p_male, 1.0 - p_male)
        if top <= self.max_confidence:
            return p_male
        return self.max_confidence if p_male >= 0.5 else 1.0 - self.max_confidence

    def with_speech(self, speech_s: float, params: QualityParams = QualityParams()) -> Quality:
        """This assessment with the speech the VAD found: under ``short_speech_s`` is noted and capped."""
        q = replace(self, speech_s=speech_s)
        if speech_s < params.short_speech_s:
            cap = params.too_short_cap if speech_s < params.too_short_speech_s else params.short_cap
            q = q.with_note("short_speech", cap)
        return q

    def with_note(self, note: str, cap: float) -> Quality:
        """This assessment with one more problem: ``note`` added, the confidence capped at ``cap``."""
        return replace(self, notes=(*self.notes, note), max_confidence=min(self.max_confidence, cap))


@dataclass
class QualityMeter:
    """:func:`assess` fed block by block (the decoder's blocks, at the native rate), in bounded memory:
    at most :data:`MAX_FRAMES` frames are kept, every ``stride``-th of the recording."""

    sample_rate_hz: int
    params: QualityParams = QualityParams()
    frames: list[np.ndarray] = field(default_factory=list)
    stride: int = 1
    _seen: int = 0
    _pending: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))

    @property
    def frame_samples(self) -> int:
        return max(16, round(FRAME_S * self.sample_rate_hz))

    def add(self, block: np.ndarray) -> None:
        """More mono samples at ``sample_rate_hz``."""
        n = self.frame_samples
        buf = np.concatenate([self._pending, np.asarray(block, np.float32).reshape(-1)])
        k = len(buf) // n
        self._pending = buf[k * n:].copy()
        for i in range(k):
            if self._seen % self.stride == 0:
                self.frames.append(buf[i * n:(i + 1) * n].copy())
            self._seen += 1
            if len(self.frames) >= MAX_FRAMES:  # keep every other one, and half as many from now on
                self.frames = self.frames[::2]
                self.stride *= 2

    def result(self) -> Quality:
        frames = self.frames or ([self._pending] if len(self._pending) else [])
        return _assess_frames(frames, self.sample_rate_hz, self.params)


def assess(wave: np.ndarray, sample_rate_hz: int, params: QualityParams = QualityParams()) -> Quality:
    """Measure a whole recording (mono, at its native rate, before resampling).

    Returns:
        :class:`Quality` with ``notes`` among ``clipped``, ``noisy``, ``narrowband`` and ``quiet``, and the
        lowest cap of the problems found as ``max_confidence`` (``short_speech`` is added by
        :meth:`Quality.with_speech` after the VAD, ``pitch_shifted`` by :meth:`Quality.with_note`
        when the model's shift gate flags the voice).
    """
    meter = QualityMeter(int(sample_rate_hz), params)
    meter.add(wave)
    return meter.result()


def _assess_frames(frames: list[np.ndarray], sr: int, pr: QualityParams) -> Quality:
    if not frames or len(frames[0]) < 16:
        return Quality(0.0, float("inf"), 0.0, float("nan"), float("nan"), sr)
    x = np.stack(frames).astype(np.float64)
    x -= x.mean(axis=1, keepdims=True)
    power_db = 10 * np.log10(np.mean(x ** 2, axis=1) + 1e-12)
    snr = float(np.percentile(power_db, 95) - np.percentile(power_db, 10)) if len(x) >= 4 else float("inf")
    active = x[(power_db >= np.percentile(power_db, 95) - ACTIVE_DB) & (power_db > -80)]
    if not len(active):
        return Quality(0.0, snr, 0.0, float("nan"), float("nan"), sr)
    mag = np.abs(active).ravel()
    top = float(np.percentile(mag, 99.9))
    clip = float(np.percentile(mag, 95) / top) if top > 1e-4 and len(mag) >= sr else 0.0  # 1 s of voice at least
    high, f0, centroid = _spectrum(active, sr)
    notes, cap = [], 1.0
    level_db = 20.0 * math.log10(top) if top > 0 else float("-inf")
    narrow = high < pr.narrowband_db
    noisy = snr < pr.noisy_snr_db
    for note, hit, c in (
            ("clipped", clip >= pr.clipped_score, pr.severe_clipped_cap if clip >= pr.severe_clipped_score
             else pr.clipped_cap),
            ("noisy", noisy, pr.very_noisy_cap if snr < pr.very_noisy_snr_db else pr.noisy_cap),
            ("narrowband", narrow, pr.narrowband_cap),
            ("quiet", level_db < pr.quiet_db, pr.very_quiet_cap if level_db < pr.very_quiet_db else pr.quiet_cap)):
        if hit:
            notes.append(note)
            cap = min(cap, c)
    return Quality(round(clip, 4), round(snr, 2), round(high, 2), round(f0, 1), round(centroid, 1), sr,
                   notes=tuple(notes), max_confidence=cap, voice_level_db=round(level_db, 1))


def _spectrum(active: np.ndarray, sr: int) -> tuple[float, float, float]:
    """High-band share (dB), median F0 and median voice centroid of the active frames."""
    n = active.shape[1]
    spec = np.abs(np.fft.rfft(active * np.hanning(n), 2 * n, axis=1)) ** 2
    freqs = np.fft.rfftfreq(2 * n, 1 / sr)
    band = (freqs >= 80) & (freqs <= BAND_TOP_HZ)
    total = float(spec[:, band].sum())
    if sr / 2 <= HIGH_BAND_HZ * 1.05 or total <= 0:
        high = float("-inf")  # an 8 kHz file holds nothing over 4 kHz
    else:
        high = float(10 * np.log10(spec[:, band & (freqs >= HIGH_BAND_HZ)].sum() / total + 1e-12))
    ac = np.fft.irfft(spec, axis=1)[:, :n]
    ac = ac / (ac[:, :1] + 1e-12)
    lo, hi = max(1, int(sr / 500)), min(n - 1, int(sr / 60))  # 60-500 Hz
    lag = lo + ac[:, lo:hi].argmax(axis=1)
    voiced = ac[np.arange(len(ac)), lag] > 0.5
    if not voiced.any():
        return high, float("nan"), float("nan")
    f0 = float(np.median(sr / lag[voiced]))
    low = (freqs >= 80) & (freqs <= 4000)
    v = spec[voiced][:, low]
    centroid = float(np.median((v * freqs[low]).sum(axis=1) / (v.sum(axis=1) + 1e-12)))
    return high, f0, centroid
