"""An ensemble over column blocks of one feature vector (``model=blocks``): one balanced logistic
regression per block (e.g. the speaker embedding, the eGeMAPS set, the F0 columns alone), their
probabilities averaged.

Each block is a different view of the voice with different failures across corpora (a speaker
embedding carries the recording channel; F0 alone is blind to timbre but travels well), so
averaging them gives fewer confident mistakes than one model on the concatenation, where the
largest block dominates.
"""

from __future__ import annotations

import numpy as np


class BlockEnsemble:
    """Mean of per-block logistic regressions' probabilities; a scikit-learn-style estimator.

    Args:
        blocks: column ranges ``[start, end)``, one model each (a list of ``[start, end]`` pairs).
        C: inverse L2 strength of every block's logistic regression.
        max_iter: iterations of its solver.
    """

    def __init__(self, blocks: list[list[int]], C: float = 0.1, max_iter: int = 3000):
        if not blocks or any(len(b) != 2 or b[0] >= b[1] for b in blocks):
            raise ValueError(f"blocks must be [start, end) column pairs, got {blocks}")
        self.blocks = [list(map(int, b)) for b in blocks]
        self.C = C
        self.max_iter = max_iter
        self.models_: list = []
        self.classes_ = np.array([0, 1])

    def fit(self, x: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None) -> BlockEnsemble:
        """Fit one class-balanced logistic regression per block (``sample_weight`` multiplies in)."""
        from sklearn.linear_model import LogisticRegression

        if max(b[1] for b in self.blocks) > x.shape[1]:
            raise ValueError(f"blocks {self.blocks} go past the {x.shape[1]} input columns")
        self.models_ = [LogisticRegression(C=self.C, max_iter=self.max_iter, class_weight="balanced")
                        .fit(x[:, s:e], y, sample_weight=sample_weight) for s, e in self.blocks]
        self.classes_ = self.models_[0].classes_
        return self

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """(N, dim) -> (N, 2): the blocks' probabilities averaged."""
        return np.mean([m.predict_proba(x[:, s:e]) for m, (s, e) in zip(self.models_, self.blocks)], axis=0)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.predict_proba(x).argmax(1)
