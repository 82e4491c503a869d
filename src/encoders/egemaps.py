"""openSMILE's eGeMAPS v02 functionals (``encoder=egemaps``), 88-d: the standard minimal
parameter set of paralinguistics (Eyben et al. 2016).

F0 (semitones from 27.5 Hz: mean, spread, percentiles, slopes), formants F1-F3 (frequency,
bandwidth, relative amplitude), jitter, shimmer, HNR, spectral slope, alpha ratio,
Hammarberg index, MFCC 1-4, loudness, and rates of voiced segments, computed by openSMILE's
C++ engine (the binary ships in the ``opensmile`` wheel) on the VAD speech.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from src.data.audio import SAMPLE_RATE_HZ

DIM = 88
SLICE_END_TRIM_S = 0.04  # a window's frame list entry ends this much early: its last LLD frames would reach past it
SLICE_TAIL_PAD_S = 0.1  # zeros after the signal, so the last windows' LLD frames exist


class EgemapsEncoder:
    """(B,) waveforms at 16 kHz -> (B, 88) eGeMAPS v02 functionals.

    Args:
        device: accepted for the common encoder interface; openSMILE runs on the CPU.
    """

    name = "egemaps"
    dim = DIM
    sample_rate_hz = SAMPLE_RATE_HZ

    def __init__(self, device: str = "cpu"):
        import opensmile

        self.smile = opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02,
                                     feature_level=opensmile.FeatureLevel.Functionals)
        if len(self.smile.feature_names) != DIM:
            raise ValueError(f"eGeMAPSv02 gave {len(self.smile.feature_names)} features, expected {DIM}")
        self.identity = f"opensmile {opensmile.__version__} eGeMAPSv02 functionals"

    def feature_names(self) -> list[str]:
        """The 88 column names, in order (openSMILE's own)."""
        return list(self.smile.feature_names)

    def embed(self, waves: list[np.ndarray]) -> np.ndarray:
        """(B,) waveforms at 16 kHz -> (B, 88) float32 (non-finite values, e.g. of an unvoiced clip, become 0)."""
        out = np.stack([self.smile.process_signal(np.asarray(w, np.float32), SAMPLE_RATE_HZ).to_numpy()[0]
                        for w in waves]).astype(np.float32)
        return _finite(out)

    def embed_slices(self, signal: np.ndarray, bounds: list[tuple[int, int]]) -> np.ndarray:
        """The functionals of ``signal[a:b]`` for each ``(a, b)`` (samples) from ONE openSMILE pass:
        the low-level descriptors are computed once over the whole signal and openSMILE's own
        functionals component summarises them per window (``frameMode = list``).

        A timeline scores overlapping 1.5 s windows every 0.5 s: one ``process_signal`` per window
        cost ~26 ms (5 ms of it setting openSMILE up) and computed every descriptor three times; this
        is ~4x faster. The values are close to ``embed`` on each slice, not equal: here a window's
        first descriptor frames see the speech before it (``embed`` sees silence), and its frames
        are openSMILE's 10 ms grid. With the shipped default model on 5 minutes of dev clips joined
        (432 windows) the windows' p(male) moved by 0.031 on average (99th percentile 0.34), 95.6 %
        kept their label and the timeline was as often right (``tests/test_timeline_windows.py``).
        """
        if not bounds:
            return np.zeros((0, DIM), np.float32)
        import opensmile

        sr = SAMPLE_RATE_HZ
        frames = ",".join(f"{a / sr:.4f}s-{max(a / sr + 0.01, b / sr - SLICE_END_TRIM_S):.4f}s" for a, b in bounds)
        with tempfile.TemporaryDirectory(prefix="egemaps-") as tmp:
            conf = Path(tmp) / "frame-list.conf.inc"
            conf.write_text(f"frameMode = list\nframeList = {frames}\nframeCenterSpecial = left\n")
            smile = opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02,
                                    feature_level=opensmile.FeatureLevel.Functionals,
                                    options={"frameModeFunctionalsConf": str(conf)})
            padded = np.concatenate([np.asarray(signal, np.float32), np.zeros(int(SLICE_TAIL_PAD_S * sr), np.float32)])
            out = smile.process_signal(padded, sr).to_numpy().astype(np.float32)
        if len(out) != len(bounds):  # never seen; the per-window calls are always right
            return self.embed([signal[a:b] for a, b in bounds])
        return _finite(out)


def _finite(x: np.ndarray) -> np.ndarray:
    return np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
