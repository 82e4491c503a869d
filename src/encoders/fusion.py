"""Several encoders side by side (``encoder=resemblyzer_acoustic``, ``resemblyzer_egemaps``): one
vector per clip, the parts' vectors concatenated in the config's order.

Speaker embeddings carry the voice's identity; hand-crafted features carry what the label
rests on across corpora (F0, formants, spectral tilt: vocal-tract length). A classifier on
the concatenation can use both; the input normalisation of training puts them on one scale.
"""

from __future__ import annotations

import numpy as np

from src.encoders.base import Encoder, embed_slices, embed_with_slices


class FusionEncoder:
    """The concatenation of ``parts`` (built encoders, 16 kHz each).

    Args:
        parts: the encoders, in column order (Hydra builds them from the nested ``_target_``s).
        name: the encoder key (``conf/encoder/<name>.yaml``).
        device: accepted for the common encoder interface; each part has its own.
    """

    sample_rate_hz = 16_000

    def __init__(self, parts: list[Encoder], name: str, device: str = "cpu"):
        if not parts:
            raise ValueError("a fusion encoder needs at least one part")
        rates = {p.sample_rate_hz for p in parts}
        if rates != {self.sample_rate_hz}:
            raise ValueError(f"fusion parts must all take {self.sample_rate_hz} Hz audio, got {sorted(rates)}")
        self.parts = list(parts)
        self.name = name
        self.dim = sum(p.dim for p in self.parts)
        self.identity = " + ".join(p.identity for p in self.parts)

    def columns(self) -> dict[str, slice]:
        """Each part's columns in the fused vector, by part name."""
        out, start = {}, 0
        for p in self.parts:
            out[p.name] = slice(start, start + p.dim)
            start += p.dim
        return out

    def embed(self, waves: list[np.ndarray]) -> np.ndarray:
        """(B,) waveforms at 16 kHz -> (B, sum of the parts' dims) float32."""
        return np.concatenate([p.embed(waves) for p in self.parts], axis=1).astype(np.float32)

    def embed_slices(self, signal: np.ndarray, bounds: list[tuple[int, int]]) -> np.ndarray:
        """The fused vectors of ``signal[a:b]`` for each ``(a, b)``: each part's own way
        (:func:`src.encoders.base.embed_slices`), concatenated."""
        return np.concatenate([embed_slices(p, signal, bounds) for p in self.parts], axis=1).astype(np.float32)

    def embed_with_slices(self, signal: np.ndarray, bounds: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
        """``(embed([signal])[0], embed_slices(signal, bounds))``, each part its own way
        (:func:`src.encoders.base.embed_with_slices`)."""
        pairs = [embed_with_slices(p, signal, bounds) for p in self.parts]
        return (np.concatenate([w for w, _ in pairs]).astype(np.float32),
                np.concatenate([x for _, x in pairs], axis=1).astype(np.float32))
