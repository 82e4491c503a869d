"""The training loop: one epoch driver (:func:`fit`) for every torch model, mini-batches,
class-weighted loss, early stopping on validation loss.

What is trained and how it is scored is a :class:`Task`, after SpeechBrain's ``Brain`` hooks:
``train_batches`` (the data of one epoch), ``compute_objectives`` (forward pass and loss of one
batch) and ``on_stage_end`` (the epoch's validation: the loss early stopping watches, and what to
log). :class:`EmbeddingTask` trains a head on embeddings; the end-to-end task is in
:mod:`src.training.end_to_end`.
"""

from __future__ import annotations

import copy
import logging
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from src.training.params import TrainerParams

log = logging.getLogger(__name__)


@dataclass
class History:
    """Per-epoch curves and where training stopped."""

    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    val_acc: list[float] = field(default_factory=list)
    best_epoch: int = 0
    best_val_loss: float = float("inf")
    stopped_early: bool = False

    @property
    def epochs(self) -> int:
        return len(self.train_loss)


class EarlyStopping:
    """Keeps the weights of the best validation loss; says when ``patience`` epochs passed without
    an improvement of at least ``min_delta``. Records the outcome in ``history``."""

    def __init__(self, model: nn.Module, history: History, patience: int, min_delta: float):
        self.model, self.history, self.patience, self.min_delta = model, history, patience, min_delta
        self.best_state = copy.deepcopy(model.state_dict())
        self.waited = 0

    def update(self, val_loss: float, epoch: int) -> bool:
        """Note this epoch's validation loss; True when training should stop."""
        h = self.history
        if val_loss < h.best_val_loss - self.min_delta:
            h.best_val_loss, h.best_epoch, self.waited = val_loss, epoch, 0
            self.best_state = copy.deepcopy(self.model.state_dict())
            return False
        self.waited += 1
        if self.waited >= self.patience:
            h.stopped_early = True
            log.info("early stop at epoch %d (best val loss %.4f at epoch %d)", epoch, h.best_val_loss, h.best_epoch)
            return True
        return False

    def restore_best(self) -> None:
        """Put the best weights back into the model."""
        self.model.load_state_dict(self.best_state)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch, and ask torch for deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def class_weights(y: np.ndarray, n_classes: int) -> np.ndarray:
    """Inverse-frequency weights ``N / (n_classes * count)`` (1.0 each when balanced)."""
    counts = np.bincount(y, minlength=n_classes).astype(float)
    return len(y) / (n_classes * np.maximum(counts, 1))


def make_optimizer(model: nn.Module, p: TrainerParams) -> torch.optim.Optimizer:
    opts = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}
    if p.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=p.lr, momentum=0.9, weight_decay=p.weight_decay)
    if p.optimizer not in opts:
        raise ValueError(f"unknown optimizer {p.optimizer!r}: adam, adamw or sgd")
    return opts[p.optimizer](model.parameters(), lr=p.lr, weight_decay=p.weight_decay)


def epoch_batches(n: int, batch_size: int, gen: torch.Generator, weights: np.ndarray | None) -> list[torch.Tensor]:
    """Shuffled index batches; with ``weights``, a class-balanced sample with replacement."""
    if weights is not None:
        idx = torch.multinomial(torch.as_tensor(weights, dtype=torch.float64), n, replacement=True, generator=gen)
    else:
        idx = torch.randperm(n, generator=gen)
    return list(idx.split(batch_size))


