"""One training run: split, normalise, train, calibrate, measure, save.

The model is a torch ``nn.Module`` (trained by :func:`~src.training.loop.train_classifier`
with early stopping on val) or a scikit-learn-style estimator (``fit`` on train in one
go); either way val fits the temperature and test is only measured.

Writes into ``run_dir``: TensorBoard events, ``best.pt`` (a
:class:`~src.models.checkpoint.TrainedClassifier`), ``predictions.csv`` and, last,
``metrics.json``. A run folder without ``metrics.json`` is not a finished run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from src.embeddings.dataset import AUGMENTED, EmbeddingSet
from src.evaluation.calibration import fit_temperature
from src.evaluation.metrics import weighted_log_loss
from src.evaluation.predictions import answer_columns
from src.labels import CLASSES
from src.models.checkpoint import DEFAULT_UNKNOWN_BELOW, TrainedClassifier, estimator_logits, softmax
from src.models.pitch import PitchThreshold
from src.training.heads import balanced_weights, fit_age_head, fit_group_temperatures, fit_ood
from src.training.loop import History, seed_everything, train_classifier
from src.training.outputs import finish_run, run_metrics, split_metrics
from src.training.params import TrainerParams
from src.training.splits import make_splits, split_counts

log = logging.getLogger(__name__)


def age_head_metrics(clf: TrainedClassifier, x: np.ndarray, age_group: np.ndarray) -> dict | None:
    """Accuracy, balanced accuracy and confusion of the age head on the clips with a known age group."""
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, confusion_matrix

    known = np.isin(age_group, clf.age_head.classes) if clf.age_head is not None else np.zeros(len(x), bool)
    if not known.any():
        return None
    pred = np.array(clf.age_head.classes_of(x[known]))
    labels = list(clf.age_head.classes)
    return {"n": int(known.sum()), "accuracy": float(accuracy_score(age_group[known], pred)),
            "balanced_accuracy": float(balanced_accuracy_score(age_group[known], pred)),
            "labels": labels, "confusion_matrix": confusion_matrix(age_group[known], pred, labels=labels).tolist()}


def input_normalisation(x: np.ndarray, floor_share: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension mean and standard deviation of the training embeddings.

    Embeddings after a ReLU (Resemblyzer) have dimensions that are almost always 0;
    their std is floored at ``floor_share`` of the median std so that a rare non-zero
    value does not become a huge input.
    """
    std = x.std(0)
    return x.mean(0), np.maximum(std, floor_share * float(np.median(std)) + 1e-8).astype(np.float32)


def fit_estimator(estimator: Any, x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray,
                  y_val: np.ndarray, sample_weight: np.ndarray | None = None) -> History:
    """Fit a scikit-learn-style estimator on train; the history holds its (class-weighted) val log loss.

    There are no epochs: ``epochs`` and ``best_epoch`` stay 0. ``sample_weight`` is passed to
    ``fit`` when the estimator takes it (a warning says when it does not).
    """
    import inspect

    if sample_weight is not None and "sample_weight" in inspect.signature(estimator.fit).parameters:
        estimator.fit(x_train, y_train, sample_weight=sample_weight)
    else:
        if sample_weight is not None:
            log.warning("%s.fit takes no sample_weight: classes are not balanced inside groups",
                        type(estimator).__name__)
        estimator.fit(x_train, y_train)
    hist = History()
    hist.best_val_loss = weighted_log_loss(y_val, softmax(estimator_logits(estimator, x_val)))
    return hist


def fit_head(model: Any, z: np.ndarray, y: np.ndarray, tr: np.ndarray, va: np.ndarray, params: TrainerParams,
             seed: int, weights: np.ndarray | None = None, writer=None) -> History:
    """Train ``model`` (a torch module or an estimator) on the normalised ``z[tr]``, with ``va`` for early
    stopping (torch) and the validation loss; ``weights``: per-clip loss weights (``None``: the
    trainer's class balancing)."""
    if isinstance(model, nn.Module):
        hist = train_classifier(model, z[tr], y[tr], z[va], y[va], params, seed=seed, writer=writer,
                                sample_weights=None if weights is None else (weights[tr], weights[va]))
        model.eval()
        return hist
    return fit_estimator(model, z[tr], y[tr], z[va], y[va], sample_weight=None if weights is None else weights[tr])


