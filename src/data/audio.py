"""Audio decoding: any file libsndfile reads (wav, flac, mp3, ogg, ...) at any rate and
channel count becomes 16 kHz mono float32.

Files are decoded block by block and resampled with a streaming soxr resampler into
one preallocated 16 kHz buffer, so a one-hour 48 kHz stereo file needs about its
16 kHz mono size in memory (plus one block), not its decoded size.
"""

from __future__ import annotations

import errno
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

SAMPLE_RATE_HZ = 16_000
BLOCK_S = 10.0  # decode this many seconds at a time
RESCUE_BLOCK_FRAMES = 1024  # after a decoding error, read this many frames at a time up to it
MIN_RATE_HZ, MAX_RATE_HZ = 4_000, 192_000  # sample rates a recording (or a stream) may declare


class AudioError(Exception):
    """A file that cannot become speech samples; ``reason`` is a short stable code."""

    def __init__(self, reason: str, message: str):
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


def audio_info(path: str | Path) -> sf._SoundFileInfo:
    """libsndfile's header info, or :class:`AudioError`: ``missing``, ``broken_symlink``,
    ``symlink_loop``, ``not_a_file`` (a folder, a device ...), ``empty_file``, ``unreadable``
    or ``bad_rate`` (a declared rate outside ``MIN_RATE_HZ``-``MAX_RATE_HZ``)."""
    path = Path(path)
    check_file(path)
    try:
        info = sf.info(str(path))
    except Exception as e:  # libsndfile raises several types for non-audio data
        raise AudioError("unreadable", f"{path}: {e}") from None
    if not MIN_RATE_HZ <= info.samplerate <= MAX_RATE_HZ:
        raise AudioError("bad_rate", f"{path}: the header declares {info.samplerate} Hz, outside "
                                     f"{MIN_RATE_HZ}-{MAX_RATE_HZ} Hz")
    return info


def check_file(path: Path) -> None:
    """Raise :class:`AudioError` unless ``path`` is a non-empty regular file (after links)."""
    try:
        st = os.stat(path)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise AudioError("symlink_loop", f"{path}: a symbolic link that points back to itself") from None
        if os.path.islink(path):
            raise AudioError("broken_symlink", f"{path}: a symbolic link to {os.readlink(path)}, "
                                               "which does not exist") from None
        if e.errno in (errno.ENOENT, errno.ENOTDIR):
            raise AudioError("missing", f"no such file: {path}") from None
        raise AudioError("unreadable", f"{path}: {e.strerror}") from None
    if not path.is_file():
        kind = "a folder" if path.is_dir() else "not a regular file"
        raise AudioError("not_a_file", f"{path} is {kind}, not an audio file")
    if st.st_size == 0:
        raise AudioError("empty_file", f"zero-byte file: {path}")


def to_mono(block: np.ndarray) -> np.ndarray:
    """(frames, channels) -> (frames,) float32 by averaging the channels."""
    return block.mean(axis=1, dtype=np.float32) if block.ndim == 2 else block.astype(np.float32)


def without_dc(wave: np.ndarray) -> np.ndarray:
    """``wave`` minus its mean (its DC offset; the mean taken in float64), as float32. An offset of
    0.3 turned a sure 0.97 into an unsure 0.57 with Resemblyzer."""
    return wave - np.float32(wave.mean(dtype=np.float64)) if len(wave) else wave


def resample(wave: np.ndarray, from_hz: int, to_hz: int = SAMPLE_RATE_HZ) -> np.ndarray:
    """Resample a mono float32 array (soxr, high quality); a no-op at equal rates."""
    if from_hz == to_hz:
        return wave.astype(np.float32, copy=False)
    return soxr.resample(wave, from_hz, to_hz, quality="HQ").astype(np.float32, copy=False)


@dataclass
class DecodedAudio:
    """A decoded recording; ``truncated`` when the file ends (or stops decoding) before the
    length its header declares, in which case ``wave`` holds what decoded."""

    wave: np.ndarray
    truncated: bool = False
    native: object = None  # what ``decode_audio(native=...)`` made, having seen the native-rate blocks


def load_audio(path: str | Path, sample_rate_hz: int = SAMPLE_RATE_HZ,
               max_duration_s: float | None = None) -> np.ndarray:
    """Decode ``path`` to a mono float32 array at ``sample_rate_hz`` (see :func:`decode_audio`)."""
    return decode_audio(path, sample_rate_hz, max_duration_s).wave


