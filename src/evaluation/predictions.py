"""What a model answered, clip by clip: the columns beside p(male) and ``predictions.csv``.

Written by every training run and by ``evaluate`` on another source, so both read the same way.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from src.data.files import atomic_write
from src.embeddings.dataset import EmbeddingSet
from src.labels import CLASSES
from src.models.checkpoint import TrainedClassifier


def answer_columns(clf: TrainedClassifier, x: np.ndarray, p_cal: np.ndarray) -> dict[str, np.ndarray]:
    """What the pipeline would answer beside p(male): ``answered`` (not ``unknown``: sure enough
    and like the training data), ``outside`` (the OOD gate) and, with an age head, the age group
    and its probability."""
    outside = clf.outside(x)
    cols = {"answered": ((p_cal.max(axis=1) >= clf.unknown_thresholds(x)) & ~outside).astype(int),
            "outside": outside.astype(int)}
    if clf.age_head is not None:
        pa = clf.age_head.predict_proba(x)
        cols["predicted_age_group"] = np.array(clf.age_head.classes)[pa.argmax(1)]
        cols["p_age_group"] = np.round(pa.max(1), 6)
    return cols



def write_predictions(path: Path, data: EmbeddingSet, splits: np.ndarray, p_raw: np.ndarray, p_cal: np.ndarray,
                      threshold: float, extra: dict[str, np.ndarray] | None = None) -> None:
    """One row per clip: identity, split, truth, probabilities, prediction, then the group columns
    and any ``extra`` columns (e.g. the age head's answer, whether the clip was answered)."""
    pred = (p_cal >= threshold).astype(int)
    extra = extra or {}
    with atomic_write(path, newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "path", "speaker", "split", "gender", "speech_s", "p_male_uncalibrated", "p_male",
                    "predicted", "correct", *data.groups, *extra])
        for i in range(len(data)):
            w.writerow([data.ids[i], data.paths[i], data.speakers[i], splits[i], CLASSES[data.y[i]],
                        f"{data.speech_s[i]:.3f}", f"{p_raw[i]:.6f}", f"{p_cal[i]:.6f}", CLASSES[pred[i]],
                        int(pred[i] == data.y[i]), *[data.groups[g][i] for g in data.groups],
                        *[v[i] for v in extra.values()]])
