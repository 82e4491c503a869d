"""A trained classifier as saved in a run folder: weights, input normalisation,
class list, temperature, decision threshold and the encoder it expects.

``TrainedClassifier`` is what inference uses; it knows nothing of training. Its model
is either a torch ``nn.Module`` (logits out) or a fitted scikit-learn-style estimator
(``model=logreg|svm|forest|boosting|pitch``), whose scores are turned into logits by
:func:`estimator_logits` so that temperature scaling applies to both alike.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra.utils import get_class

CHECKPOINT_NAME = "best.pt"


@dataclass
class TrainedClassifier:
    """A classifier head ready to score embeddings.

    Attributes:
        model: the ``nn.Module`` (eval mode), logits over ``classes``, or a fitted estimator
            with ``predict_proba`` or ``decision_function`` (classes ``0..n-1`` in ``classes`` order).
        model_target: import path of the model's class; ``model_kwargs`` its arguments.
        mean, std: input normalisation (train-set statistics), shape (dim,).
        classes: class names in logit order.
        temperature: logits are divided by this before the softmax (1.0 = uncalibrated).
        threshold: p(male) at or above which the answer is male.
        encoder: the encoder's identity (name, dim, weights, config_hash).
    """

    model: Any
    model_target: str
    model_kwargs: dict[str, Any]
    mean: np.ndarray
    std: np.ndarray
    classes: tuple[str, ...]
    temperature: float = 1.0
    threshold: float = 0.5
    encoder: dict[str, Any] = field(default_factory=dict)

    def logits(self, x: np.ndarray) -> np.ndarray:
        """(N, dim) embeddings -> (N, n_classes) raw logits."""
        z = ((np.asarray(x, np.float32) - self.mean) / self.std).astype(np.float32)
        if not isinstance(self.model, torch.nn.Module):
            return estimator_logits(self.model, z)
        z = torch.from_numpy(z)
        self.model.eval()
        with torch.inference_mode():
            return self.model(z).numpy()

    def predict_proba(self, x: np.ndarray, calibrated: bool = True) -> np.ndarray:
        """(N, dim) -> (N, n_classes) probabilities, temperature-scaled when ``calibrated``."""
        return softmax(self.logits(x) / (self.temperature if calibrated else 1.0))

    def save(self, path: str | Path, extra: dict[str, Any] | None = None) -> None:
        """Write everything needed to rebuild this object to ``path`` (atomically)."""
        path = Path(path)
        blob = {k: v for k, v in asdict(self).items() if k != "model"}
        if isinstance(self.model, torch.nn.Module):
            blob["state_dict"] = self.model.state_dict()
        else:
            blob["estimator"] = self.model  # pickled; load() already trusts the file (weights_only=False)
        blob.update(mean=self.mean.tolist(), std=self.std.tolist(),
                    classes=list(self.classes), extra=extra or {})
        tmp = path.with_suffix(".tmp")
        torch.save(blob, tmp)
        tmp.replace(path)

    @classmethod
    def load(cls, path: str | Path) -> TrainedClassifier:
        """Rebuild from :meth:`save`'s file."""
        blob = torch.load(path, map_location="cpu", weights_only=False)
        if blob.get("kind") == "end_to_end":
            raise ValueError(f"{path} holds an end-to-end network (encoder=melcnn), not a classifier on "
                             f"embeddings: it cannot be loaded as a TrainedClassifier")
        if "estimator" in blob:
            model = blob["estimator"]
        else:
            model = get_class(blob["model_target"])(**blob["model_kwargs"])
            model.load_state_dict(blob["state_dict"])
            model.eval()
        return cls(model=model, model_target=blob["model_target"], model_kwargs=blob["model_kwargs"],
                   mean=np.asarray(blob["mean"], np.float32), std=np.asarray(blob["std"], np.float32),
                   classes=tuple(blob["classes"]), temperature=float(blob["temperature"]),
                   threshold=float(blob["threshold"]), encoder=blob.get("encoder", {}))


PROBA_FLOOR = 1e-7  # log(predict_proba) of a forest's 0/1 votes stays finite


def estimator_logits(estimator: Any, x: np.ndarray) -> np.ndarray:
    """A fitted estimator's (N, n_classes) logits for normalised inputs ``x``.

    ``log(predict_proba)`` when it has one (softmax of it gives the probabilities back);
    otherwise a two-class ``decision_function`` score ``d`` becomes ``[-d/2, d/2]``, whose
    softmax is ``sigmoid(d)``.
    """
    if hasattr(estimator, "predict_proba"):
        p = np.asarray(estimator.predict_proba(x), np.float64)
        return np.log(np.clip(p, PROBA_FLOOR, 1.0)).astype(np.float32)
    d = np.asarray(estimator.decision_function(x), np.float64).reshape(len(x))
    return np.stack([-d / 2, d / 2], axis=1).astype(np.float32)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, numerically stable."""
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)
