"""A trained classifier as saved in a run folder: weights, input normalisation,
class list, temperature, decision threshold and the encoder it expects.

``TrainedClassifier`` is what inference uses; it knows nothing of training. Its model
is either a torch ``nn.Module`` (logits out) or a fitted scikit-learn-style estimator
(``model=logreg|svm|forest|boosting|pitch``), whose scores are turned into logits by
:func:`estimator_logits` so that temperature scaling applies to both alike.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra.utils import get_class

from src.data.files import atomic_write
from src.settings import END_TO_END

CHECKPOINT_NAME = "best.pt"
# what a run's best.pt holds (its "kind"; checkpoints from before the key are heads on embeddings)
EMBEDDING_HEAD = "embedding_head"  # a TrainedClassifier on an encoder's embeddings
DEFAULT_UNKNOWN_BELOW = 0.6  # "unknown" under this top calibrated probability, unless a run set its own
KINDS = (EMBEDDING_HEAD, END_TO_END)
PLAUSIBLE_AGE_P = 0.2  # an age group at least this probable for a clip has a say in its calibration


def most_cautious(values: dict[str, float], plausible: list[str] | np.ndarray, default: float) -> np.ndarray:
    """(N,) for each row's plausible age groups (``"adult|child"``: every group with p >=
    :data:`PLAUSIBLE_AGE_P`), the largest of their ``values`` (a temperature or an ``unknown``
    threshold; ``"*"`` or ``default`` for a group without one): a child the age head half takes for
    an adult is answered as cautiously as a child."""
    fallback = values.get("*", default)
    return np.array([max(values.get(g, fallback) for g in str(s).split("|")) for s in plausible], dtype=float)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """A run's ``best.pt`` as saved (the file is trusted: it may hold a pickled estimator)."""
    return torch.load(path, map_location="cpu", weights_only=False)


def checkpoint_kind(blob: dict[str, Any]) -> str:
    """The checkpoint's kind (:data:`KINDS`)."""
    kind = blob.get("kind", EMBEDDING_HEAD)
    if kind not in KINDS:
        raise ValueError(f"unknown checkpoint kind {kind!r}: one of {KINDS}")
    return kind


