"""What every training run writes, whatever its model: the shared head of ``metrics.json`` and
:func:`finish_run` (TensorBoard figures, ``best.pt``, ``predictions.csv`` and, last,
``metrics.json``: a run folder without it is not a finished run)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from src.data.files import write_json_atomic
from src.embeddings.dataset import EmbeddingSet
from src.evaluation.metrics import core_metrics, full_metrics
from src.evaluation.plots import confusion_figure
from src.evaluation.predictions import write_predictions
from src.labels import CLASSES
from src.models.checkpoint import CHECKPOINT_NAME
from src.models.run_folder import METRICS_NAME, PREDICTIONS_NAME
from src.training.loop import History, class_weights
from src.training.params import TrainerParams

log = logging.getLogger(__name__)


def log_to_tensorboard(writer, data: EmbeddingSet, splits: np.ndarray, p_cal: np.ndarray,
                       metrics: dict, epoch: int) -> None:
    """Confusion-matrix images, a PR curve and the headline numbers."""
    for s in ("val", "test"):
        writer.add_figure(f"confusion_matrix/{s}", confusion_figure(metrics[s]["confusion_matrix"], s), epoch)
        for k in ("accuracy", "balanced_accuracy", "roc_auc", "log_loss", "ece"):
            if metrics[s][k] is not None:
                writer.add_scalar(f"final/{k}_{s}", metrics[s][k], epoch)  # apart from the curves' accuracy/val
    m = splits == "test"
    writer.add_pr_curve("pr_curve/test_male", data.y[m], p_cal[m], epoch)
    writer.flush()


def run_metrics(info: dict | None, encoder_meta: dict | None, seed: int, counts: dict, params: TrainerParams,
                y_train: np.ndarray, hist: History, temperature: float, threshold: float,
                p_train: np.ndarray, **more: Any) -> dict[str, Any]:
    """The head of ``metrics.json`` every run shares: what was trained on what, how training went,
    the temperature and threshold, then ``more``, then the train split's core metrics."""
    return {**(info or {}), "encoder": encoder_meta or {}, "seed": seed, "splits": counts,
            "balance": params.balance, "class_weights": class_weights(y_train, len(CLASSES)).tolist(),
            "epochs": hist.epochs, "best_epoch": hist.best_epoch, "best_val_loss": hist.best_val_loss,
            "stopped_early": hist.stopped_early, "temperature": temperature, "threshold": threshold, **more,
            "train": core_metrics(y_train, p_train, threshold)}


def split_metrics(metrics: dict, data: EmbeddingSet, splits: np.ndarray, p_raw: np.ndarray, p_cal: np.ndarray,
                  threshold: float, answered: np.ndarray | None = None) -> None:
    """Add the full gender metrics of the val and test splits to ``metrics``."""
    for s in ("val", "test"):
        m = splits == s
        metrics[s] = full_metrics(data.y[m], p_raw[m], p_cal[m], threshold, data.speech_s[m],
                                  {g: v[m] for g, v in data.groups.items()},
                                  answered=None if answered is None else answered[m])


def finish_run(run_dir: Path, writer, data: EmbeddingSet, splits: np.ndarray, p_raw: np.ndarray,
               p_cal: np.ndarray, metrics: dict, epochs: int, save_checkpoint: Callable[[Path], None],
               extra_columns: dict[str, np.ndarray] | None = None, log_extra: str = "") -> dict:
    """Write what every run writes (TensorBoard figures, ``best.pt`` through ``save_checkpoint``,
    ``predictions.csv``, then ``metrics.json``) and log the test figures; returns ``metrics``."""
    threshold = metrics["threshold"]
    log_to_tensorboard(writer, data, splits, p_cal[:, 1], metrics, max(epochs, 1))
    writer.close()
    save_checkpoint(run_dir / CHECKPOINT_NAME)
    write_predictions(run_dir / PREDICTIONS_NAME, data, splits, p_raw[:, 1], p_cal[:, 1], threshold, extra_columns)
    write_json_atomic(run_dir / METRICS_NAME, metrics)
    t = metrics["test"]
    log.info("test: accuracy %.4f, balanced accuracy %s, ECE %.4f -> %.4f after T=%.2f (%d epochs)%s",
             t["accuracy"], t["balanced_accuracy"], t["ece_before_calibration"], t["ece"], metrics["temperature"],
             epochs, log_extra)
    return metrics
