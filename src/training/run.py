"""One training run: split, normalise, train, calibrate, measure, save.

The model is a torch ``nn.Module`` (trained by :func:`~src.training.loop.train_classifier`
with early stopping on val) or a scikit-learn-style estimator (``fit`` on train in one
go); either way val fits the temperature and test is only measured.

Writes into ``run_dir``: TensorBoard events, ``best.pt`` (a
:class:`~src.models.checkpoint.TrainedClassifier`), ``predictions.csv`` and, last,
``metrics.json``. A run folder without ``metrics.json`` is not a finished run.
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from src.analysis.plots import confusion_figure
from src.labels import CLASSES
from src.models.checkpoint import CHECKPOINT_NAME, TrainedClassifier, estimator_logits, softmax
from src.training.calibration import fit_temperature
from src.training.dataset import EmbeddingSet
from src.training.loop import History, TrainerParams, class_weights, seed_everything, train_classifier
from src.training.metrics import core_metrics, full_metrics, weighted_log_loss
from src.training.runs import METRICS_NAME, PREDICTIONS_NAME  # noqa: F401 (re-exported)
from src.training.splits import make_splits

log = logging.getLogger(__name__)


def write_json_atomic(obj: Any, path: Path) -> None:
    """Write JSON through a temporary file, so a reader never sees half of it."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=float))
    tmp.replace(path)


def write_predictions(path: Path, data: EmbeddingSet, splits: np.ndarray, p_raw: np.ndarray, p_cal: np.ndarray,
                      threshold: float) -> None:
    """One row per clip: identity, split, truth, probabilities, prediction."""
    pred = (p_cal >= threshold).astype(int)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "path", "speaker", "split", "gender", "speech_s", "p_male_uncalibrated", "p_male",
                    "predicted", "correct", *data.groups])
        for i in range(len(data)):
            w.writerow([data.ids[i], data.paths[i], data.speakers[i], splits[i], CLASSES[data.y[i]],
                        f"{data.speech_s[i]:.3f}", f"{p_raw[i]:.6f}", f"{p_cal[i]:.6f}", CLASSES[pred[i]],
                        int(pred[i] == data.y[i]), *[data.groups[g][i] for g in data.groups]])


def _log_to_tensorboard(writer, data: EmbeddingSet, splits: np.ndarray, p_cal: np.ndarray,
                        metrics: dict, epoch: int) -> None:
    """Confusion-matrix images, a PR curve and the headline numbers."""
    for s in ("val", "test"):
        writer.add_figure(f"confusion_matrix/{s}", confusion_figure(metrics[s]["confusion_matrix"], s), epoch)
        for k in ("accuracy", "balanced_accuracy", "roc_auc", "log_loss", "ece"):
            if metrics[s][k] is not None:
                writer.add_scalar(f"{s}/{k}", metrics[s][k], epoch)
    m = splits == "test"
    writer.add_pr_curve("pr_curve/test_male", data.y[m], p_cal[m], epoch)
    writer.flush()


