"""Front ends of the end-to-end networks: (B, T) 16 kHz waveforms -> (B, features, frames).

Both remove each feature's mean over time per utterance, so a constant gain or channel
colouring cancels out.
"""

from __future__ import annotations

import torch
from torch import nn


def _mel_kwargs(sample_rate_hz: int, n_mels: int, win_ms: float, hop_ms: float, f_min_hz: float,
                f_max_hz: float) -> dict:
    win = round(sample_rate_hz * win_ms / 1000)
    return dict(n_fft=1 << (win - 1).bit_length(), win_length=win, hop_length=round(sample_rate_hz * hop_ms / 1000),
                f_min=f_min_hz, f_max=f_max_hz, n_mels=n_mels, power=2.0)


class LogMel(nn.Module):
    """(B, T) 16 kHz waveforms -> (B, n_mels, frames) log-mel spectrograms, each band's mean
    over time removed.

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

        kw = _mel_kwargs(sample_rate_hz, n_mels, win_ms, hop_ms, f_min_hz, f_max_hz)
        self.hop_samples = kw["hop_length"]
        self.mel = torchaudio.transforms.MelSpectrogram(sample_rate=sample_rate_hz, **kw)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        x = torch.log(self.mel(wave) + 1e-6)
        return x - x.mean(dim=-1, keepdim=True)


class Mfcc(nn.Module):
    """(B, T) 16 kHz waveforms -> (B, n_mfcc, frames) MFCCs (DCT-II of the log-mel spectrum), each
    coefficient's mean over time removed (cepstral mean normalisation).

    Args:
        n_mfcc: coefficients kept (c0 included), of ``n_mels`` log-mel bands.
        the rest: as :class:`LogMel`.
    """

    def __init__(self, sample_rate_hz: int = 16_000, n_mfcc: int = 40, n_mels: int = 64, win_ms: float = 25.0,
                 hop_ms: float = 10.0, f_min_hz: float = 50.0, f_max_hz: float = 8000.0):
        super().__init__()
        import torchaudio

        kw = _mel_kwargs(sample_rate_hz, n_mels, win_ms, hop_ms, f_min_hz, f_max_hz)
        self.hop_samples = kw["hop_length"]
        self.mfcc = torchaudio.transforms.MFCC(sample_rate=sample_rate_hz, n_mfcc=n_mfcc, log_mels=True,
                                               melkwargs=kw)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        x = self.mfcc(wave)
        return x - x.mean(dim=-1, keepdim=True)
