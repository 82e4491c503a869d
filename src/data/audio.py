"""Audio decoding: any file libsndfile reads (wav, flac, mp3, ogg, ...), and any other container
FFmpeg decodes (m4a/AAC from phones, mp4, webm/opus from browsers, ...; through PyAV, which ships
its own FFmpeg libraries), at any rate and channel count, becomes 16 kHz mono float32; so does an
array in any of the forms :func:`wave_from_array` takes.

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


def to_mono(block: np.ndarray, channel: int | None = None) -> np.ndarray:
    """(frames, channels) -> (frames,) float32 by averaging the channels, or channel ``channel`` alone."""
    if block.ndim == 1:
        return block.astype(np.float32)
    if channel is not None:
        if not -block.shape[1] <= channel < block.shape[1]:
            raise AudioError("bad_channel", f"channel={channel}, but the audio has {block.shape[1]} channel(s)")
        return block[:, channel].astype(np.float32)
    return block.mean(axis=1, dtype=np.float32)


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
               max_duration_s: float | None = None, channel: int | None = None) -> np.ndarray:
    """Decode ``path`` to a mono float32 array at ``sample_rate_hz`` (see :func:`decode_audio`)."""
    return decode_audio(path, sample_rate_hz, max_duration_s, channel).wave


def decode_audio(path: str | Path, sample_rate_hz: int = SAMPLE_RATE_HZ,
                 max_duration_s: float | None = None, channel: int | None = None, native=None) -> DecodedAudio:
    """Decode ``path`` to a mono float32 array at ``sample_rate_hz`` (the channels averaged, or
    ``channel`` alone). libsndfile first (wav, flac, mp3, ogg: the fast path); a file it does not
    recognise goes to FFmpeg (:func:`decode_with_ffmpeg`).

    ``native(rate_hz)``, if given, is called once with the file's own rate and returns an object
    whose ``add(block)`` sees every mono block at that rate before resampling (the quality check:
    clipping is seen there, not after resampling); it is returned as ``DecodedAudio.native``. A
    file only FFmpeg reads is metered on its decoded ``sample_rate_hz`` samples instead.

    The cost is bounded before decoding: the declared rate must be within
    ``MIN_RATE_HZ``-``MAX_RATE_HZ`` and the declared length under ``max_duration_s``; a
    header that understates the length is caught while decoding. A file cut short (a WAV
    whose data is shorter than its header says, a FLAC cut mid-frame) keeps what decodes,
    marked ``truncated``.

    Raises:
        AudioError: the reasons of :func:`audio_info`, ``empty_audio`` (no samples),
            ``too_long`` (over ``max_duration_s``), ``non_finite`` (NaN or inf samples) or
            ``bad_channel`` (no such ``channel``); ``unreadable`` when neither decoder can read it.
    """
    try:
        info = audio_info(path)
    except AudioError as e:
        if e.reason != "unreadable":
            raise
        decoded = decode_with_ffmpeg(path, sample_rate_hz, max_duration_s, channel)
        if native is not None:
            decoded.native = native(sample_rate_hz)
            decoded.native.add(decoded.wave)
        return decoded
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
        mono = to_mono(block, channel)
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


def decode_with_ffmpeg(path: str | Path, sample_rate_hz: int = SAMPLE_RATE_HZ, max_duration_s: float | None = None,
                       channel: int | None = None) -> DecodedAudio:
    """Decode the first audio stream of any container FFmpeg reads (m4a/AAC, mp4, webm/opus, mkv,
    amr, wma ...) through PyAV, to a mono float32 array at ``sample_rate_hz``: the same channel
    averaging and soxr resampling as the libsndfile path. A stream that stops decoding part way
    keeps what decoded, marked ``truncated``.

    Raises:
        AudioError: ``unreadable`` (not a container FFmpeg knows, or no audio stream in it),
            ``bad_rate``, ``too_long``, ``non_finite``, ``bad_channel`` or ``empty_audio``.
    """
    import av

    try:
        container = av.open(str(path), metadata_errors="ignore")
    except Exception as e:  # av.error.InvalidDataError and friends; also OSError
        raise AudioError("unreadable", f"{path}: not audio that libsndfile or FFmpeg can decode "
                                       f"({_ffmpeg_message(e)})") from None
    with container:
        if not container.streams.audio:
            kinds = sorted({s.type for s in container.streams}) or ["no streams"]
            raise AudioError("unreadable", f"{path}: no audio stream in it (FFmpeg finds {', '.join(kinds)})")
        st = container.streams.audio[0]
        rate = int(st.rate or st.codec_context.sample_rate or 0)
        if not MIN_RATE_HZ <= rate <= MAX_RATE_HZ:
            raise AudioError("bad_rate", f"{path}: the stream declares {rate} Hz, outside "
                                         f"{MIN_RATE_HZ}-{MAX_RATE_HZ} Hz")
        declared_s = (float(st.duration * st.time_base) if st.duration and st.time_base
                      else (container.duration / 1e6 if container.duration else None))
        if max_duration_s is not None and declared_s is not None and declared_s > max_duration_s:
            raise AudioError("too_long", f"{path}: {declared_s:.0f} s is over the limit of {max_duration_s:.0f} s")
        max_frames = math.inf if max_duration_s is None else max_duration_s * rate
        to_float = av.AudioResampler(format="fltp", rate=rate)  # planar float32 at the stream's rate
        stream = (soxr.ResampleStream(rate, sample_rate_hz, 1, dtype="float32", quality="HQ")
                  if rate != sample_rate_hz else None)
        chunks: list[np.ndarray] = []
        frames_read, truncated = 0, False

        def take(frames) -> None:
            nonlocal frames_read
            for f in frames:
                block = f.to_ndarray().T  # (samples, channels)
                frames_read += len(block)
                if frames_read > max_frames:
                    raise AudioError("too_long", f"{path}: more than the limit of {max_duration_s:.0f} s of audio")
                mono = to_mono(block, channel)
                if not np.isfinite(mono).all():
                    raise AudioError("non_finite", f"{path}: NaN or infinite samples")
                chunks.append(stream.resample_chunk(mono, last=False) if stream is not None else mono)

        try:
            for packet in container.demux(st):
                for frame in packet.decode():
                    take(to_float.resample(frame))
            take(to_float.resample(None))
        except AudioError:
            raise
        except Exception as e:  # damaged data part way (or from the start)
            if frames_read == 0:
                raise AudioError("unreadable", f"{path}: FFmpeg cannot decode its audio "
                                               f"({_ffmpeg_message(e)})") from None
            truncated = True
    if stream is not None:
        chunks.append(stream.resample_chunk(np.zeros(0, np.float32), last=True))
    wave = np.concatenate(chunks).astype(np.float32, copy=False) if chunks else np.zeros(0, np.float32)
    if len(wave) == 0:
        raise AudioError("empty_audio", f"{path}: no samples")
    return DecodedAudio(wave, truncated)


def _ffmpeg_message(e: Exception) -> str:
    """FFmpeg's own words without the file name PyAV appends (the caller names the file)."""
    text = getattr(e, "strerror", None) or str(e)
    return str(text).split(": '")[0].strip() or type(e).__name__