MIN_GROUP_HEAD_SPEAKERS = 4  # training speakers per class an age group needs for a gender head of its own


def fit_group_head(make_model: Callable[[int], tuple[Any, str, dict]], data: EmbeddingSet, z: np.ndarray,
                   tr: np.ndarray, va: np.ndarray, params: TrainerParams, seed: int, base: TrainedClassifier,
                   group: str) -> TrainedClassifier | None:
    """A gender head of the same kind trained on one age group's clips only (classes balanced),
    temperature-scaled on that group's validation clips; ``None`` when the group has fewer than
    :data:`MIN_GROUP_HEAD_SPEAKERS` training speakers of a class or its validation clips lack a class
    (the pooled head answers for it then)."""
    speakers = [len(set(data.speakers[tr & (data.y == c)].tolist())) for c in range(len(CLASSES))]
    if min(speakers) < MIN_GROUP_HEAD_SPEAKERS or len(set(data.y[va].tolist())) < len(CLASSES):
        log.info("age group %s: no gender head of its own (training speakers per class %s)", group, speakers)
        return None
    seed_everything(seed)
    model, target, kwargs = make_model(data.dim)
    fit_head(model, z, data.y, tr, va, params, seed, balanced_weights(data.y, None))
    head = TrainedClassifier(model=model, model_target=target, model_kwargs=kwargs, mean=base.mean, std=base.std,
                             classes=CLASSES, threshold=base.threshold, encoder=base.encoder)
    head.temperature = fit_temperature(head.logits(data.x[va]), data.y[va])
    log.info("age group %s: gender head on %d clips (speakers per class %s), T=%.2f", group, int(tr.sum()),
             speakers, head.temperature)
    return head


@dataclass(frozen=True)
class HeadParams:
    """How a run makes its answers trustworthy and its data fair (``conf/train.yaml``).

    Attributes:
        stratify_by: group columns whose cells (with gender) keep their share in every split.
        holdout: ``(group column, value)``: those clips are the test split (one corpus left out).
        balance_within: a group column inside each value of which the classes weigh the same.
        age_head: fit a child / teen / adult head (and a temperature per predicted age group)
            when the data has ``age_group`` values.
        group_heads: with the age head, a gender head per age group that has the speakers for one;
            the answer is their mixture weighted by the age head's probabilities.
        ood_quantile: the OOD gate's threshold, a quantile of the validation clips' distances
            (``None``: no gate).
        unknown_below: answers whose top calibrated probability is under this are ``unknown``.
    """

    stratify_by: tuple[str, ...] = ()
    holdout: tuple[str, str] | None = None
    balance_within: str | None = None
    age_head: bool = True
    group_heads: bool = True
    ood_quantile: float | None = None
    unknown_below: float = DEFAULT_UNKNOWN_BELOW


