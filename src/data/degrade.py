"""Real speech made bad on purpose: the degradations the quality checks, their tests and
``bench/quality.py`` use. Every function takes and returns 16 kHz mono float32."""

from __future__ import annotations

import numpy as np
import soxr
from scipy.signal import butter, sosfiltfilt

from src.data.audio import SAMPLE_RATE_HZ


def hard_clip(wave: np.ndarray, gain: float = 8.0) -> np.ndarray:
    """Amplify by ``gain`` and clip at full scale (an overdriven input)."""
    return np.clip(wave * gain / max(float(np.abs(wave).max()), 1e-9), -1.0, 1.0).astype(np.float32)


def with_noise(wave: np.ndarray, snr_db: float, seed: int = 0, speech: np.ndarray | None = None) -> np.ndarray:
    """White noise at ``snr_db`` below the power of ``speech`` (default: the whole wave)."""
    ref = wave if speech is None or not len(speech) else speech
    power = float(np.mean(np.square(ref, dtype=np.float64)))
    noise = np.random.default_rng(seed).normal(0.0, np.sqrt(power / 10 ** (snr_db / 10)), len(wave))
    return (wave + noise).astype(np.float32)


def telephone(wave: np.ndarray, low_hz: float = 300.0, high_hz: float = 3400.0) -> np.ndarray:
    """A telephone channel: 300-3400 Hz band-pass, through 8 kHz and back to 16 kHz."""
    sos = butter(6, [low_hz, high_hz], btype="bandpass", fs=SAMPLE_RATE_HZ, output="sos")
    narrow = soxr.resample(sosfiltfilt(sos, wave).astype(np.float32), SAMPLE_RATE_HZ, 8000)
    return soxr.resample(narrow, 8000, SAMPLE_RATE_HZ).astype(np.float32)[: len(wave)]


def first_seconds(wave: np.ndarray, seconds: float) -> np.ndarray:
    """The first ``seconds`` of the recording."""
    return wave[: int(seconds * SAMPLE_RATE_HZ)].copy()
