"""Resemblyzer's GE2E speaker encoder (256-d), with the weights shipped in its wheel."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from src.encoders.base import centred_piece, resolve_device


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
        Each batch goes through the network as soon as it is full and the waves are read once,
        in order, so ``waves`` may be a :class:`~src.encoders.base.Waves` that makes each one on
        demand (a timeline's windows): only one wave and one batch of partials are held at a
        time. A wave longer than ``MEL_CHUNK_FRAMES`` (60 s) is volume-normalised and turned into
        its mel spectrogram piece by piece (:func:`long_wave_mel`), never copied whole.
        """
        import torch

        n = len(waves)
        sums = np.zeros((n, self.dim), np.float64)
        counts = np.zeros(n, np.int64)
        pending: list[np.ndarray] = []
        owner: list[int] = []

        def forward() -> None:
            batch = torch.from_numpy(np.stack(pending)).to(self.device)
            with torch.no_grad():
                out = self.model(batch).cpu().numpy()
            np.add.at(sums, np.asarray(owner), out)  # in partial order, as one add.at over all of them
            pending.clear()
            owner.clear()

        for i, w in enumerate(waves):
            mel, mel_slices = self.partial_mels(w)
            for s in mel_slices:
                pending.append(mel[s])
                owner.append(i)
                counts[i] += 1
                if len(pending) == self.max_partials:
                    forward()
            del mel, w
        if pending:
            forward()
        means = sums / counts[:, None]
        return (means / np.linalg.norm(means, axis=1, keepdims=True)).astype(np.float32)

    def partial_mels(self, w: np.ndarray) -> tuple[np.ndarray, list[slice]]:
        """A wave's mel spectrogram (volume-normalised, padded to its last partial) and the frames of
        each partial, as ``embed_utterance`` computes them."""
        from resemblyzer.audio import normalize_volume

        wav_slices, mel_slices = self.model.compute_partial_slices(len(w), self.rate, 0.75)
        padded_len = max(len(w), wav_slices[-1].stop)
        if 1 + padded_len // MEL_HOP > MEL_CHUNK_FRAMES:
            return long_wave_mel(w, self.target_dbfs, padded_len), mel_slices
        w = normalize_volume(w.astype(np.float32), self.target_dbfs, increase_only=True)
        if wav_slices[-1].stop >= len(w):
            w = np.pad(w, (0, wav_slices[-1].stop - len(w)), "constant")
        return mel_spectrogram(w), mel_slices


MEL_N_FFT, MEL_HOP = 400, 160  # Resemblyzer's 25 ms window and 10 ms step at 16 kHz
MEL_CHUNK_FRAMES = 6000  # 60 s of frames per STFT


def mel_spectrogram(wave: np.ndarray, chunk_frames: int = MEL_CHUNK_FRAMES, n_samples: int | None = None,
                    gain: np.float32 | None = None) -> np.ndarray:
    """Resemblyzer's ``wav_to_mel_spectrogram`` (frames, 40), the same numbers, in pieces of
    ``chunk_frames`` frames: the STFT of a whole 30-minute recording alone held ~440 MB (complex
    spectrum and power), a piece holds ~15 MB. Each frame sees the same samples as in one pass
    (librosa's centred frames: :func:`~src.encoders.base.centred_piece`), so the result is identical
    (``tests/test_timeline_windows.py``). ``n_samples``: the wave as if zero-padded to this length;
    ``gain``: each piece scaled by it (what :func:`long_wave_mel` needs, without a whole-length copy)."""
    from resemblyzer.audio import wav_to_mel_spectrogram

    n = 1 + (len(wave) if n_samples is None else n_samples) // MEL_HOP
    if n <= chunk_frames and n_samples is None and gain is None:
        return wav_to_mel_spectrogram(wave)
    import librosa

    out = np.empty((n, 40), np.float32)
    for f0 in range(0, n, chunk_frames):
        f1 = min(n, f0 + chunk_frames)
        piece = centred_piece(wave, f0, f1, MEL_N_FFT, MEL_HOP)
        if gain is not None:
            piece *= gain
        out[f0:f1] = librosa.feature.melspectrogram(y=piece, sr=16_000, n_fft=MEL_N_FFT, hop_length=MEL_HOP,
                                                    n_mels=40, center=False).astype(np.float32).T
    return out


VOLUME_BLOCK = 1 << 20  # samples per block of the mean square of a long wave


def long_wave_mel(wave: np.ndarray, target_dbfs: float, padded_len: int,
                  chunk_frames: int = MEL_CHUNK_FRAMES) -> np.ndarray:
    """:func:`mel_spectrogram` of Resemblyzer's ``normalize_volume(wave, target_dbfs,
    increase_only=True)`` zero-padded to ``padded_len`` samples, without a whole-length copy:
    each piece of ``chunk_frames`` frames is cut from ``wave``, padded and scaled on its own
    (:func:`mel_spectrogram` with ``n_samples`` and ``gain``).

    The volume's mean square is summed in float64 block by block; Resemblyzer's ``np.mean`` of
    the float32 squares sums in float32, so the gain may differ in its last bits (relative
    differences about 1e-7 in the mel values). Short waves never come here."""
    wave = np.asarray(wave, np.float32)
    sq = 0.0
    for lo in range(0, len(wave), VOLUME_BLOCK):
        b = wave[lo:lo + VOLUME_BLOCK].astype(np.float64) * 32767
        sq += float(b @ b)
    rms = np.sqrt(sq / max(len(wave), 1))
    change = target_dbfs - 20 * np.log10(rms / 32767)
    gain = None if change < 0 else np.float32(10 ** (change / 20))
    return mel_spectrogram(wave, chunk_frames, n_samples=padded_len, gain=gain)
