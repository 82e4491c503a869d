"""The log-mel front end of ``encoder=melcnn``, the CNN trained end to end from audio.

There is nothing to extract: ``python -m src.train encoder=melcnn model=melcnn`` decodes the
clips, keeps their Silero speech in memory and trains :class:`src.models.melcnn.MelCNN`
(this front end + the CNN) on it (``src/training/end_to_end.py``). :class:`MelCNNEncoder`
exists so that the encoder key is the same everywhere; it cannot embed.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class EndToEndOnly(RuntimeError):
    """An end-to-end encoder used where frozen embeddings are expected."""


class LogMel(nn.Module):
    """(B, T) 16 kHz waveforms -> (B, n_mels, frames) log-mel spectrograms, each band's mean
    over time removed (per utterance, so a constant gain or channel colouring cancels out).

    Args:
        sample_rate_hz: rate of the input.
        n_mels: mel bands between ``f_min_hz`` and ``f_max_hz``.
        win_ms, hop_ms: analysis window and hop (25 ms / 10 ms = 400 / 160 samples at 16 kHz);
            the FFT is the next power of two of the window.
    """

    def __init__(self, sample_rate_hz: int = 16_000, n_mels: int = 64, win_ms: float = 25.0,
                 hop_ms: float = 10.0, f_min_hz: float = 50.0, f_max_hz: float = 8000.0):
        super().__init__()
        import torchaudio

        win = round(sample_rate_hz * win_ms / 1000)
        self.hop_samples = round(sample_rate_hz * hop_ms / 1000)
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=sample_rate_hz, n_fft=1 << (win - 1).bit_length(), win_length=win,
            hop_length=self.hop_samples, f_min=f_min_hz, f_max=f_max_hz, n_mels=n_mels, power=2.0)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        x = torch.log(self.mel(wave) + 1e-6)
        return x - x.mean(dim=-1, keepdim=True)


class MelCNNEncoder:
    """The ``melcnn`` key's encoder entry: its front-end settings, no frozen weights.

    ``embed`` raises :class:`EndToEndOnly`: the network is trained per run by ``src.train``.
    """

    name = "melcnn"
    dim = 128
    sample_rate_hz = 16_000

    def __init__(self, device: str = "cpu", sample_rate_hz: int = 16_000, n_mels: int = 64, win_ms: float = 25.0,
                 hop_ms: float = 10.0, f_min_hz: float = 50.0, f_max_hz: float = 8000.0):
        self.frontend_kwargs = dict(sample_rate_hz=sample_rate_hz, n_mels=n_mels, win_ms=win_ms, hop_ms=hop_ms,
                                    f_min_hz=f_min_hz, f_max_hz=f_max_hz)
        self.identity = (f"log-mel {n_mels} bands {f_min_hz:g}-{f_max_hz:g} Hz, win {win_ms:g} ms, hop {hop_ms:g} ms"
                         " (trained end to end)")

    def embed(self, waves: list[np.ndarray]) -> np.ndarray:
        raise EndToEndOnly("encoder=melcnn is trained end to end from audio and has no frozen embeddings: "
                           "use `python -m src.train encoder=melcnn model=melcnn`")