def write_checkpoint(path: str | Path, blob: dict[str, Any]) -> None:
    """Write ``blob`` to ``path`` atomically (through a temporary file)."""
    with atomic_write(path, "wb") as f:
        torch.save(blob, f)


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
        output_temperatures: a temperature on the final answer per *predicted* age group (``"*"``:
            any other), fitted on out-of-fold predictions by model selection; empty: none.
        unknown_below: ``unknown`` under this top calibrated probability; ``group_unknown_below``
            the same per predicted age group (``"*"``: any other), when model selection set them.
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
    age_head: TrainedClassifier | None = None
    group_temperatures: dict[str, float] = field(default_factory=dict)
    group_heads: dict[str, TrainedClassifier] = field(default_factory=dict)
    ood: OodGate | None = None
    shift: ShiftGate | None = None
    unknown_below: float = DEFAULT_UNKNOWN_BELOW
    output_temperatures: dict[str, float] = field(default_factory=dict)
    group_unknown_below: dict[str, float] = field(default_factory=dict)

    def normalise(self, x: np.ndarray) -> np.ndarray:
        """(N, dim) embeddings -> the model's normalised inputs."""
        return ((np.asarray(x, np.float32) - self.mean) / self.std).astype(np.float32)

    def logits(self, x: np.ndarray) -> np.ndarray:
        """(N, dim) embeddings -> (N, n_classes) raw logits."""
        z = self.normalise(x)
        if not isinstance(self.model, torch.nn.Module):
            return estimator_logits(self.model, z)
        z = torch.from_numpy(z)
        self.model.eval()
        with torch.inference_mode():
            return self.model(z).numpy()

    def temperatures(self, x: np.ndarray) -> np.ndarray:
        """(N,) the temperature of each row: its predicted age group's when one was fitted, else the overall one."""
        if self.age_head is None or not self.group_temperatures:
            return np.full(len(x), self.temperature)
        groups = self.age_head.classes_of(x)
        return np.array([self.group_temperatures.get(g, self.temperature) for g in groups])

    def predict_proba(self, x: np.ndarray, calibrated: bool = True) -> np.ndarray:
        """(N, dim) -> (N, n_classes) probabilities, temperature-scaled when ``calibrated``.

        With an age head, calibrated answers are the mixture over age groups of each group's own
        gender head (or, for a group without one, this head with the group's temperature), weighted
        by the age head's probabilities. Uncalibrated: this (pooled) head's softmax.
        """
        logits = self.logits(x)
        if not calibrated:
            return softmax(logits)
        pooled = softmax(logits / self.temperatures(x)[:, None])
        if self.age_head is None or not self.group_heads:
            return self._output_calibrated(x, pooled)
        p_age = self.age_head.predict_proba(x)
        out = np.zeros_like(pooled)
        for j, g in enumerate(self.age_head.classes):
            out += p_age[:, [j]] * (self.group_heads[g].predict_proba(x) if g in self.group_heads else pooled)
        return self._output_calibrated(x, out)

    def plausible_age_groups(self, x: np.ndarray) -> list[str]:
        """Per row, the age groups with p >= :data:`PLAUSIBLE_AGE_P`, joined by ``|`` (most probable
        first); ``""`` without an age head."""
        if self.age_head is None:
            return [""] * len(x)
        p = self.age_head.predict_proba(x)
        names = self.age_head.classes
        return ["|".join(names[j] for j in np.argsort(-row) if row[j] >= PLAUSIBLE_AGE_P or j == row.argmax())
                for row in p]

    def _per_predicted_group(self, x: np.ndarray, values: dict[str, float], default: float) -> np.ndarray:
        return most_cautious(values, self.plausible_age_groups(x), default)

    def _output_calibrated(self, x: np.ndarray, p: np.ndarray) -> np.ndarray:
        if not self.output_temperatures:
            return p
        t = self._per_predicted_group(x, self.output_temperatures, 1.0)
        return softmax(np.log(np.clip(p, PROBA_FLOOR, 1.0)) / t[:, None])

    def unknown_thresholds(self, x: np.ndarray) -> np.ndarray:
        """(N,) the top probability under which each row's answer is ``unknown``: the highest of its
        plausible age groups' thresholds when model selection set them, else :attr:`unknown_below`."""
        if not self.group_unknown_below:
            return np.full(len(x), self.unknown_below)
        return self._per_predicted_group(x, self.group_unknown_below, self.unknown_below)

    def classes_of(self, x: np.ndarray) -> list[str]:
        """The most probable class name of each row."""
        return [self.classes[i] for i in self.predict_proba(x).argmax(1)]

    def outside(self, x: np.ndarray) -> np.ndarray:
        """(N,) True where the input is unlike the training data (the OOD gate; all False without one)."""
        return self.ood.outside(self.normalise(x)) if self.ood is not None else np.zeros(len(x), bool)

    def shifted(self, x: np.ndarray) -> np.ndarray:
        """(N,) True where the voice sounds pitch-shifted (the shift gate; all False without one)."""
        return self.shift.outside(self.normalise(x)) if self.shift is not None else np.zeros(len(x), bool)

    def to_blob(self) -> dict[str, Any]:
        """Everything needed to rebuild this object, as plain values (and a state dict or a fitted estimator)."""
        blob = {f.name: getattr(self, f.name) for f in fields(self)
                if f.name not in ("model", "age_head", "ood", "shift", "group_heads")}
        if isinstance(self.model, torch.nn.Module):
            blob["state_dict"] = self.model.state_dict()
        else:
            blob["estimator"] = self.model  # pickled; load() already trusts the file (weights_only=False)
        blob.update(mean=self.mean.tolist(), std=self.std.tolist(), classes=list(self.classes))
        if self.age_head is not None:
            blob["age_head"] = self.age_head.to_blob()
        if self.ood is not None:
            blob["ood"] = asdict(self.ood)
        if self.shift is not None:
            blob["shift"] = self.shift.to_blob()
        blob["group_heads"] = {g: h.to_blob() for g, h in self.group_heads.items()}
        return blob

    def save(self, path: str | Path, extra: dict[str, Any] | None = None) -> None:
        """Write everything needed to rebuild this object to ``path`` (atomically)."""
        blob = {"kind": EMBEDDING_HEAD, **self.to_blob(), "extra": extra or {}}
        write_checkpoint(path, blob)

    @classmethod
    def from_blob(cls, blob: dict[str, Any]) -> TrainedClassifier:
        """Rebuild from :meth:`to_blob`'s values."""
        if "estimator" in blob:
            model = blob["estimator"]
        else:
            model = get_class(blob["model_target"])(**blob["model_kwargs"])
            model.load_state_dict(blob["state_dict"])
            model.eval()
        return cls(model=model, model_target=blob["model_target"], model_kwargs=blob["model_kwargs"],
                   mean=np.asarray(blob["mean"], np.float32), std=np.asarray(blob["std"], np.float32),
                   classes=tuple(blob["classes"]), temperature=float(blob["temperature"]),
                   threshold=float(blob["threshold"]), encoder=blob.get("encoder", {}),
                   age_head=cls.from_blob(blob["age_head"]) if blob.get("age_head") else None,
                   group_temperatures={k: float(v) for k, v in (blob.get("group_temperatures") or {}).items()},
                   group_heads={g: cls.from_blob(b) for g, b in (blob.get("group_heads") or {}).items()},
                   ood=OodGate(**blob["ood"]) if blob.get("ood") else None,
                   shift=ShiftGate.from_blob(blob["shift"]) if blob.get("shift") else None,
                   unknown_below=float(blob.get("unknown_below", DEFAULT_UNKNOWN_BELOW)),
                   output_temperatures={k: float(v) for k, v in (blob.get("output_temperatures") or {}).items()},
                   group_unknown_below={k: float(v) for k, v in (blob.get("group_unknown_below") or {}).items()})

    @classmethod
    def load(cls, path: str | Path) -> TrainedClassifier:
        """Rebuild from :meth:`save`'s file."""
        blob = read_checkpoint(path)
        if checkpoint_kind(blob) != EMBEDDING_HEAD:
            raise ValueError(f"{path} holds an end-to-end network, not a classifier on embeddings: "
                             f"open its run with src.inference.run_folder.RunFolder")
        return cls.from_blob(blob)