def input_normalisation(x: np.ndarray, floor_share: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension mean and standard deviation of the training embeddings.

    Embeddings after a ReLU (Resemblyzer) have dimensions that are almost always 0;
    their std is floored at ``floor_share`` of the median std so that a rare non-zero
    value does not become a huge input.
    """
    std = x.std(0)
    return x.mean(0), np.maximum(std, floor_share * float(np.median(std)) + 1e-8).astype(np.float32)


def fit_estimator(estimator: Any, x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray,
                  y_val: np.ndarray) -> History:
    """Fit a scikit-learn-style estimator on train; the history holds its (class-weighted) val log loss.

    There are no epochs: ``epochs`` and ``best_epoch`` stay 0.
    """
    estimator.fit(x_train, y_train)
    hist = History()
    hist.best_val_loss = weighted_log_loss(y_val, softmax(estimator_logits(estimator, x_val)))
    return hist


def train_run(data: EmbeddingSet, run_dir: Path, make_model: Callable[[int], tuple[Any, str, dict]],
              params: TrainerParams, seed: int = 0, val_frac: float = 0.15, test_frac: float = 0.15,
              threshold: float = 0.5, encoder_meta: dict | None = None, info: dict | None = None) -> dict:
    """Train, calibrate and evaluate one classifier; returns the metrics written to ``metrics.json``.

    Args:
        make_model: ``in_dim -> (model, import path of its class, its kwargs)``; the model is an
            ``nn.Module`` or an estimator with ``fit`` and ``predict_proba``/``decision_function``.
        encoder_meta: the embeddings' sidecar (encoder name, weights, config hash), kept in the checkpoint.
        info: anything else to record in ``metrics.json`` (data source, throughput, ...).
    """
    from torch.utils.tensorboard import SummaryWriter

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    splits, counts = make_splits(data, val_frac, test_frac, seed)
    tr, va = splits == "train", splits == "val"
    seed_everything(seed)  # before the model exists, so its initial weights are seeded too
    model, target, kwargs = make_model(data.dim)
    if getattr(model, "raw_inputs", False):  # e.g. the pitch threshold, in Hz
        mean, std = np.zeros(data.dim, np.float32), np.ones(data.dim, np.float32)
    else:
        mean, std = input_normalisation(data.x[tr])
    z = ((data.x - mean) / std).astype(np.float32)
    writer = SummaryWriter(log_dir=str(run_dir))
    if isinstance(model, nn.Module):
        hist: History = train_classifier(model, z[tr], data.y[tr], z[va], data.y[va], params, seed=seed,
                                         writer=writer)
        model = model.eval()
    else:
        hist = fit_estimator(model, z[tr], data.y[tr], z[va], data.y[va])
    clf = TrainedClassifier(model=model, model_target=target, model_kwargs=kwargs, mean=mean, std=std,
                            classes=CLASSES, threshold=threshold, encoder=encoder_meta or {})
    logits = clf.logits(data.x)
    clf.temperature = fit_temperature(logits[va], data.y[va])
    p_raw, p_cal = clf.predict_proba(data.x, calibrated=False), clf.predict_proba(data.x)
    metrics: dict[str, Any] = {
        **(info or {}), "encoder": encoder_meta or {}, "seed": seed, "splits": counts,
        "balance": params.balance, "class_weights": class_weights(data.y[tr], len(CLASSES)).tolist(),
        "epochs": hist.epochs, "best_epoch": hist.best_epoch, "best_val_loss": hist.best_val_loss,
        "stopped_early": hist.stopped_early, "temperature": clf.temperature, "threshold": threshold,
        "train": core_metrics(data.y[tr], p_cal[tr], threshold)}
    if getattr(model, "threshold_hz", None) is not None:
        metrics["threshold_hz"] = model.threshold_hz
    for s in ("val", "test"):
        m = splits == s
        metrics[s] = full_metrics(data.y[m], p_raw[m], p_cal[m], threshold, data.speech_s[m],
                                  {g: v[m] for g, v in data.groups.items()})
    _log_to_tensorboard(writer, data, splits, p_cal[:, 1], metrics, max(hist.epochs, 1))
    writer.close()
    clf.save(run_dir / CHECKPOINT_NAME, extra={"history": hist.__dict__})
    write_predictions(run_dir / PREDICTIONS_NAME, data, splits, p_raw[:, 1], p_cal[:, 1], threshold)
    write_json_atomic(metrics, run_dir / METRICS_NAME)
    log.info("test: accuracy %.4f, balanced accuracy %.4f, ECE %.4f -> %.4f after T=%.2f (%d epochs)",
             metrics["test"]["accuracy"], metrics["test"]["balanced_accuracy"],
             metrics["test"]["ece_before_calibration"], metrics["test"]["ece"], clf.temperature, hist.epochs)
    return metrics
