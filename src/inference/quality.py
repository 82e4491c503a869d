"""Is a recording good enough for a confident answer? Clipping, too little speech, noise and a
telephone band each make the encoder's view of a voice untrustworthy (a hard-clipped male
clip came out female 0.9985, and so did its first second alone), so the pipeline lowers its
confidence, or answers ``unknown``, and says why.

    q = assess(wave, speech)            # 16 kHz mono: the whole recording, and its speech
    q.notes                             # e.g. ['clipped', 'short_speech']
    p = q.shrink(p_male)                # the top probability capped at q.max_confidence (0.5: unknown)

The thresholds and factors were set on the dev set's real speech, degraded on purpose
(``python bench/quality.py`` measures accuracy and confidence per degradation, with and
without these checks).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from src.data.audio import SAMPLE_RATE_HZ

FRAME_SAMPLES = 512  # 32 ms frames for the level and spectrum statistics


@dataclass(frozen=True)
class QualityParams:
    """When a recording is too degraded to trust, and the most confidence each problem allows.

    A cap of 0.5 answers ``unknown``; 1.0 only notes the problem. The defaults come from
    ``bench/quality.py`` on the dev set's test speakers (README, "Bad input"): hard clipping
    and a second of speech gave confident wrong answers; under about 5 dB SNR (an estimate
    under 12 dB) answers were a coin toss; a telephone band cost nothing.
    """

    clipped_ratio: float = 0.01  # share of speech samples at the peak (within 0.5 %): clipped over this ...
    clipped_cap: float = 0.8
    severe_clipped_ratio: float = 0.05  # ... and unusable over this (x8 overdrive: about 0.17)
    severe_clipped_cap: float = 0.5
    short_speech_s: float = 1.5  # less speech than this is too little to be sure ...
    short_cap: float = 0.8
    too_short_speech_s: float = 1.0  # ... and this little is not enough to answer
    too_short_cap: float = 0.5
    noisy_snr_db: float = 18.0  # estimated speech-to-noise ratio under which it is noisy ...
    noisy_cap: float = 0.8
    very_noisy_snr_db: float = 12.0  # ... and too noisy to answer
    very_noisy_cap: float = 0.5
    narrowband_db: float = -30.0  # energy over 4 kHz relative to all, under which it is band-limited
    narrowband_cap: float = 1.0


@dataclass
class Quality:
    """What was measured and what it means for the answer."""

    clipped_ratio: float
    speech_s: float
    snr_db: float
    high_band_db: float
    notes: list[str] = field(default_factory=list)
    max_confidence: float = 1.0  # the top probability allowed; 0.5 means unknown

    def shrink(self, p_male: float) -> float:
        """``p_male`` with its top probability capped at ``max_confidence`` (the side kept)."""
        top = max(p_male, 1.0 - p_male)
        if top <= self.max_confidence:
            return p_male
        return self.max_confidence if p_male >= 0.5 else 1.0 - self.max_confidence


def clipped_ratio(speech: np.ndarray) -> float:
    """Share of samples within 0.5 % of the peak magnitude (clean speech: about 1e-5)."""
    if not len(speech):
        return 0.0
    mag = np.abs(speech)
    peak = float(mag.max())
    if peak < 1e-3:
        return 0.0
    return float(np.mean(mag >= 0.995 * peak))


def _frame_power_db(wave: np.ndarray) -> np.ndarray:
    n = len(wave) // FRAME_SAMPLES
    if n == 0:
        return np.zeros(0)
    frames = wave[: n * FRAME_SAMPLES].reshape(n, FRAME_SAMPLES).astype(np.float64)
    frames = frames - frames.mean(axis=1, keepdims=True)
    return 10 * np.log10(np.mean(frames ** 2, axis=1) + 1e-12)


def snr_db(wave: np.ndarray) -> float:
    """Estimated speech-to-noise ratio (dB): the loud frames' level (95th percentile) over the
    quiet frames' (10th percentile), so pauses between words count as the noise floor."""
    power = _frame_power_db(wave)
    if len(power) < 4:
        return float("inf")
    return float(np.percentile(power, 95) - np.percentile(power, 10))


def high_band_db(speech: np.ndarray) -> float:
    """Energy over 4 kHz relative to all the energy of the speech (dB; a telephone band: under -40)."""
    n = len(speech) // FRAME_SAMPLES
    if n == 0:
        return 0.0
    frames = speech[: n * FRAME_SAMPLES].reshape(n, FRAME_SAMPLES) * np.hanning(FRAME_SAMPLES)
    spec = np.sum(np.abs(np.fft.rfft(frames, axis=1)) ** 2, axis=0)
    freqs = np.fft.rfftfreq(FRAME_SAMPLES, 1 / SAMPLE_RATE_HZ)
    total = float(spec[freqs >= 80].sum())
    if total <= 0:
        return 0.0
    return float(10 * np.log10(spec[freqs >= 4000].sum() / total + 1e-12))


def assess(wave: np.ndarray, speech: np.ndarray, params: QualityParams = QualityParams()) -> Quality:
    """Measure ``wave`` (the whole 16 kHz recording) and ``speech`` (its speech, joined).

    Returns:
        :class:`Quality` with ``notes`` among ``clipped``, ``short_speech``, ``noisy`` and
        ``narrowband``, and the lowest cap of the problems found as ``max_confidence``.
    """
    pr = params
    q = Quality(clipped_ratio(speech), len(speech) / SAMPLE_RATE_HZ, snr_db(wave), high_band_db(speech))
    checks = (
        ("clipped", q.clipped_ratio > pr.clipped_ratio,
         pr.severe_clipped_cap if q.clipped_ratio > pr.severe_clipped_ratio else pr.clipped_cap),
        ("short_speech", q.speech_s < pr.short_speech_s,
         pr.too_short_cap if q.speech_s < pr.too_short_speech_s else pr.short_cap),
        ("noisy", q.snr_db < pr.noisy_snr_db, pr.very_noisy_cap if q.snr_db < pr.very_noisy_snr_db else pr.noisy_cap),
        ("narrowband", q.high_band_db < pr.narrowband_db, pr.narrowband_cap),
    )
    for note, hit, cap in checks:
        if hit:
            q.notes.append(note)
            q.max_confidence = min(q.max_confidence, cap)
    return q
