"""Degradations of training audio, so that a model hears more than one recording set-up:
additive noise (white to brown) and babble from other speakers at 0-30 dB SNR, a simulated room
(synthetic exponentially decaying impulse response), and a telephone channel (300-3400 Hz band,
8 kHz, 8-bit mu-law). Never pitch or formant shifts: they change the very cues of the label.

Plain NumPy/SciPy, seeded per clip: the same clip and seed give the same degraded audio.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import signal

from src.data.audio import SAMPLE_RATE_HZ


@dataclass(frozen=True)
class AugmentParams:
    """Which degradations, how often and how strong (``conf/augment.yaml``).

    Attributes:
        snr_db: (low, high) signal-to-noise ratio of the added noise or babble, dB.
        p_noise, p_babble, p_reverb, p_telephone: each degradation's chance per copy (independent;
            a copy that draws none gets noise).
        rt60_s: (low, high) reverberation time of the simulated room, seconds.
    """

    snr_db: tuple[float, float] = (0.0, 30.0)
    p_noise: float = 0.5
    p_babble: float = 0.3
    p_reverb: float = 0.4
    p_telephone: float = 0.3
    rt60_s: tuple[float, float] = (0.2, 0.8)


def coloured_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-power noise with a random spectral slope between white (0) and brown (-2, in 1/f^a)."""
    alpha = rng.uniform(0.0, 2.0)
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n)
    spec[1:] /= f[1:] ** (alpha / 2)
    spec[0] = 0
    x = np.fft.irfft(spec, n)
    return x / (np.sqrt(np.mean(x ** 2)) + 1e-12)


def mix_at_snr(wave: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``wave + noise`` with the noise scaled to ``snr_db`` below the wave's power."""
    p_signal = np.mean(wave.astype(np.float64) ** 2) + 1e-12
    p_noise = np.mean(noise.astype(np.float64) ** 2) + 1e-12
    return wave + noise * np.sqrt(p_signal / (p_noise * 10 ** (snr_db / 10)))


def room_impulse_response(rt60_s: float, rng: np.random.Generator, sr: int = SAMPLE_RATE_HZ) -> np.ndarray:
    """A synthetic room: a direct path, then noise decaying by 60 dB over ``rt60_s`` seconds."""
    n = int(rt60_s * sr)
    t = np.arange(n) / sr
    tail = rng.standard_normal(n) * np.exp(-6.9078 * t / rt60_s)  # ln(1000) = 60 dB of amplitude
    tail[: int(0.002 * sr)] = 0.0  # the first reflections arrive after the direct sound
    h = 0.5 * tail / (np.sqrt(np.sum(tail ** 2)) + 1e-12)
    h[0] = 1.0
    return h


def telephone(wave: np.ndarray, sr: int = SAMPLE_RATE_HZ) -> np.ndarray:
    """300-3400 Hz band, down to 8 kHz and 8-bit mu-law (G.711-like), back to ``sr``."""
    sos = signal.butter(6, [300, 3400], btype="bandpass", fs=sr, output="sos")
    x = signal.resample_poly(signal.sosfilt(sos, wave), 1, sr // 8000)
    peak = np.max(np.abs(x)) + 1e-9
    y = np.clip(x / peak, -1, 1)
    mu = 255.0
    q = np.round((np.sign(y) * np.log1p(mu * np.abs(y)) / np.log1p(mu) + 1) / 2 * mu)  # 8-bit codes
    y = np.sign(q / mu * 2 - 1) * ((1 + mu) ** np.abs(q / mu * 2 - 1) - 1) / mu
    out = signal.resample_poly(y, sr // 8000, 1) * peak
    return np.resize(out, len(wave)).astype(np.float32) if len(out) != len(wave) else out.astype(np.float32)


BABBLE_POOL = 40  # clips of other speakers kept in memory to make babble from


def babble_pool(clips: list, rng: np.random.Generator, size: int = BABBLE_POOL) -> list[tuple[str, np.ndarray]]:
    """``(speaker, 16 kHz wave)`` of up to ``size`` clips drawn with ``rng`` (the first minute of
    each; clips that cannot be decoded are skipped): what babble is made of."""
    from src.data.audio import AudioError, load_audio

    pool = []
    for i in rng.choice(len(clips), size=min(size, len(clips)), replace=False):
        try:
            pool.append((clips[i].speaker, load_audio(clips[i].path, SAMPLE_RATE_HZ, 60.0)))
        except AudioError:
            continue
    return pool


def babble(n: int, rng: np.random.Generator, others: list[np.ndarray]) -> tuple[np.ndarray, int]:
    """``n`` samples of 3-6 of ``others`` (other speakers' waves) summed, each at unit power, and
    how many were summed."""
    k = min(int(rng.integers(3, 7)), len(others))
    b = np.zeros(n)
    for i in rng.choice(len(others), size=k, replace=False):
        p = others[i]
        start = int(rng.integers(0, max(1, len(p) - n))) if len(p) > n else 0
        seg = np.resize(p[start:start + n], n).astype(np.float64)
        b += seg / (np.sqrt(np.mean(seg ** 2)) + 1e-12)
    return b, k


def write_flac(path, wave: np.ndarray) -> None:
    """``wave`` (16 kHz mono) as 16-bit FLAC at ``path``, atomically, folders made."""
    from pathlib import Path

    import soundfile as sf

    from src.data.files import atomic_write

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, "wb") as f:
        sf.write(f, wave, SAMPLE_RATE_HZ, format="FLAC", subtype="PCM_16")


def degrade(wave: np.ndarray, rng: np.random.Generator, params: AugmentParams,
            babble_from: list[np.ndarray] | None = None) -> tuple[np.ndarray, list[str]]:
    """One degraded copy of a 16 kHz mono ``wave`` and the names of what was done (in order).

    Args:
        babble_from: other speakers' waveforms to make babble of (3-6 of them summed).
    """
    x = np.asarray(wave, np.float64)
    done: list[str] = []
    if rng.random() < params.p_reverb:
        rt60 = rng.uniform(*params.rt60_s)
        x = signal.fftconvolve(x, room_impulse_response(rt60, rng))[: len(x)]
        done.append(f"reverb {rt60:.2f} s")
    use_babble = bool(babble_from) and rng.random() < params.p_babble
    use_noise = rng.random() < params.p_noise or not (done or use_babble)
    if use_babble:
        b, k = babble(len(x), rng, babble_from)
        snr = rng.uniform(*params.snr_db)
        x = mix_at_snr(x, b, snr)
        done.append(f"babble {k} speakers {snr:.0f} dB")
    if use_noise:
        snr = rng.uniform(*params.snr_db)
        x = mix_at_snr(x, coloured_noise(len(x), rng), snr)
        done.append(f"noise {snr:.0f} dB")
    if rng.random() < params.p_telephone:
        x = telephone(x)
        done.append("telephone")
    peak = np.max(np.abs(x))
    if peak > 0.99:  # keep it a valid signal, never clipped
        x = x * (0.99 / peak)
    return x.astype(np.float32), done
