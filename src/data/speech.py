"""Speech for end-to-end training: each clip decoded once and cut to its VAD speech, random
training crops, and the on-the-fly gain and noise augmentation of those crops.

The segmenter is passed in (anything with ``speech_only(waves) -> list of speech signals``, e.g.
:class:`src.vad.silero.SileroSegmenter`), so this module stays below the VAD.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from src.data.audio import SAMPLE_RATE_HZ, AudioError, load_audio, without_dc
from src.data.manifest import Clip

log = logging.getLogger(__name__)

DECODE_CHUNK_CLIPS = 64


@dataclass(frozen=True)
class CropAugmentParams:
    """On-the-fly augmentation of training crops (``speech.augment``): a random gain, then white
    Gaussian noise at a random SNR for a share of the crops."""

    noise_prob: float = 0.8  # share of crops that get white Gaussian noise ...
    snr_db_min: float = 5.0  # ... at an SNR drawn uniformly from this range, dB
    snr_db_max: float = 40.0
    gain_db_max: float = 6.0  # random gain, uniform in +-this, dB (before the noise)


@dataclass(frozen=True)
class SpeechParams:
    """Which clips an end-to-end run keeps and how it crops and augments them (the ``speech``
    config group; the schema and defaults of ``conf`` are this dataclass)."""

    crop_s: float = 2.0  # training crop (a random time shift); shorter speech is tiled. Eval: the whole clip
    min_clip_s: float = 0.5  # shorter files are left out (too_short)
    min_speech_s: float = 0.25  # less speech after the VAD is left out (no_speech)
    max_duration_s: float = 600.0  # longer files are left out (too_long)
    augment: CropAugmentParams = field(default_factory=CropAugmentParams)


class Segmenter(Protocol):
    def speech_only(self, waves: list[np.ndarray]) -> list[np.ndarray]: ...


@dataclass
class SpeechSet:
    """The usable clips' speech (16 kHz mono float32), row-aligned with ``clips``."""

    clips: list[Clip]
    speech: list[np.ndarray]
    skipped: dict[str, int]


def decode_speech(clips: list[Clip], segmenter: Segmenter, min_clip_s: float, min_speech_s: float,
                  max_duration_s: float) -> SpeechSet:
    """Decode every clip once and keep its speech; bad files are counted, not fatal."""
    kept: list[Clip] = []
    speech: list[np.ndarray] = []
    skipped: Counter = Counter()
    for start in range(0, len(clips), DECODE_CHUNK_CLIPS):
        chunk, waves = [], []
        for c in clips[start:start + DECODE_CHUNK_CLIPS]:
            try:
                w = load_audio(c.path, SAMPLE_RATE_HZ, max_duration_s)
            except AudioError as e:
                skipped[e.reason] += 1
                continue
            if len(w) < min_clip_s * SAMPLE_RATE_HZ:
                skipped["too_short"] += 1
                continue
            chunk.append(c)
            waves.append(without_dc(w))
        for c, s in zip(chunk, segmenter.speech_only(waves)):
            if len(s) < min_speech_s * SAMPLE_RATE_HZ:
                skipped["no_speech"] += 1
                continue
            kept.append(c)
            speech.append(np.ascontiguousarray(s, np.float32))
    if skipped:
        log.info("left out %s", dict(skipped))
    return SpeechSet(kept, speech, dict(skipped))


def tile_to(wave: np.ndarray, n: int) -> np.ndarray:
    """Repeat ``wave`` until it has at least ``n`` samples."""
    return wave if len(wave) >= n else np.tile(wave, -(-n // len(wave)))


def random_crop(wave: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` samples from a random offset (shorter speech is tiled from a random phase first)."""
    if len(wave) < n:
        wave = np.roll(tile_to(wave, n + len(wave)), -int(rng.integers(len(wave))))
    start = int(rng.integers(len(wave) - n + 1))
    return wave[start:start + n]


def augment(crop: np.ndarray, p: CropAugmentParams, rng: np.random.Generator) -> np.ndarray:
    """Random gain (uniform dB), then white Gaussian noise at a uniform random SNR (with ``noise_prob``)."""
    out = crop * np.float32(10 ** (rng.uniform(-p.gain_db_max, p.gain_db_max) / 20))
    if rng.random() < p.noise_prob:
        snr_db = rng.uniform(p.snr_db_min, p.snr_db_max)
        power = float(np.mean(out.astype(np.float64) ** 2)) + 1e-12
        out = out + rng.standard_normal(len(out)).astype(np.float32) * np.float32(np.sqrt(power / 10 ** (snr_db / 10)))
    return out.astype(np.float32, copy=False)