def _evaluate(model: nn.Module, loss_fn: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    model.eval()
    with torch.no_grad():
        logits = model(x)
        return float(loss_fn(logits, y)), float((logits.argmax(1) == y).float().mean())


class WeightedCrossEntropy(nn.Module):
    """Cross-entropy with a weight per row of the data it is called on (looked up by row index)."""

    def __init__(self, weights: np.ndarray):
        super().__init__()
        self.weights = torch.as_tensor(weights, dtype=torch.float32)
        self.rows: torch.Tensor | None = None  # the row indices of the next call; None: all rows

    def forward(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        w = self.weights if self.rows is None else self.weights[self.rows]
        return (nn.functional.cross_entropy(logits, y, reduction="none") * w).sum() / w.sum()


@dataclass
class EpochResult:
    """One epoch's figures: ``stop_loss`` is what early stopping watches; ``scalars`` more to log."""

    train_loss: float
    train_acc: float
    val_loss: float
    val_acc: float
    stop_loss: float
    scalars: dict[str, float] = field(default_factory=dict)


class Task(Protocol):
    """What :func:`fit` trains (see the module docstring)."""

    model: nn.Module

    def train_batches(self, gen: torch.Generator) -> Iterable[Any]: ...

    def compute_objectives(self, batch: Any) -> torch.Tensor: ...

    def on_stage_end(self, epoch: int) -> EpochResult: ...


def fit(task: Task, params: TrainerParams, seed: int = 0, writer=None) -> History:
    """Train ``task.model`` in place for at most ``params.max_epochs`` epochs, early stopping on
    :attr:`EpochResult.stop_loss`; at the end the model holds the weights of the best epoch.

    Args:
        writer: optional TensorBoard ``SummaryWriter`` for per-epoch scalars.
    """
    gen = torch.Generator().manual_seed(seed)
    opt = make_optimizer(task.model, params)
    hist = History()
    stopper = EarlyStopping(task.model, hist, params.patience, params.min_delta)
    for epoch in range(1, params.max_epochs + 1):
        task.model.train()
        for batch in task.train_batches(gen):
            opt.zero_grad()
            task.compute_objectives(batch).backward()
            opt.step()
        r = task.on_stage_end(epoch)
        for name, v in (("train_loss", r.train_loss), ("val_loss", r.val_loss), ("train_acc", r.train_acc),
                        ("val_acc", r.val_acc)):
            getattr(hist, name).append(v)
        if writer is not None:
            for name, v in {"loss/train": r.train_loss, "loss/val": r.val_loss, "accuracy/train": r.train_acc,
                            "accuracy/val": r.val_acc, "lr": opt.param_groups[0]["lr"], **r.scalars}.items():
                writer.add_scalar(name, v, epoch)
        if stopper.update(r.stop_loss, epoch):
            break
    stopper.restore_best()
    return hist


class EmbeddingTask:
    """A classifier head on normalised embeddings: shuffled (or class-sampled) batches of rows,
    class-weighted (or per-clip weighted) cross-entropy; validation on the whole val set."""

    def __init__(self, model: nn.Module, x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray,
                 y_val: np.ndarray, params: TrainerParams,
                 sample_weights: tuple[np.ndarray, np.ndarray] | None = None):
        self.model, self.batch_size = model, params.batch_size
        n_classes = int(max(y_train.max(), y_val.max())) + 1
        w = class_weights(y_train, n_classes)
        loss_weight = torch.tensor(w, dtype=torch.float32) if params.balance == "weighted_loss" else None
        self.sample_w = w[y_train] if params.balance == "sampler" else None
        self.train_loss_fn: nn.Module = nn.CrossEntropyLoss(weight=loss_weight)
        self.val_loss_fn: nn.Module = nn.CrossEntropyLoss(
            weight=torch.tensor(class_weights(y_val, n_classes), dtype=torch.float32))
        if sample_weights is not None:
            if params.balance == "sampler":
                self.sample_w = sample_weights[0]
            elif params.balance == "weighted_loss":
                self.train_loss_fn = WeightedCrossEntropy(sample_weights[0])
            self.val_loss_fn = WeightedCrossEntropy(sample_weights[1])
        self.xt, self.yt = torch.from_numpy(x_train), torch.from_numpy(y_train).long()
        self.xv, self.yv = torch.from_numpy(x_val), torch.from_numpy(y_val).long()

    def train_batches(self, gen: torch.Generator) -> list[torch.Tensor]:
        return epoch_batches(len(self.yt), self.batch_size, gen, self.sample_w)

    def compute_objectives(self, idx: torch.Tensor) -> torch.Tensor:
        if isinstance(self.train_loss_fn, WeightedCrossEntropy):
            self.train_loss_fn.rows = idx
        return self.train_loss_fn(self.model(self.xt[idx]), self.yt[idx])

    def on_stage_end(self, epoch: int) -> EpochResult:
        if isinstance(self.train_loss_fn, WeightedCrossEntropy):
            self.train_loss_fn.rows = None
        tl, ta = _evaluate(self.model, self.train_loss_fn, self.xt, self.yt)
        vl, va = _evaluate(self.model, self.val_loss_fn, self.xv, self.yv)
        return EpochResult(tl, ta, vl, va, stop_loss=vl)


def train_classifier(model: nn.Module, x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray,
                     y_val: np.ndarray, params: TrainerParams, seed: int = 0, writer=None,
                     sample_weights: tuple[np.ndarray, np.ndarray] | None = None) -> History:
    """Train ``model`` in place on normalised inputs; at the end it holds the best-val-loss weights.

    Args:
        writer: optional TensorBoard ``SummaryWriter`` for per-epoch scalars.
        sample_weights: (train, val) per-clip loss weights that replace the class weights (e.g.
            classes balanced inside each age group); with ``balance=sampler`` they weight the sampling.
    """
    seed_everything(seed)
    task = EmbeddingTask(model, x_train, y_train, x_val, y_val, params, sample_weights)
    return fit(task, params, seed, writer)
