"""The torch training loop's settings: the schema and defaults of the ``trainer`` config group (no
torch here, so that composing a config stays light)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TrainerParams:
    """Optimisation settings: the ``trainer`` config group (``trainer.lr=...``)."""

    max_epochs: int = 200
    batch_size: int = 64
    optimizer: str = "adamw"  # adam | adamw | sgd
    lr: float = 1e-3
    weight_decay: float = 1e-4
    patience: int = 15  # epochs without a val-loss improvement before stopping
    min_delta: float = 1e-4
    balance: str = "weighted_loss"  # weighted_loss | sampler | none
