"""The classic 128-d mean mel spectrum (the ``commonvoice_mel128`` features), as an encoder.

Exactly what the widely copied Common Voice gender example computed per clip: the time
average of a librosa mel *power* spectrogram (no dB) with librosa's defaults at 22,050 Hz
(n_fft 2048, hop 512, 128 mel bands, 0-11,025 Hz). The extraction pipeline hands encoders
16 kHz speech after the VAD; it is resampled to 22,050 Hz here, so bands above 8 kHz
hold (almost) nothing, unlike the published vectors made from the original MP3s.
"""

from __future__ import annotations

import numpy as np


def mel128_identity(analysis_rate_hz: int = 22_050, n_fft: int = 2048, hop_length: int = 512,
                    n_mels: int = 128) -> str:
    """The recipe, as the store's ``weights``: the same for features made from audio here and for the
    precomputed ``commonvoice_mel128`` vectors, so a run trained on those serves our audio."""
    return f"librosa mean mel power, {analysis_rate_hz} Hz, n_fft {n_fft}, hop {hop_length}, {n_mels} mels"


class Mel128Encoder:
    """(B,) waveforms at 16 kHz -> (B, 128) mean mel power spectra at 22,050 Hz.

    Args:
        device: accepted for the common encoder interface; librosa runs on the CPU.
        analysis_rate_hz: the rate the spectrogram is computed at (22,050 Hz as published).
        n_fft, hop_length, n_mels: librosa.feature.melspectrogram's defaults.
    """

    name = "mel128"
    dim = 128
    sample_rate_hz = 16_000

    def __init__(self, device: str = "cpu", analysis_rate_hz: int = 22_050, n_fft: int = 2048,
                 hop_length: int = 512, n_mels: int = 128):
        if n_mels != self.dim:
            raise ValueError(f"mel128 has 128 bands, not {n_mels}")
        self.analysis_rate_hz, self.n_fft, self.hop_length, self.n_mels = analysis_rate_hz, n_fft, hop_length, n_mels
        self.identity = mel128_identity(analysis_rate_hz, n_fft, hop_length, n_mels)

    def embed(self, waves: list[np.ndarray]) -> np.ndarray:
        import librosa

        out = np.empty((len(waves), self.dim), np.float32)
        for i, w in enumerate(waves):
            y = librosa.resample(np.asarray(w, np.float32), orig_sr=self.sample_rate_hz,
                                 target_sr=self.analysis_rate_hz)
            mel = librosa.feature.melspectrogram(y=y, sr=self.analysis_rate_hz, n_fft=self.n_fft,
                                                 hop_length=self.hop_length, n_mels=self.n_mels)
            out[i] = mel.mean(axis=1)
        return out