ARRAY_FORMS = ("a 1-D (or 2-D: frames x channels or channels x frames) array with sample_rate_hz=, "
               "an (array, sample_rate) pair, or {'waveform': array, 'sample_rate': rate}")
MAX_CHANNELS = 8  # a 2-D array's channel axis is the one no longer than this
INT_SCALES = {np.dtype(np.int16): 2.0**15, np.dtype(np.int32): 2.0**31, np.dtype(np.int8): 2.0**7}
MAX_FLOAT_PEAK = 2.0  # float samples beyond this are integer PCM stored as float, not audio in [-1, 1]


def wave_from_array(audio, sample_rate_hz: int | None = None, channel: int | None = None,
                    to_hz: int = SAMPLE_RATE_HZ) -> np.ndarray:
    """An in-memory recording as a mono float32 array at ``to_hz``.

    ``audio`` is a NumPy array or a torch tensor (``sample_rate_hz`` says its rate), an ``(array,
    rate)`` pair (``scipy.io.wavfile.read`` gives ``(rate, array)``: swap it), a pyannote-style
    ``{"waveform", "sample_rate"}`` or a Hugging Face ``datasets`` ``{"array", "sampling_rate"}``
    dict. int16, int32 and int8 samples are scaled to [-1, 1], uint8 (8-bit WAV) around 128; float
    samples must be within about [-1, 1]. A 2-D array has its channels averaged (or ``channel``
    alone); its channel axis is the short one (at most :data:`MAX_CHANNELS`), first or last. NaN
    and infinite samples come back as they are (the caller's answer says ``non_finite``).

    Raises:
        ValueError: one line saying what is wrong and which forms are taken.
    """
    array, rate = audio, sample_rate_hz
    if isinstance(audio, dict):
        keys = [k for k in (("waveform", "sample_rate"), ("array", "sampling_rate")) if k[0] in audio]
        if not keys or keys[0][1] not in audio:
            raise ValueError(f"a dict with keys {sorted(map(str, audio))}; expected {ARRAY_FORMS}")
        array, rate = audio[keys[0][0]], audio[keys[0][1]]
    elif isinstance(audio, tuple):
        if len(audio) != 2:
            raise ValueError(f"a tuple of {len(audio)} items; expected {ARRAY_FORMS}")
        array, rate = audio
        if np.ndim(array) == 0 and np.ndim(rate) > 0:
            raise ValueError("a (rate, array) pair: pass (array, rate), e.g. rate, a = scipy.io.wavfile.read(f); "
                             "(a, rate)")
    if rate is not sample_rate_hz and sample_rate_hz is not None and rate != sample_rate_hz:
        raise ValueError(f"two sample rates: {rate} with the audio and sample_rate_hz={sample_rate_hz}")
    if rate is None:
        rate = SAMPLE_RATE_HZ
    if hasattr(array, "detach"):  # a torch tensor
        array = array.detach().cpu().numpy()
    if isinstance(array, list):
        array = np.asarray(array, np.float32)
    if not isinstance(array, np.ndarray):
        raise ValueError(f"audio of type {type(array).__name__}; expected {ARRAY_FORMS}")
    if isinstance(rate, bool) or not isinstance(rate, (int, np.integer, float)) or rate != int(rate):
        raise ValueError(f"sample rate {rate!r}: give a whole number of Hz")
    rate = int(rate)
    if not MIN_RATE_HZ <= rate <= MAX_RATE_HZ:
        raise ValueError(f"sample rate {rate} Hz is outside {MIN_RATE_HZ}-{MAX_RATE_HZ} Hz")
    if not (array.dtype in INT_SCALES or array.dtype == np.uint8 or array.dtype.kind == "f"):
        raise ValueError(f"{array.dtype} samples: give float32/float64 in [-1, 1] or int16/int32/int8/uint8 PCM")
    wave = _scaled(_mono(array, channel))
    finite = wave[np.isfinite(wave)]
    peak = float(np.abs(finite).max()) if len(finite) else 0.0
    if peak > MAX_FLOAT_PEAK:
        raise ValueError(f"float samples reach {peak:g}: they must be within [-1, 1] (integer PCM stored as "
                         "float? divide int16 values by 32768)")
    return resample(np.ascontiguousarray(wave), rate, to_hz)


