"""What a gender head gets beside its weights so that it can say how sure it may be: an age-group
head, a temperature per predicted age group, an out-of-distribution gate, and the per-clip
weights that balance the classes inside each age group."""

from __future__ import annotations

import logging
from collections import Counter

import numpy as np

from src.evaluation.calibration import fit_temperature
from src.labels import AGE_GROUPS, CLASSES
from src.models.checkpoint import OodGate, TrainedClassifier

log = logging.getLogger(__name__)

MIN_GROUP_VAL_CLIPS = 20  # fewer validation clips of a predicted age group (or one class only): overall T
MIN_AGE_SPEAKERS = 2  # an age group with fewer training speakers is left out of the age head


def balanced_weights(y: np.ndarray, within: np.ndarray | None) -> np.ndarray:
    """Per-clip weights under which both classes weigh the same inside each value of ``within``
    (e.g. the age group), and each value keeps its own share of the clips; ``None``: classes
    balanced overall (``N / (n_classes * count)``)."""
    if within is None:
        within = np.zeros(len(y), dtype=int)
    w = np.empty(len(y))
    for g in set(within.tolist()):
        in_g = within == g
        present = set(y[in_g].tolist())
        for c in present:
            m = in_g & (y == c)
            w[m] = in_g.sum() / (len(present) * m.sum())
    return w


def fit_age_head(x_train: np.ndarray, age_train: np.ndarray, speakers_train: np.ndarray, x_val: np.ndarray,
                 age_val: np.ndarray, mean: np.ndarray, std: np.ndarray, seed: int = 0) -> TrainedClassifier | None:
    """A child / teen / adult head (balanced logistic regression) on the embeddings normalised like
    the gender head's (``mean``, ``std``), temperature-scaled on the validation clips; ``None`` when
    fewer than two age groups have :data:`MIN_AGE_SPEAKERS` training speakers.

    Rows whose age group is unknown (``""``) are left out.
    """
    from sklearn.linear_model import LogisticRegression

    speakers = {g: len(set(speakers_train[age_train == g].tolist())) for g in AGE_GROUPS}
    groups = tuple(g for g in AGE_GROUPS if speakers[g] >= MIN_AGE_SPEAKERS)
    if len(groups) < 2:
        log.info("no age head: training speakers per age group %s", speakers)
        return None
    idx = {g: i for i, g in enumerate(groups)}
    tr = np.isin(age_train, groups)
    est = LogisticRegression(C=0.1, max_iter=3000, class_weight="balanced", random_state=seed)
    head = TrainedClassifier(model=est, model_target="sklearn.linear_model.LogisticRegression",
                             model_kwargs=est.get_params(), mean=mean, std=std, classes=groups)
    est.fit(head.normalise(x_train[tr]), np.array([idx[g] for g in age_train[tr]]))
    va = np.isin(age_val, groups)
    if len(set(age_val[va].tolist())) >= 2:
        head.temperature = fit_temperature(head.logits(x_val[va]), np.array([idx[g] for g in age_val[va]]))
    log.info("age head: %s (training speakers %s), T=%.2f", groups, speakers, head.temperature)
    return head


def fit_group_temperatures(clf: TrainedClassifier, x_val: np.ndarray, y_val: np.ndarray) -> dict[str, float]:
    """One temperature of the pooled head per *predicted* age group (what inference knows), fitted on
    the validation clips the age head puts in that group; groups with a gender head of their own
    are skipped, groups with fewer than :data:`MIN_GROUP_VAL_CLIPS` clips or one class only keep the
    overall temperature."""
    if clf.age_head is None:
        return {}
    predicted = np.array(clf.age_head.classes_of(x_val))
    logits = clf.logits(x_val)
    out = {}
    for g in clf.age_head.classes:
        if g in clf.group_heads:  # calibrated by its own head
            continue
        m = predicted == g
        if m.sum() >= MIN_GROUP_VAL_CLIPS and len(set(y_val[m].tolist())) == len(CLASSES):
            out[g] = fit_temperature(logits[m], y_val[m])
    log.info("temperature per predicted age group: %s (overall %.2f; val clips per group %s)",
             {k: round(v, 2) for k, v in out.items()}, clf.temperature, dict(Counter(predicted.tolist())))
    return out


def fit_ood(z_train: np.ndarray, z_val: np.ndarray, quantile: float) -> OodGate:
    """Ledoit-Wolf Gaussian of the normalised training inputs; the threshold is the ``quantile``
    of the validation clips' squared Mahalanobis distances."""
    from sklearn.covariance import LedoitWolf

    lw = LedoitWolf().fit(z_train.astype(np.float64))
    gate = OodGate(location=lw.location_.astype(np.float32), precision=lw.precision_.astype(np.float32),
                   threshold=0.0, quantile=float(quantile))
    gate.threshold = float(np.quantile(gate.distance(z_val), quantile))
    return gate
