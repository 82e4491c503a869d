"""openSMILE's eGeMAPS v02 functionals (``encoder=egemaps``), 88-d: the standard minimal
parameter set of paralinguistics (Eyben et al. 2016).

F0 (semitones from 27.5 Hz: mean, spread, percentiles, slopes), formants F1-F3 (frequency,
bandwidth, relative amplitude), jitter, shimmer, HNR, spectral slope, alpha ratio,
Hammarberg index, MFCC 1-4, loudness, and rates of voiced segments, computed by openSMILE's
C++ engine (the binary ships in the ``opensmile`` wheel) on the VAD speech.
"""

from __future__ import annotations

import numpy as np

SAMPLE_RATE_HZ = 16_000
DIM = 88


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
        return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)
