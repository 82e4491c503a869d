"""A small CNN on log-mel spectrograms with a gender head and an optional age-band head
(``model=melcnn``, trained end to end: :mod:`src.models.end_to_end` has the protocol it keeps)."""

from __future__ import annotations

import torch
from torch import nn

from src.models.frontends import LogMel

MIN_FRAMES = 16  # four 2x2 poolings need at least this many frames (0.16 s at a 10 ms hop)


class MelCNN(nn.Module):
    """(B, T) 16 kHz speech -> (gender logits (B, n_classes), age-band logits (B, n_age_bands) or None).

    Log-mel front end (:class:`~src.models.frontends.LogMel`), then one block per entry of
    ``channels`` (3x3 conv, batch norm, ReLU, 2x2 max pool), global average pooling over
    frequency and time, dropout and two linear heads.

    Args:
        channels: output channels of the conv blocks (16-32-64-128: ~0.1 M parameters).
        dropout: before the heads.
        n_classes: gender logits (2: female, male).
        n_age_bands: age-band logits; 0 builds no age head.
        sample_rate_hz, n_mels, win_ms, hop_ms, f_min_hz, f_max_hz: the front end's settings.
    """

    def __init__(self, channels: tuple[int, ...] | list[int] = (16, 32, 64, 128), dropout: float = 0.3,
                 n_classes: int = 2, n_age_bands: int = 0, sample_rate_hz: int = 16_000, n_mels: int = 64,
                 win_ms: float = 25.0, hop_ms: float = 10.0, f_min_hz: float = 50.0, f_max_hz: float = 8000.0):
        super().__init__()
        self.frontend = LogMel(sample_rate_hz, n_mels, win_ms, hop_ms, f_min_hz, f_max_hz)
        blocks, c_in = [], 1
        for c in channels:
            blocks += [nn.Conv2d(c_in, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(), nn.MaxPool2d(2)]
            c_in = c
        self.blocks = nn.Sequential(*blocks)
        self.dropout = nn.Dropout(dropout)
        self.gender_head = nn.Linear(c_in, n_classes)
        self.age_head = nn.Linear(c_in, n_age_bands) if n_age_bands else None
        self.min_samples = MIN_FRAMES * self.frontend.hop_samples

    def embed(self, wave: torch.Tensor) -> torch.Tensor:
        """(B, T) -> (B, channels[-1]) pooled features; input shorter than ``min_samples`` is
        repeated up to it."""
        if wave.shape[-1] < self.min_samples:
            wave = wave.repeat(1, -(-self.min_samples // wave.shape[-1]))
        return self.blocks(self.frontend(wave).unsqueeze(1)).mean(dim=(2, 3))

    def forward(self, wave: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        h = self.dropout(self.embed(wave))
        return self.gender_head(h), (self.age_head(h) if self.age_head is not None else None)
