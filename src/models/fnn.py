"""The 2-layer feed-forward classifier trained on top of frozen embeddings."""

from __future__ import annotations

import torch
from torch import nn


class GenderFNN(nn.Module):
    """Linear -> ReLU -> Dropout -> Linear: (B, in_dim) embeddings -> (B, n_classes) logits.

    Args:
        in_dim: embedding size.
        hidden_dim: width of the hidden layer.
        dropout: dropout probability after the hidden layer.
        n_classes: output logits (2: female, male).
    """

    def __init__(self, in_dim: int, hidden_dim: int = 256, dropout: float = 0.3, n_classes: int = 2):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.ReLU(), nn.Dropout(dropout),
                                 nn.Linear(hidden_dim, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