def decode_audio(path: str | Path, sample_rate_hz: int = SAMPLE_RATE_HZ,
                 max_duration_s: float | None = None, native=None) -> DecodedAudio:
    """Decode ``path`` to a mono float32 array at ``sample_rate_hz``.

    ``native(rate_hz)``, if given, is called once with the file's own rate and returns an object
    whose ``add(block)`` sees every mono block at that rate before resampling (the quality check:
    clipping is seen there, not after resampling); it is returned as ``DecodedAudio.native``.

    The cost is bounded before decoding: the declared rate must be within
    ``MIN_RATE_HZ``-``MAX_RATE_HZ`` and the declared length under ``max_duration_s``; a
    header that understates the length is caught while decoding. A file cut short (a WAV
    whose data is shorter than its header says, a FLAC cut mid-frame) keeps what decodes,
    marked ``truncated``.

    Raises:
        AudioError: the reasons of :func:`audio_info`, ``empty_audio`` (no samples),
            ``too_long`` (over ``max_duration_s``) or ``non_finite`` (NaN or inf samples).
    """
    info = audio_info(path)
    if info.frames == 0:
        raise AudioError("empty_audio", f"{path}: no samples")
    if max_duration_s is not None and info.frames / info.samplerate > max_duration_s:
        raise AudioError("too_long", f"{path}: {info.frames / info.samplerate:.0f} s is over "
                                     f"the limit of {max_duration_s:.0f} s")
    max_frames = math.inf if max_duration_s is None else max_duration_s * info.samplerate
    out = np.empty(math.ceil(info.frames * sample_rate_hz / info.samplerate) + 64, np.float32)
    stream = (soxr.ResampleStream(info.samplerate, sample_rate_hz, 1, dtype="float32", quality="HQ")
              if info.samplerate != sample_rate_hz else None)
    filled, frames_read = 0, 0
    meter = native(info.samplerate) if native is not None else None
    truncated = "should be" in (info.extra_info or "")  # libsndfile: "data : 197280 (should be 98618)"

    def take(block: np.ndarray) -> None:
        nonlocal out, filled, frames_read
        frames_read += len(block)
        if frames_read > max_frames:
            raise AudioError("too_long", f"{path}: more than the limit of {max_duration_s:.0f} s of audio "
                                         "(the header understated it)")
        mono = to_mono(block)
        if not np.isfinite(mono).all():
            raise AudioError("non_finite", f"{path}: NaN or infinite samples")
        if meter is not None:
            meter.add(mono)
        if stream is not None:
            mono = stream.resample_chunk(mono, last=False)
        out, filled = _append(out, filled, mono)

    try:
        for block in sf.blocks(str(path), blocksize=int(BLOCK_S * info.samplerate), dtype="float32",
                               always_2d=True):
            take(block)
    except AudioError:
        raise
    except Exception as e:  # a header that decodes but a body that does not (all of it, or from some point)
        rescued = _rescue(path, frames_read, take)
        if filled == 0 and rescued == 0:
            raise AudioError("unreadable", f"{path}: {e}") from None
        truncated = True
    if stream is not None:
        out, filled = _append(out, filled, stream.resample_chunk(np.zeros(0, np.float32), last=True))
    if filled == 0:
        raise AudioError("empty_audio", f"{path}: no samples")
    return DecodedAudio(out[:filled], truncated, meter)


def _rescue(path: str | Path, start_frame: int, take) -> int:
    """After a decoding error, read small blocks from ``start_frame`` up to the damage (a FLAC
    cut mid-frame loses its last 10 s block otherwise); returns the frames rescued."""
    rescued = 0
    try:
        with sf.SoundFile(str(path)) as f:
            if start_frame:
                f.seek(start_frame)
            while len(block := f.read(RESCUE_BLOCK_FRAMES, dtype="float32", always_2d=True)):
                take(block)
                rescued += len(block)
    except AudioError:
        raise
    except Exception:  # the damage: keep what came before it
        pass
    return rescued


def _append(out: np.ndarray, filled: int, chunk: np.ndarray) -> tuple[np.ndarray, int]:
    """Copy ``chunk`` into ``out`` at ``filled``, growing ``out`` only if the header lied."""
    end = filled + len(chunk)
    if end > len(out):
        out = np.concatenate([out[:filled], np.empty(end - filled + SAMPLE_RATE_HZ, np.float32)])
    out[filled:end] = chunk
    return out, end