def train_run(data: EmbeddingSet, run_dir: Path, make_model: Callable[[int], tuple[Any, str, dict]],
              params: TrainerParams, seed: int = 0, val_frac: float = 0.15, test_frac: float = 0.15,
              threshold: float = 0.5, encoder_meta: dict | None = None, info: dict | None = None,
              heads: HeadParams = HeadParams()) -> dict:
    """Train, calibrate and evaluate one classifier; returns the metrics written to ``metrics.json``.

    Args:
        make_model: ``in_dim -> (model, import path of its class, its kwargs)``; the model is an
            ``nn.Module`` or an estimator with ``fit`` and ``predict_proba``/``decision_function``.
        encoder_meta: the embeddings' sidecar (encoder name, weights, config hash), kept in the checkpoint.
        info: anything else to record in ``metrics.json`` (data source, throughput, ...).
        heads: splits, balancing, age head, OOD gate and ``unknown`` threshold (:class:`HeadParams`).
    """
    from torch.utils.tensorboard import SummaryWriter

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    holdout = None
    if heads.holdout is not None:
        column, value = heads.holdout
        if column not in data.groups or not (data.groups[column] == value).any():
            known = sorted(set(data.groups.get(column, np.array([])).tolist()))
            raise ValueError(f"holdout {column}={value!r}: no such clip (values: {known})")
        holdout = data.groups[column] == value
    splits, counts = make_splits(data, val_frac, test_frac, seed, heads.stratify_by, holdout)
    if AUGMENTED in data.groups:  # degraded copies train only: those of val and test speakers go
        keep = (data.groups[AUGMENTED] != "yes") | (splits == "train")
        log.info("augmented copies: %d trained on, %d of val/test speakers dropped",
                 int(((data.groups[AUGMENTED] == "yes") & keep).sum()), int((~keep).sum()))
        data, splits = data.subset(keep), splits[keep]
        counts = split_counts(data, splits)
    tr, va = splits == "train", splits == "val"
    weights = (balanced_weights(data.y, data.groups[heads.balance_within]) if heads.balance_within else None)
    seed_everything(seed)  # before the model exists, so its initial weights are seeded too
    model, target, kwargs = make_model(data.dim)
    if getattr(model, "raw_inputs", False):  # e.g. the pitch threshold, in Hz
        mean, std = np.zeros(data.dim, np.float32), np.ones(data.dim, np.float32)
    else:
        mean, std = input_normalisation(data.x[tr])
    z = ((data.x - mean) / std).astype(np.float32)
    writer = SummaryWriter(log_dir=str(run_dir))
    hist = fit_head(model, z, data.y, tr, va, params, seed, weights, writer)
    clf = TrainedClassifier(model=model, model_target=target, model_kwargs=kwargs, mean=mean, std=std,
                            classes=CLASSES, threshold=threshold, encoder=encoder_meta or {},
                            unknown_below=heads.unknown_below)
    logits = clf.logits(data.x)
    clf.temperature = fit_temperature(logits[va], data.y[va])
    if heads.age_head and "age_group" in data.groups:
        ages = data.groups["age_group"]
        clf.age_head = fit_age_head(data.x[tr], ages[tr], data.speakers[tr], data.x[va], ages[va], mean, std, seed)
        if heads.group_heads and clf.age_head is not None:
            for g in clf.age_head.classes:
                head = fit_group_head(make_model, data, z, tr & (ages == g), va & (ages == g), params, seed, clf, g)
                if head is not None:
                    clf.group_heads[g] = head
        clf.group_temperatures = fit_group_temperatures(clf, data.x[va], data.y[va])
    if heads.ood_quantile is not None:
        clf.ood = fit_ood(z[tr], z[va], heads.ood_quantile)
    p_raw, p_cal = clf.predict_proba(data.x, calibrated=False), clf.predict_proba(data.x)
    answers = answer_columns(clf, data.x, p_cal)
    answered = answers["answered"].astype(bool)
    metrics = run_metrics(info, encoder_meta, seed, counts, params, data.y[tr], hist, clf.temperature, threshold,
                          p_cal[tr])
    if isinstance(model, PitchThreshold):  # its fitted threshold is part of what the run found
        metrics["threshold_hz"] = model.threshold_hz
    split_metrics(metrics, data, splits, p_raw, p_cal, threshold, answered)
    if clf.age_head is not None:
        metrics["age_group"] = {"classes": list(clf.age_head.classes), "temperature": clf.age_head.temperature,
                                "group_temperatures": clf.group_temperatures,
                                **{s: age_head_metrics(clf, data.x[splits == s], data.groups["age_group"][splits == s])
                                   for s in ("train", "val", "test")}}
    if clf.ood is not None:
        metrics["ood"] = {"quantile": clf.ood.quantile, "threshold": clf.ood.threshold,
                          **{s: float(answers["outside"][splits == s].mean()) for s in ("train", "val", "test")}}
    if heads.holdout is not None:
        metrics["holdout"] = {"column": heads.holdout[0], "value": heads.holdout[1]}
    return finish_run(run_dir, writer, data, splits, p_raw, p_cal, metrics, hist.epochs,
                      lambda path: clf.save(path, extra={"history": hist.__dict__}), answers)
