"""The Encoder protocol: what every embedding model looks like to the pipeline."""

from __future__ import annotations

import hashlib
import os
import socket
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable
from urllib.parse import urlparse

import numpy as np
import torch

from src.data.audio import without_dc


class EncoderLoadError(RuntimeError):
    """Weights that cannot be loaded; the message says which setting supplies a local copy."""


@runtime_checkable
class Encoder(Protocol):
    """Turns speech into fixed-size vectors.

    Attributes:
        name: the encoder key (``ecapa``, ``resemblyzer``, ...), as in ``conf/encoder/<name>.yaml``.
        dim: embedding size.
        sample_rate_hz: the rate ``embed`` expects (16 kHz for all built-in encoders).
        identity: what weights these are (hub id, file name and hash, ...), stored with embeddings.
    """

    name: str
    dim: int
    sample_rate_hz: int
    identity: str

    def embed(self, waves: list[np.ndarray]) -> np.ndarray:
        """Embed a batch of mono float32 waveforms -> float32 array (len(waves), dim)."""
        ...


def embed_slices(encoder: Encoder, signal: np.ndarray, bounds: list[tuple[int, int]]) -> np.ndarray:
    """The vectors of ``signal[a:b]`` for each ``(a, b)`` in ``bounds`` (samples) -> (len(bounds), dim)
    float32. Pass ``signal`` with its DC offset removed.

    Many overlapping windows of one signal (a timeline's) are what this is for: an encoder with its
    own ``embed_slices(signal, bounds)`` computes them at once (eGeMAPS: one openSMILE pass over the
    signal, functionals per window; close to, not equal to, ``embed`` on each slice); any other gets
    ``embed`` on the slices, each slice's own DC offset removed, as ``GenderPipeline.features`` does.
    """
    own = getattr(encoder, "embed_slices", None)
    if own is not None:
        return own(signal, bounds)
    return encoder.embed(Waves(len(bounds), lambda i: without_dc(signal[bounds[i][0]:bounds[i][1]])))


def window_groups(bounds: list[tuple[int, int]], span: int) -> list[list[int]]:
    """The indices of ``bounds`` in the order of their starts, in groups whose windows all end within
    ``span`` samples of the group's first start (a group has one window at least): the windows an
    encoder that works on a long signal block by block computes from one block."""
    order = sorted(range(len(bounds)), key=lambda k: bounds[k][0])
    groups: list[list[int]] = []
    for k in order:
        if groups and bounds[k][1] - bounds[groups[-1][0]][0] <= span:
            groups[-1].append(k)
        else:
            groups.append([k])
    return groups


def embed_with_slices(encoder: Encoder, signal: np.ndarray, bounds: list[tuple[int, int]]
                      ) -> tuple[np.ndarray, np.ndarray]:
    """``(encoder.embed([signal])[0], embed_slices(encoder, signal, bounds))``: a recording's vector
    and its timeline windows' (``signal`` with its DC offset removed). An encoder with its own
    ``embed_with_slices`` computes both at once (eGeMAPS: one openSMILE run, the same numbers as
    the two calls; a fusion: each part its own way)."""
    own = getattr(encoder, "embed_with_slices", None)
    if own is not None:
        return own(signal, bounds)
    return encoder.embed([signal])[0], embed_slices(encoder, signal, bounds)


class Waves(Sequence):
    """``n`` waveforms, each made when it is read (``make(i)``) and not kept: what an encoder's
    ``embed`` takes in place of a list when holding all of them at once would cost memory in
    proportion to a recording's length (a timeline's 1.5 s windows every 0.5 s are three times the
    speech; an hour of speech is 7,200 windows, 690 MB as float32 copies). An encoder that reads
    each wave once, in order (all the built-in ones but ECAPA and wav2vec2, which pad a batch),
    holds one at a time. A slice gives a list."""

    def __init__(self, n: int, make):
        self.n, self.make = n, make

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self.make(k) for k in range(*i.indices(self.n))]
        if not -self.n <= i < self.n:
            raise IndexError(i)
        return self.make(i % self.n)


def centred_piece(y: np.ndarray, f0: int, f1: int, frame_length: int, hop: int) -> np.ndarray:
    """The samples of frames ``f0``..``f1 - 1`` of librosa's centred framing of ``y`` (zero padding of
    ``frame_length // 2`` at both ends, ``pad_mode="constant"``; zeros past its end), to be framed with
    ``center=False``: a long wave's frames piece by piece, each the same samples as in one pass."""
    half = frame_length // 2
    p0, p1 = f0 * hop - half, (f1 - 1) * hop + frame_length - half
    piece = np.zeros(p1 - p0, np.float32)
    lo, hi = max(0, p0), min(len(y), p1)
    if hi > lo:
        piece[lo - p0:hi - p0] = y[lo:hi]
    return piece


def resolve_device(device: str) -> torch.device:
    """``auto`` -> cuda when available else cpu; ``cuda`` without a GPU is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise EncoderLoadError("device=cuda was asked for but no GPU is available; use device=cpu or auto")
    return torch.device(device)


def pad_batch(waves: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-pad waveforms to one (B, T) tensor; also return their lengths in samples."""
    lengths = torch.tensor([len(w) for w in waves], dtype=torch.long)
    batch = torch.zeros(len(waves), int(lengths.max()), dtype=torch.float32)
    for i, w in enumerate(waves):
        batch[i, : len(w)] = torch.from_numpy(np.ascontiguousarray(w, dtype=np.float32))
    return batch, lengths


PROBE_TIMEOUT_S = 3.0  # how long a connectivity check may take before we call it offline
PROXY_ENV_VARS = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


def host_reachable(url: str, timeout_s: float = PROBE_TIMEOUT_S) -> bool:
    """Whether a TCP connection to ``url``'s host opens within ``timeout_s`` (DNS included).

    Downloaders retry for tens of seconds (huggingface_hub: ~25 s) before giving up, so
    a quick probe lets a machine without network fail in seconds. Behind a proxy the
    host is not reachable directly; then the probe says yes and lets the client try.
    """
    if any(os.environ.get(v) for v in PROXY_ENV_VARS):
        return True
    parsed = urlparse(url)
    address = (parsed.hostname or "", parsed.port or (443 if parsed.scheme == "https" else 80))
    ok: list[bool] = []

    def connect() -> None:
        try:
            socket.create_connection(address, timeout=timeout_s).close()
            ok.append(True)
        except OSError:
            pass

    # A thread bounds DNS resolution too, which socket timeouts do not cover.
    probe = threading.Thread(target=connect, daemon=True)
    probe.start()
    probe.join(timeout_s)
    return bool(ok)


def file_sha256(path: str | Path, n_hex: int = 12) -> str:
    """First ``n_hex`` hex digits of the file's sha256 (read in chunks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:n_hex]