@dataclass
class OodGate:
    """Says which inputs are unlike the training data: the squared Mahalanobis distance of the
    normalised input to the training inputs' mean (covariance shrunk by Ledoit-Wolf) over a
    threshold, a high quantile of the validation clips' distances (Lee et al. 2018 use the same
    distance, per class, for out-of-distribution detection).

    Attributes:
        location: (dim,) mean of the normalised training inputs; ``precision`` (dim, dim) the inverse covariance.
        threshold: distances above this are outside; ``quantile`` the share of validation clips under it.
    """

    location: np.ndarray
    precision: np.ndarray
    threshold: float
    quantile: float

    def distance(self, z: np.ndarray) -> np.ndarray:
        """(N, dim) normalised inputs -> (N,) squared Mahalanobis distances."""
        d = np.asarray(z, np.float64) - np.asarray(self.location, np.float64)
        return np.einsum("ij,jk,ik->i", d, np.asarray(self.precision, np.float64), d)

    def outside(self, z: np.ndarray) -> np.ndarray:
        """(N,) True where the distance is over the threshold."""
        return self.distance(z) > self.threshold


@dataclass
class ShiftGate:
    """Says which voices sound pitch-shifted, a man raised about an octave (PSOLA with his formants
    kept, a phase vocoder, or played twice as fast): voices the model was never shown and calls
    women (it called 41-95 % of them female). A logistic regression on the normalised input,
    fitted on natural clips of every shared corpus (children and channel-degraded copies included)
    against shifted copies of its men; ``threshold`` is a high quantile of the natural clips'
    out-of-fold scores (``scripts/train_shift_gate.py``, which measures it; the model card's table).

    Attributes:
        weights: (dim,) the regression's weights on the normalised input; ``bias`` its intercept.
        threshold: scores above this are flagged; ``natural_flagged`` the share of natural clips
            flagged out of fold when it was set.
    """

    weights: np.ndarray
    bias: float
    threshold: float
    natural_flagged: float = float("nan")

    def score(self, z: np.ndarray) -> np.ndarray:
        """(N, dim) normalised inputs -> (N,) decision values (log-odds of shifted)."""
        return np.asarray(z, np.float64) @ np.asarray(self.weights, np.float64) + self.bias

    def outside(self, z: np.ndarray) -> np.ndarray:
        """(N,) True where the score is over the threshold."""
        return self.score(z) > self.threshold

    def to_blob(self) -> dict[str, Any]:
        return {"weights": np.asarray(self.weights, np.float64).tolist(), "bias": float(self.bias),
                "threshold": float(self.threshold), "natural_flagged": float(self.natural_flagged)}

    @classmethod
    def from_blob(cls, blob: dict[str, Any]) -> ShiftGate:
        return cls(np.asarray(blob["weights"], np.float64), float(blob["bias"]), float(blob["threshold"]),
                   float(blob.get("natural_flagged", float("nan"))))


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
