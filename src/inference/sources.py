"""Live audio sources for streaming, each yielding 16 kHz mono float32 chunks.

* :func:`file_chunks`: a recording replayed at real-time pace (or as fast as possible);
* :func:`pcm_chunks`: raw PCM from a byte stream (stdin) at a declared rate;
* :func:`mic_chunks`: the microphone through sounddevice (PortAudio).
"""

from __future__ import annotations

import logging
import queue
import time
from collections.abc import Iterator
from typing import BinaryIO

import numpy as np
import soxr

from src.data.audio import MAX_RATE_HZ, MIN_RATE_HZ, SAMPLE_RATE_HZ, AudioError, load_audio

log = logging.getLogger(__name__)

PCM_DTYPES = {"int16": (np.int16, 32768.0), "float32": (np.float32, 1.0)}


class SourceError(RuntimeError):
    """A stream that cannot be read; the message says what to change."""


def file_chunks(path: str, block_s: float = 0.1, realtime: bool = True) -> Iterator[np.ndarray]:
    """A file's audio in ``block_s`` chunks, paced like a live stream when ``realtime``.

    Raises:
        SourceError: the file is missing, empty or cannot be decoded.
    """
    try:
        wave = load_audio(path)
    except AudioError as e:
        raise SourceError(f"cannot read the file source: {e}") from None
    block = max(1, int(block_s * SAMPLE_RATE_HZ))
    start = time.monotonic()
    for i in range(0, len(wave), block):
        if realtime:
            delay = start + i / SAMPLE_RATE_HZ - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        yield wave[i:i + block]


def check_pcm_format(rate_hz: int, dtype: str, channels: int) -> None:
    """Reject a declared format no PCM stream has."""
    if not MIN_RATE_HZ <= rate_hz <= MAX_RATE_HZ:
        raise SourceError(f"declared rate {rate_hz} Hz is outside {MIN_RATE_HZ}-{MAX_RATE_HZ} Hz")
    if dtype not in PCM_DTYPES:
        raise SourceError(f"dtype {dtype!r} is not one of {list(PCM_DTYPES)}")
    if channels < 1:
        raise SourceError(f"channels must be at least 1, not {channels}")


def pcm_to_mono(data: bytes, dtype: str, channels: int = 1) -> np.ndarray:
    """Whole frames of interleaved PCM bytes -> mono float32 in [-1, 1].

    Raises:
        SourceError: float32 samples that are not finite or far outside [-1, 1] (usually
            int16 bytes declared as ``float32``).
    """
    np_dtype, scale = PCM_DTYPES[dtype]
    with np.errstate(all="ignore"):  # int16 bytes read as float32 hold NaN/inf: reported below
        mono = (np.frombuffer(data, np_dtype).reshape(-1, channels).astype(np.float32) / scale).mean(axis=1)
    if dtype == "float32" and (not np.isfinite(mono).all() or np.abs(mono).max(initial=0) > 8.0):
        raise SourceError("float32 samples are not finite or far outside [-1, 1]: is the stream int16? "
                          "set dtype=int16")
    return mono


def pcm_chunks(stream: BinaryIO, rate_hz: int, dtype: str = "int16", channels: int = 1,
               block_s: float = 0.1) -> Iterator[np.ndarray]:
    """Raw interleaved PCM bytes -> 16 kHz mono float32 chunks (resampled on the fly).

    Raises:
        SourceError: an impossible declared format, a WAV/other container instead of raw
            PCM, or float samples that are not finite or far outside [-1, 1] (usually int16
            bytes declared as ``float32``). Float32 bytes declared as ``int16`` are not
            detected: they play as loud noise.
    """
    check_pcm_format(rate_hz, dtype, channels)
    frame_bytes = np.dtype(PCM_DTYPES[dtype][0]).itemsize * channels
    block_bytes = max(1, int(block_s * rate_hz)) * frame_bytes
    resampler = soxr.ResampleStream(rate_hz, SAMPLE_RATE_HZ, 1, dtype="float32") if rate_hz != SAMPLE_RATE_HZ else None
    pending, first = b"", True
    while True:
        data = stream.read(block_bytes)
        if first and data[:4] in (b"RIFF", b"fLaC", b"OggS", b"ID3\x03", b"ID3\x04"):
            raise SourceError("standard input holds an audio file, not raw PCM: use source=file:<path>, "
                              "or strip the header (e.g. `sox in.wav -t raw -e signed -b 16 -`)")
        first = False
        if not data:
            break
        pending += data
        usable = len(pending) - len(pending) % frame_bytes
        mono = pcm_to_mono(pending[:usable], dtype, channels)
        pending = pending[usable:]
        yield resampler.resample_chunk(mono) if resampler else mono
    if pending:
        log.warning("the stream ended in the middle of a sample frame (%d stray bytes ignored)", len(pending))
    if resampler:
        yield resampler.resample_chunk(np.zeros(0, np.float32), last=True)


def mic_chunks(block_s: float = 0.1, device: str | int | None = None) -> Iterator[np.ndarray]:
    """The microphone at 16 kHz mono (PortAudio resamples); stops with a clear message on device loss."""
    try:
        import sounddevice as sd
    except (ImportError, OSError) as e:
        raise SourceError(f"the microphone needs sounddevice and PortAudio ({e}): "
                          "`pip install sounddevice` and, on Debian/Ubuntu, `apt install libportaudio2`") from None
    q: queue.Queue = queue.Queue()

    def callback(indata, frames, time_info, status) -> None:
        if status:
            log.warning("audio input: %s", status)
        q.put(indata[:, 0].copy())

    try:
        with sd.InputStream(samplerate=SAMPLE_RATE_HZ, channels=1, dtype="float32", device=device,
                            blocksize=int(block_s * SAMPLE_RATE_HZ), callback=callback) as stream:
            while stream.active:
                try:
                    yield q.get(timeout=2.0)
                except queue.Empty:
                    raise SourceError("no audio from the microphone for 2 s: was the device unplugged?") from None
    except sd.PortAudioError as e:
        raise SourceError(f"audio device error: {e}; list devices with `python -m sounddevice`") from None
