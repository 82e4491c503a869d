"""Metrics of a set of predictions, as written to ``metrics.json`` (scikit-learn where it has them)."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    log_loss,
    precision_recall_fscore_support,
    roc_auc_score,
)

from src.labels import CLASSES

DURATION_BUCKETS_S: tuple[tuple[str, float, float], ...] = (
    ("<1s", 0.0, 1.0), ("1-2s", 1.0, 2.0), ("2-4s", 2.0, 4.0), ("4s+", 4.0, float("inf")))
MIN_GROUP_CLIPS = 1


def expected_calibration_error(y: np.ndarray, proba: np.ndarray, n_bins: int = 15) -> float:
    """ECE of the top-class confidence: sum over equal-width bins of |accuracy - confidence| x share."""
    conf = proba.max(axis=1)
    correct = proba.argmax(axis=1) == y
    bins = np.minimum((conf * n_bins).astype(int), n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        m = bins == b
        if m.any():
            ece += m.mean() * abs(correct[m].mean() - conf[m].mean())
    return float(ece)


def weighted_log_loss(y: np.ndarray, proba: np.ndarray) -> float:
    """Log loss with inverse-frequency class weights: the validation loss the torch loop minimises."""
    counts = np.bincount(y, minlength=len(CLASSES)).astype(float)
    weights = (len(y) / (len(CLASSES) * np.maximum(counts, 1)))[y]
    return float(log_loss(y, proba, sample_weight=weights, labels=list(range(len(CLASSES)))))


def core_metrics(y: np.ndarray, proba: np.ndarray, threshold: float = 0.5) -> dict:
    """Accuracy, balanced accuracy, per-class P/R/F1, confusion matrix, ROC-AUC, log loss, ECE.

    Args:
        y: (N,) true class indices.
        proba: (N, 2) class probabilities; ``pred = male if p(male) >= threshold``.
    """
    pred = (proba[:, 1] >= threshold).astype(int)
    labels = list(range(len(CLASSES)))
    p, r, f, support = precision_recall_fscore_support(y, pred, labels=labels, zero_division=0)
    both = len(set(y.tolist())) == len(CLASSES)
    return {
        "n": int(len(y)),
        "accuracy": float(accuracy_score(y, pred)),
        "balanced_accuracy": float(balanced_accuracy_score(y, pred)) if both else None,
        "per_class": {c: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
                          "support": int(support[i])} for i, c in enumerate(CLASSES)},
        "confusion_matrix": confusion_matrix(y, pred, labels=labels).tolist(),
        "roc_auc": float(roc_auc_score(y, proba[:, 1])) if both else None,
        "log_loss": float(log_loss(y, proba, labels=labels)),
        "ece": expected_calibration_error(y, proba),
    }


def accuracy_by(y: np.ndarray, pred: np.ndarray, keys: np.ndarray) -> dict[str, dict]:
    """Accuracy (and count) per distinct value of ``keys``."""
    out = {}
    for k in sorted(set(keys.tolist())):
        m = keys == k
        out[str(k) if k != "" else "(none)"] = {"n": int(m.sum()), "accuracy": float((pred[m] == y[m]).mean())}
    return out


def duration_bucket(speech_s: np.ndarray) -> np.ndarray:
    """Name of each clip's speech-duration bucket (see :data:`DURATION_BUCKETS_S`)."""
    out = np.empty(len(speech_s), dtype=object)
    for name, lo, hi in DURATION_BUCKETS_S:
        out[(speech_s >= lo) & (speech_s < hi)] = name
    return out.astype(str)


CONFIDENT_P = 0.9  # an answer whose top probability is at least this is a confident one


def selective_metrics(y: np.ndarray, proba: np.ndarray, answered: np.ndarray, threshold: float = 0.5) -> dict:
    """How far a set of answers can be trusted.

    Args:
        answered: (N,) False where the pipeline says ``unknown`` (not sure, or unlike its training data).

    Returns: ``n``; ``balanced_accuracy`` and ``ece`` of every clip (forced answers); ``coverage`` (share
    answered) and the ``answered_accuracy``; ``confident_share`` (answered with top probability
    >= :data:`CONFIDENT_P`) and ``confident_wrong`` (the share of those that are wrong).
    """
    pred = (proba[:, 1] >= threshold).astype(int)
    right = pred == y
    confident = answered & (proba.max(axis=1) >= CONFIDENT_P)
    both = len(set(y.tolist())) == len(CLASSES)
    return {"n": int(len(y)),
            "accuracy": float(right.mean()) if len(y) else None,
            "balanced_accuracy": float(balanced_accuracy_score(y, pred)) if both else None,
            "ece": expected_calibration_error(y, proba) if len(y) else None,
            "coverage": float(answered.mean()) if len(y) else None,
            "answered_accuracy": float(right[answered].mean()) if answered.any() else None,
            "confident_share": float(confident.mean()) if len(y) else None,
            "n_confident": int(confident.sum()),
            "confident_wrong": float((~right[confident]).mean()) if confident.any() else None}


def full_metrics(y: np.ndarray, proba_raw: np.ndarray, proba_cal: np.ndarray, threshold: float,
                 speech_s: np.ndarray, groups: dict[str, np.ndarray], answered: np.ndarray | None = None) -> dict:
    """Everything reported for one split: core metrics on calibrated probabilities, ECE before
    and after temperature scaling, accuracy by speech-duration bucket and by each group column,
    and (:func:`selective_metrics`) how far the answers can be trusted, overall and per group value.

    Args:
        answered: (N,) False where the answer is ``unknown``; ``None``: every clip answered.
    """
    answered = np.ones(len(y), bool) if answered is None else answered
    m = core_metrics(y, proba_cal, threshold)
    m["selective"] = selective_metrics(y, proba_cal, answered, threshold)
    m["selective_by_group"] = {g: {str(k) or "(none)": selective_metrics(y[v == k], proba_cal[v == k],
                                                                         answered[v == k], threshold)
                                   for k in sorted(set(v.tolist()))} for g, v in groups.items()}
    m["ece_before_calibration"] = expected_calibration_error(y, proba_raw)
    m["log_loss_before_calibration"] = float(log_loss(y, proba_raw, labels=list(range(len(CLASSES)))))
    pred = (proba_cal[:, 1] >= threshold).astype(int)
    buckets = duration_bucket(speech_s)
    m["accuracy_by_duration"] = {name: accuracy_by(y, pred, buckets).get(name, {"n": 0, "accuracy": None})
                                 for name, _, _ in DURATION_BUCKETS_S}
    m["accuracy_by_group"] = {g: accuracy_by(y, pred, v) for g, v in groups.items()}
    return m
