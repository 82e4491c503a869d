"""A convolutional-recurrent network on MFCC frame sequences with a gender head and an optional
age-band head (``model=crnn``, trained end to end: :mod:`src.models.end_to_end` has the protocol
it keeps)."""

from __future__ import annotations

import torch
from torch import nn

from src.models.frontends import Mfcc


class CRNN(nn.Module):
    """(B, T) 16 kHz speech -> (gender logits (B, n_classes), age-band logits (B, n_age_bands) or None).

    MFCC front end (:class:`~src.models.frontends.Mfcc`, cepstral mean normalised per utterance),
    then one block per entry of ``conv_channels`` (1-D convolution over time, kernel
    ``kernel_frames``, batch norm, ReLU, max pool 2 over time), a bidirectional recurrent layer
    (LSTM or GRU) over the pooled frames, the mean of its outputs over time, dropout and two linear heads.

    Args:
        conv_channels: output channels of the convolution blocks (each halves the frame rate).
        kernel_frames: convolution width in frames (10 ms each before pooling).
        rnn: ``lstm`` or ``gru``.
        rnn_hidden: hidden units per direction; the pooled features have ``2 * rnn_hidden`` dims.
        rnn_layers: stacked recurrent layers.
        dropout: before the heads.
        n_classes: gender logits (2: female, male).
        n_age_bands: age-band logits; 0 builds no age head.
        sample_rate_hz, n_mfcc, n_mels, win_ms, hop_ms, f_min_hz, f_max_hz: the front end's settings.
    """

    def __init__(self, conv_channels: tuple[int, ...] | list[int] = (64, 64), kernel_frames: int = 5,
                 rnn: str = "lstm", rnn_hidden: int = 64, rnn_layers: int = 1, dropout: float = 0.3,
                 n_classes: int = 2, n_age_bands: int = 0, sample_rate_hz: int = 16_000, n_mfcc: int = 40,
                 n_mels: int = 64, win_ms: float = 25.0, hop_ms: float = 10.0, f_min_hz: float = 50.0,
                 f_max_hz: float = 8000.0):
        super().__init__()
        if rnn not in ("lstm", "gru"):
            raise ValueError(f"rnn={rnn!r}: lstm or gru")
        self.frontend = Mfcc(sample_rate_hz, n_mfcc, n_mels, win_ms, hop_ms, f_min_hz, f_max_hz)
        blocks, c_in = [], n_mfcc
        for c in conv_channels:
            blocks += [nn.Conv1d(c_in, c, kernel_frames, padding=kernel_frames // 2, bias=False), nn.BatchNorm1d(c),
                       nn.ReLU(), nn.MaxPool1d(2)]
            c_in = c
        self.blocks = nn.Sequential(*blocks)
        self.rnn = (nn.LSTM if rnn == "lstm" else nn.GRU)(c_in, rnn_hidden, num_layers=rnn_layers,
                                                          batch_first=True, bidirectional=True)
        self.dropout = nn.Dropout(dropout)
        self.gender_head = nn.Linear(2 * rnn_hidden, n_classes)
        self.age_head = nn.Linear(2 * rnn_hidden, n_age_bands) if n_age_bands else None
        self.min_samples = (2 ** len(conv_channels)) * self.frontend.hop_samples  # one frame after the pooling

    def embed(self, wave: torch.Tensor) -> torch.Tensor:
        """(B, T) -> (B, 2 * rnn_hidden) features, the recurrent outputs averaged over time; input
        shorter than ``min_samples`` is repeated up to it."""
        if wave.shape[-1] < self.min_samples:
            wave = wave.repeat(1, -(-self.min_samples // wave.shape[-1]))
        h = self.blocks(self.frontend(wave))  # (B, channels, frames)
        out, _ = self.rnn(h.transpose(1, 2))  # (B, frames, 2 * hidden)
        return out.mean(dim=1)

    def forward(self, wave: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        h = self.dropout(self.embed(wave))
        return self.gender_head(h), (self.age_head(h) if self.age_head is not None else None)
