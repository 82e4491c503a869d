"""Audio decoding: any file libsndfile reads (wav, flac, mp3, ogg, ...) at any rate and
channel count becomes 16 kHz mono float32.

Files are decoded block by block and resampled with a streaming soxr resampler into
one preallocated 16 kHz buffer, so a one-hour 48 kHz stereo file needs about its
16 kHz mono size in memory (plus one block), not its decoded size.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

SAMPLE_RATE_HZ = 16_000
BLOCK_S = 10.0  # decode this many seconds at a time


class AudioError(Exception):
    """A file that cannot become speech samples; ``reason`` is a short stable code."""

    def __init__(self, reason: str, message: str):
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


def audio_info(path: str | Path) -> sf._SoundFileInfo:
    """libsndfile's header info, or :class:`AudioError` (missing, empty_file, unreadable)."""
    path = Path(path)
    if not path.is_file():
        raise AudioError("missing", f"no such file: {path}")
    if path.stat().st_size == 0:
        raise AudioError("empty_file", f"zero-byte file: {path}")
    try:
        return sf.info(str(path))
    except Exception as e:  # libsndfile raises several types for non-audio data
        raise AudioError("unreadable", f"{path}: {e}") from None


def to_mono(block: np.ndarray) -> np.ndarray:
    """(frames, channels) -> (frames,) float32 by averaging the channels."""
    return block.mean(axis=1, dtype=np.float32) if block.ndim == 2 else block.astype(np.float32)


def resample(wave: np.ndarray, from_hz: int, to_hz: int = SAMPLE_RATE_HZ) -> np.ndarray:
    """Resample a mono float32 array (soxr, high quality); a no-op at equal rates."""
    if from_hz == to_hz:
        return wave.astype(np.float32, copy=False)
    return soxr.resample(wave, from_hz, to_hz, quality="HQ").astype(np.float32, copy=False)


def load_audio(path: str | Path, sample_rate_hz: int = SAMPLE_RATE_HZ,
               max_duration_s: float | None = None) -> np.ndarray:
    """Decode ``path`` to a mono float32 array at ``sample_rate_hz``.

    Raises:
        AudioError: ``missing``, ``empty_file``, ``unreadable``, ``empty_audio``
            (no samples), ``too_long`` (over ``max_duration_s``) or ``non_finite``
            (NaN or inf samples).
    """
    info = audio_info(path)
    if info.frames == 0:
        raise AudioError("empty_audio", f"{path}: no samples")
    if max_duration_s is not None and info.frames / info.samplerate > max_duration_s:
        raise AudioError("too_long", f"{path}: {info.frames / info.samplerate:.0f} s is over "
                                     f"the limit of {max_duration_s:.0f} s")
    out = np.empty(math.ceil(info.frames * sample_rate_hz / info.samplerate) + 64, np.float32)
    stream = (soxr.ResampleStream(info.samplerate, sample_rate_hz, 1, dtype="float32", quality="HQ")
              if info.samplerate != sample_rate_hz else None)
    filled = 0
    try:
        blocks = sf.blocks(str(path), blocksize=int(BLOCK_S * info.samplerate), dtype="float32",
                           always_2d=True)
        for block in blocks:
            mono = to_mono(block)
            if not np.isfinite(mono).all():
                raise AudioError("non_finite", f"{path}: NaN or infinite samples")
            if stream is not None:
                mono = stream.resample_chunk(mono, last=False)
            out, filled = _append(out, filled, mono)
        if stream is not None:
            out, filled = _append(out, filled, stream.resample_chunk(np.zeros(0, np.float32), last=True))
    except AudioError:
        raise
    except Exception as e:  # a header that decodes but a body that does not
        raise AudioError("unreadable", f"{path}: {e}") from None
    if filled == 0:
        raise AudioError("empty_audio", f"{path}: no samples")
    return out[:filled]


def _append(out: np.ndarray, filled: int, chunk: np.ndarray) -> tuple[np.ndarray, int]:
    """Copy ``chunk`` into ``out`` at ``filled``, growing ``out`` only if the header lied."""
    end = filled + len(chunk)
    if end > len(out):
        out = np.concatenate([out[:filled], np.empty(end - filled + SAMPLE_RATE_HZ, np.float32)])
    out[filled:end] = chunk
    return out, end