def _scaled(a: np.ndarray) -> np.ndarray:
    """Integer PCM (int8/16/32, uint8 around 128) -> float32 in [-1, 1]; float -> float32."""
    if a.dtype in INT_SCALES:
        return a.astype(np.float32) / np.float32(INT_SCALES[a.dtype])
    if a.dtype == np.uint8:
        return (a.astype(np.float32) - 128.0) / 128.0
    return a.astype(np.float32, copy=False)


def _mono(array: np.ndarray, channel: int | None) -> np.ndarray:
    """A 1-D or 2-D array as 1-D (dtype kept): ``channel`` alone, or the channels averaged (in float)."""
    if array.ndim == 1:
        if channel not in (None, 0, -1):
            raise ValueError(f"channel={channel}, but the audio is mono")
        return array
    if array.ndim != 2:
        raise ValueError(f"a {array.ndim}-D array of shape {array.shape}; expected {ARRAY_FORMS}")
    rows, cols = array.shape
    if rows <= MAX_CHANNELS < cols or (rows == 1 and cols > 1):
        array = array.T  # channels first (torchaudio, pyannote) -> frames x channels
    elif not (cols <= MAX_CHANNELS < rows or cols == 1):
        raise ValueError(f"a 2-D array of shape {array.shape}: which axis holds the channels? give (frames, channels) "
                         f"or (channels, frames) with at most {MAX_CHANNELS} channels")
    if channel is not None:
        if not -array.shape[1] <= channel < array.shape[1]:
            raise ValueError(f"channel={channel}, but the audio has {array.shape[1]} channel(s)")
        return array[:, channel]
    if array.shape[1] == 1:
        return array[:, 0]
    return _scaled(array).mean(axis=1, dtype=np.float32)
