"""A deeper dense classifier: the classic Common Voice gender example's 5 hidden layers."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class DenseMLP(nn.Module):
    """(Linear -> ReLU -> Dropout) per hidden width, then Linear: (B, in_dim) -> (B, n_classes) logits.

    With the defaults this is the widely copied "gender recognition by voice" network
    (256-256-128-128-64, dropout 0.3), except that its single sigmoid output is two logits here.

    Args:
        in_dim: input size.
        hidden_dims: widths of the hidden layers, input side first.
        dropout: dropout probability after every hidden layer.
        n_classes: output logits (2: female, male).
    """

    def __init__(self, in_dim: int, hidden_dims: Sequence[int] = (256, 256, 128, 128, 64), dropout: float = 0.3,
                 n_classes: int = 2):
        super().__init__()
        layers: list[nn.Module] = []
        width = in_dim
        for h in hidden_dims:
            layers += [nn.Linear(width, int(h)), nn.ReLU(), nn.Dropout(dropout)]
            width = int(h)
        layers.append(nn.Linear(width, n_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
