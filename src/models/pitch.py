"""The pitch baseline: a clip whose median F0 is under a threshold is male.

A scikit-learn-style estimator (``fit`` / ``decision_function`` / ``predict``) so it is
trained, calibrated, saved and served exactly like the other ``model=`` choices. It
reads one column of the input, the F0 median in Hz of the ``acoustic`` encoder
(:data:`src.encoders.acoustic.F0_MEDIAN_INDEX`), and needs raw, un-normalised inputs
(``raw_inputs = True``: the trainer then keeps the input normalisation at identity, so
the threshold is in Hz).
"""

from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger(__name__)


class PitchThreshold:
    """Male when ``x[:, f0_index] < threshold_hz``; the threshold maximises balanced accuracy on train.

    Args:
        f0_index: column of the median F0 in Hz (0 or less means unvoiced: it is left out of the fit).
        scale_hz: Hz per logit unit of :meth:`decision_function` (temperature scaling refines it).

    Attributes (after ``fit``):
        threshold_hz: the fitted threshold.
        train_balanced_accuracy: its balanced accuracy on the voiced training clips.
    """

    raw_inputs = True

    def __init__(self, f0_index: int = 208, scale_hz: float = 20.0):
        self.f0_index = f0_index
        self.scale_hz = scale_hz
        self.threshold_hz: float | None = None
        self.train_balanced_accuracy: float | None = None
        self.classes_ = np.array([0, 1])

    def fit(self, x: np.ndarray, y: np.ndarray) -> PitchThreshold:
        """Try every midpoint between sorted voiced F0 values; keep the best balanced accuracy (male = 1)."""
        f0 = np.asarray(x, np.float64)[:, self.f0_index]
        y = np.asarray(y)
        voiced = f0 > 0
        if voiced.sum() < len(f0):
            log.warning("pitch: %d of %d training clips have no F0 (unvoiced); left out of the fit",
                        (~voiced).sum(), len(f0))
        f0, y = f0[voiced], y[voiced]
        if len(set(y.tolist())) < 2:
            raise ValueError("pitch: training clips with an F0 of both classes are needed")
        order = np.argsort(f0, kind="stable")
        f0, male = f0[order], (y[order] == 1)
        # cut k predicts the k lowest-F0 clips male; only cuts between distinct values count
        k = np.concatenate([[0], np.flatnonzero(np.diff(f0) > 0) + 1, [len(f0)]])
        males_below = np.concatenate([[0], np.cumsum(male)])[k]
        females_below = k - males_below
        bal = (males_below / male.sum() + 1 - females_below / (~male).sum()) / 2
        cuts = np.concatenate([[f0[0] - 1.0], (f0[k[1:-1] - 1] + f0[k[1:-1]]) / 2, [f0[-1] + 1.0]])
        best = int(np.argmax(bal))
        self.threshold_hz, self.train_balanced_accuracy = float(cuts[best]), float(bal[best])
        log.info("pitch: threshold %.1f Hz (train balanced accuracy %.4f)", self.threshold_hz,
                 self.train_balanced_accuracy)
        return self

    def decision_function(self, x: np.ndarray) -> np.ndarray:
        """(N, dim) -> (N,) male score ``(threshold - F0) / scale``; positive means male, 0 when unvoiced."""
        if self.threshold_hz is None:
            raise ValueError("PitchThreshold is not fitted")
        f0 = np.asarray(x, np.float64)[:, self.f0_index]
        return np.where(f0 > 0, (self.threshold_hz - f0) / self.scale_hz, 0.0)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return (self.decision_function(x) > 0).astype(int)
