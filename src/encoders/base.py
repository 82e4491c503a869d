"""The Encoder protocol: what every embedding model looks like to the pipeline."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import torch


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
