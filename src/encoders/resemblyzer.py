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

    def __init__(self, device: str = "cpu", target_dbfs: float = -30.0, rate: float = 1.3,
                 max_partials: int = 256):
        from resemblyzer import VoiceEncoder

        self.device = resolve_device(device)
        self.model = VoiceEncoder(device=self.device, verbose=False)
        self.target_dbfs = target_dbfs
        self.rate = rate  # partial windows per second (Resemblyzer's default 1.3)
        self.max_partials = max_partials  # partials (1.6 s each) per forward pass
        weights = Path(__import__("resemblyzer").__file__).parent / "pretrained.pt"
        digest = hashlib.sha256(weights.read_bytes()).hexdigest()[:12] if weights.exists() else "?"
        self.identity = f"resemblyzer/pretrained.pt sha256:{digest}"

    def embed(self, waves: list[np.ndarray]) -> np.ndarray:
        """(B,) waveforms at 16 kHz -> (B, 256) L2-normalised utterance embeddings.

        The same numbers as ``VoiceEncoder.embed_utterance`` per wave (partials of 1.6 s at
        ``rate`` per second, averaged, L2-normed), but the partials of all the waves go through
        the network together, ``max_partials`` at a time: many short waves (a timeline's
        windows) cost one batched forward instead of one call each, and a long wave's memory
        stays bounded (a 30-minute recording held 2.4 GB in one forward of its 1,800 partials).
        """
        import torch
        from resemblyzer.audio import normalize_volume

        mels, owner = [], []
        for i, w in enumerate(waves):
            w = normalize_volume(w.astype(np.float32), self.target_dbfs, increase_only=True)
            wav_slices, mel_slices = self.model.compute_partial_slices(len(w), self.rate, 0.75)
            if wav_slices[-1].stop >= len(w):
                w = np.pad(w, (0, wav_slices[-1].stop - len(w)), "constant")
            mel = mel_spectrogram(w)
            mels.extend(mel[s] for s in mel_slices)
            owner.extend([i] * len(mel_slices))
        partials = np.empty((len(mels), self.dim), np.float32)
        with torch.no_grad():
            for lo in range(0, len(mels), self.max_partials):
                batch = torch.from_numpy(np.stack(mels[lo:lo + self.max_partials])).to(self.device)
                partials[lo:lo + len(batch)] = self.model(batch).cpu().numpy()
        owner = np.asarray(owner)
        sums = np.zeros((len(waves), self.dim), np.float64)
        np.add.at(sums, owner, partials)
        means = sums / np.bincount(owner, minlength=len(waves))[:, None]
        return (means / np.linalg.norm(means, axis=1, keepdims=True)).astype(np.float32)


MEL_N_FFT, MEL_HOP = 400, 160  # Resemblyzer's 25 ms window and 10 ms step at 16 kHz
MEL_CHUNK_FRAMES = 6000  # 60 s of frames per STFT


def mel_spectrogram(wave: np.ndarray, chunk_frames: int = MEL_CHUNK_FRAMES) -> np.ndarray:
    """Resemblyzer's ``wav_to_mel_spectrogram`` (frames, 40), the same numbers, in pieces of
    ``chunk_frames`` frames: the STFT of a whole 30-minute recording alone held ~440 MB (complex
    spectrum and power), a piece holds ~15 MB. Each frame sees the same samples as in one pass
    (librosa's centred frames: zero padding of half a window at both ends), so the result is
    identical (``tests/test_timeline_windows.py``)."""
    from resemblyzer.audio import wav_to_mel_spectrogram

    n = 1 + len(wave) // MEL_HOP
    if n <= chunk_frames:
        return wav_to_mel_spectrogram(wave)
    import librosa

    padded = np.pad(wave, (MEL_N_FFT // 2, MEL_N_FFT // 2))
    out = np.empty((n, 40), np.float32)
    for f0 in range(0, n, chunk_frames):
        f1 = min(n, f0 + chunk_frames)
        piece = padded[f0 * MEL_HOP:(f1 - 1) * MEL_HOP + MEL_N_FFT]
        out[f0:f1] = librosa.feature.melspectrogram(y=piece, sr=16_000, n_fft=MEL_N_FFT, hop_length=MEL_HOP,
                                                    n_mels=40, center=False).astype(np.float32).T
    return out
