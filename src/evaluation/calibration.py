"""Temperature scaling (Guo et al., 2017): one scalar T fitted on validation logits."""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar
from sklearn.metrics import log_loss

from src.models.checkpoint import softmax


def fit_temperature(logits: np.ndarray, y: np.ndarray, bounds: tuple[float, float] = (0.05, 20.0)) -> float:
    """T minimising the negative log-likelihood of ``softmax(logits / T)`` on (val) labels."""
    labels = list(range(logits.shape[1]))

    def nll(log_t: float) -> float:
        return log_loss(y, softmax(logits / np.exp(log_t)), labels=labels)

    res = minimize_scalar(nll, bounds=(np.log(bounds[0]), np.log(bounds[1])), method="bounded")
    return float(np.exp(res.x))
