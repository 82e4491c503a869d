"""A deeper dense classifier: the classic Common Voice gender example's 5 hidden layers."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class DenseMLP(nn.Module):
    """(Linear -> ReLU -> Dropout) per hidden width, then Linear: (B, in_dim) -> (B, n_classes) logits.

    With the defaults this is the widely copied "gender recognition by voice" network
    (256-256-128-128-64, dropout 0.3), except that its single sigmoid output is two logits here.
    ``first_activation=False, init="glorot", single_logit=True`` is that network exactly as
    published (Keras: the first Dense layer has no activation, Glorot-uniform weights and zero
    biases, one sigmoid output).

    Args:
        in_dim: input size.
        hidden_dims: widths of the hidden layers, input side first.
        dropout: dropout probability after every hidden layer.
        n_classes: output logits (2: female, male).
        raw_inputs: train and score on the raw features (no train-set normalisation), as published.
        first_activation: a ReLU after the first hidden layer (the published network has none).
        init: ``torch`` (PyTorch's default) or ``glorot`` (Keras' default: Glorot-uniform weights, zero biases).
        single_logit: one output ``d`` (a sigmoid unit, trained with binary cross-entropy as published),
            returned as the logits ``[0, d]``, whose softmax is ``[1 - sigmoid(d), sigmoid(d)]``.
    """

    def __init__(self, in_dim: int, hidden_dims: Sequence[int] = (256, 256, 128, 128, 64), dropout: float = 0.3,
                 n_classes: int = 2, raw_inputs: bool = False, first_activation: bool = True, init: str = "torch",
                 single_logit: bool = False):
        super().__init__()
        if init not in ("torch", "glorot"):
            raise ValueError(f"init={init!r}: torch or glorot")
        if single_logit and n_classes != 2:
            raise ValueError("single_logit needs n_classes=2")
        self.raw_inputs = raw_inputs
        self.single_logit = single_logit
        layers: list[nn.Module] = []
        width = in_dim
        for k, h in enumerate(hidden_dims):
            layers += [nn.Linear(width, int(h)), *([nn.ReLU()] if k or first_activation else []), nn.Dropout(dropout)]
            width = int(h)
        layers.append(nn.Linear(width, 1 if single_logit else n_classes))
        self.net = nn.Sequential(*layers)
        if init == "glorot":
            for m in self.net:
                if isinstance(m, nn.Linear):
                    nn.init.xavier_uniform_(m.weight)
                    nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        return torch.cat([torch.zeros_like(out), out], dim=1) if self.single_logit else out
