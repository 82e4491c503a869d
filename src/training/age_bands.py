"""Age bands for an end-to-end network's age head: one label per clip, what each band stands
for in years, and the head's metrics.

Labels come from the manifest's ``age_group`` (child / teen / adult) or decade bands of the
numeric ``age``; clips without either are ``-1`` (masked out of the age loss). The age is
predicted as a band; the MAE in years takes each band's median training age (``decades``
without training ages in a band: its midpoint) as the prediction.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from src.data.files import atomic_write
from src.data.manifest import Clip
from src.embeddings.dataset import DatasetError, EmbeddingSet

AGE_PREDICTIONS_NAME = "age_predictions.csv"
AGE_GROUPS = ("child", "teen", "adult")  # in this order; other age_group values follow, sorted
AGE_GROUP_FROM_YEARS = ((13.0, "child"), (18.0, "teen"), (float("inf"), "adult"))  # upper bounds, exclusive


class AgeLabelError(DatasetError):
    """An age head asked for on a manifest without ages."""


@dataclass
class AgeLabels:
    """Per-clip age-band labels (``-1`` unknown), the band names and how they were made."""

    labels: np.ndarray
    bands: list[str]
    source: str  # age_group | decades

    @property
    def known(self) -> np.ndarray:
        return self.labels >= 0


def _group_from_years(age: float) -> str:
    return next(name for upper, name in AGE_GROUP_FROM_YEARS if age < upper)


def age_labels(age_group: np.ndarray, age: np.ndarray, mode: str = "auto") -> AgeLabels | None:
    """Band labels from ``age_group`` strings (empty = unknown) and ages in years (NaN = unknown).

    ``auto`` uses ``age_group`` when any clip has one (a clip with an age but no group gets
    the group of its age), else decade bands of ``age``. Returns ``None`` when no clip has either.
    """
    has_group = age_group != ""
    if mode == "auto":
        mode = "age_group" if has_group.any() else "decades"
    if mode not in ("age_group", "decades"):
        raise ValueError(f"age_bands={mode!r}: auto, age_group or decades")
    if mode == "age_group":
        names = np.where(has_group, age_group, [(_group_from_years(a) if np.isfinite(a) else "") for a in age])
        present = set(names.tolist()) - {""}
        bands = [g for g in AGE_GROUPS if g in present] + sorted(present - set(AGE_GROUPS))
    else:
        names = np.array([f"{int(a // 10) * 10}-{int(a // 10) * 10 + 9}" if np.isfinite(a) else "" for a in age])
        bands = sorted(set(names.tolist()) - {""}, key=lambda b: int(b.split("-")[0]))
    if not bands:
        return None
    index = {b: i for i, b in enumerate(bands)}
    return AgeLabels(np.array([index.get(n, -1) for n in names.tolist()], int), bands, mode)


def clip_age_arrays(clips: list[Clip]) -> tuple[np.ndarray, np.ndarray]:
    """(age_group strings, ages in years) of the clips, empty / NaN where unknown."""
    return (np.array([(c.groups.get("age_group") or "").strip() for c in clips]),
            np.array([c.age if c.age is not None else np.nan for c in clips], float))


def check_ages(clips: list[Clip], age_loss_weight: float, age_bands: str, source: str) -> None:
    """Fail early (before any decoding) when the age head is asked for and no clip has an age."""
    if age_loss_weight > 0 and age_labels(*clip_age_arrays(clips), age_bands) is None:
        raise AgeLabelError(f"age_loss_weight>0 but {source} has no age or age_group values; "
                            f"set model.age_loss_weight=0")


def band_ages_years(ages: AgeLabels, age: np.ndarray, train: np.ndarray) -> list[float | None]:
    """The age in years each band stands for: the median training age in it; for a decade
    band with no training age its midpoint; else ``None`` (no MAE for clips predicted there)."""
    out: list[float | None] = []
    for b, name in enumerate(ages.bands):
        a = age[train & (ages.labels == b) & np.isfinite(age)]
        if len(a):
            out.append(float(np.median(a)))
        elif ages.source == "decades":
            out.append(float(name.split("-")[0]) + 4.5)
        else:
            out.append(None)
    return out


def age_metrics(true: np.ndarray, pred: np.ndarray, age: np.ndarray, bands: list[str],
                band_age: list[float | None]) -> dict:
    """Accuracy overall and per band (recall), balanced accuracy (the mean recall of the bands
    present), confusion matrix (rows: true band), and the MAE in years of the predicted band's age
    where a numeric age is known."""
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, confusion_matrix, recall_score

    m = true >= 0
    t, p = true[m], pred[m]
    labels = list(range(len(bands)))
    recalls = recall_score(t, p, labels=labels, average=None, zero_division=0) if m.any() else []
    out: dict[str, Any] = {"n": int(m.sum()), "accuracy": float(accuracy_score(t, p)) if m.any() else None}
    out["per_band"] = {b: {"n": int((t == i).sum()), "accuracy": float(recalls[i]) if (t == i).any() else None}
                       for i, b in enumerate(bands)}
    out["balanced_accuracy"] = float(balanced_accuracy_score(t, p)) if m.any() else None
    out["confusion_matrix"] = (confusion_matrix(t, p, labels=labels).tolist() if m.any()
                               else [[0] * len(bands) for _ in bands])
    pred_age = np.array([band_age[j] if band_age[j] is not None else np.nan for j in pred], float)
    has = np.isfinite(age) & np.isfinite(pred_age)
    out["n_with_age"] = int(has.sum())
    out["mae_years"] = float(np.abs(pred_age[has] - age[has]).mean()) if has.any() else None
    return out


def write_age_predictions(path: Path, data: EmbeddingSet, splits: np.ndarray, ages: AgeLabels,
                          pred: np.ndarray, proba: np.ndarray) -> None:
    """One row per clip: its age, true band, predicted band and that band's probability."""
    with atomic_write(path, newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "split", "age", "age_band", "predicted_band", "p_predicted_band"])
        for i in range(len(data)):
            w.writerow([data.ids[i], splits[i], "" if np.isnan(data.age[i]) else f"{data.age[i]:g}",
                        ages.bands[ages.labels[i]] if ages.labels[i] >= 0 else "", ages.bands[pred[i]],
                        f"{proba[i, pred[i]]:.6f}"])
