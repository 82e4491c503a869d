"""Resemblyzer's GE2E speaker encoder (256-d), with the weights shipped in its wheel."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from src.encoders.base import resolve_device


class ResemblyzerEncoder:
    """``resemblyzer.VoiceEncoder`` behind the :class:`~src.encoders.base.Encoder` protocol.

    Silero VAD has already removed non-speech, so Resemblyzer's own webrtcvad trimming
    is skipped; its volume normalisation (to ``target_dbfs``, increase only) is kept.
    """

    name = "resemblyzer"
    dim = 256
    sample_rate_hz = 16_000

    def __init__(self, device: str = "cpu", target_dbfs: float = -30.0, rate: float = 1.3):
        from resemblyzer import VoiceEncoder

        self.device = resolve_device(device)
        self.model = VoiceEncoder(device=self.device, verbose=False)
        self.target_dbfs = target_dbfs
        self.rate = rate  # partial windows per second (Resemblyzer's default 1.3)
        weights = Path(__import__("resemblyzer").__file__).parent / "pretrained.pt"
        digest = hashlib.sha256(weights.read_bytes()).hexdigest()[:12] if weights.exists() else "?"
        self.identity = f"resemblyzer/pretrained.pt sha256:{digest}"

    def embed(self, waves: list[np.ndarray]) -> np.ndarray:
        """(B,) waveforms at 16 kHz -> (B, 256) L2-normalised utterance embeddings."""
        from resemblyzer.audio import normalize_volume

        out = np.empty((len(waves), self.dim), np.float32)
        for i, w in enumerate(waves):
            w = normalize_volume(w.astype(np.float32), self.target_dbfs, increase_only=True)
            out[i] = self.model.embed_utterance(w, rate=self.rate)
        return out
