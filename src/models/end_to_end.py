"""End-to-end networks (speech in, logits out): what they promise, how one is saved, and how a
saved one is split for inference (its trunk as the encoder, its heads as classifiers).

A network trained end to end (``model=melcnn``, ``model=crnn``: any ``nn.Module`` with the
``kind: end_to_end`` key in its ``conf/model/<key>.yaml``) keeps this protocol:

* ``forward(wave)``: (B, T) 16 kHz speech -> (gender logits (B, n_classes), age-band logits
  (B, n_age_bands) or ``None``);
* ``embed(wave)``: (B, T) -> (B, dim) the pooled features both heads read (any length of
  speech; a network that needs a minimum length pads or repeats it itself);
* ``gender_head`` and ``age_head`` (``None`` without an age head): ``nn.Linear`` layers on
  those features, the last step of ``forward`` after the dropout;
* its constructor takes ``n_age_bands`` (0: no age head).

The trainer (:mod:`src.training.end_to_end`) needs nothing else, and neither does inference:
:func:`load_end_to_end` turns the checkpoint into an :class:`EndToEndTrunk` encoder and
:class:`~src.models.checkpoint.TrainedClassifier` heads, so ``GenderPipeline``, ``evaluate`` and
``analyze`` treat the run like any other.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from hydra.utils import get_class
from torch import nn

from src.models.checkpoint import END_TO_END, TrainedClassifier, read_checkpoint, write_checkpoint


class EndToEndNetwork(Protocol):
    """See the module docstring."""

    gender_head: nn.Linear
    age_head: nn.Linear | None

    def __call__(self, wave: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]: ...

    def embed(self, wave: torch.Tensor) -> torch.Tensor: ...


class EndToEndTrunk:
    """A trained end-to-end network up to its pooled features, as an
    :class:`~src.encoders.base.Encoder` (each clip whole, one forward pass each: no padding)."""

    sample_rate_hz = 16_000

    def __init__(self, network: nn.Module, name: str, identity: str):
        self.network = network.eval()
        self.name = name
        self.dim = network.gender_head.in_features
        self.identity = identity

    @torch.inference_mode()
    def embed(self, waves: list[np.ndarray]) -> np.ndarray:
        out = [self.network.embed(torch.from_numpy(np.ascontiguousarray(w, np.float32))[None])[0].numpy()
               for w in waves]
        return np.stack(out) if out else np.zeros((0, self.dim), np.float32)


def save_end_to_end(path: str | Path, network: nn.Module, target: str, kwargs: dict[str, Any], temperature: float,
                    threshold: float, classes: list[str], age_bands: list[str], encoder: dict[str, Any],
                    history: dict[str, Any]) -> None:
    """Write an end-to-end run's ``best.pt`` (``kind: end_to_end``): the whole network's class,
    arguments and weights, the gender temperature and threshold, the age bands."""
    write_checkpoint(path, {"kind": END_TO_END, "model_target": target, "model_kwargs": kwargs,
                            "state_dict": network.state_dict(), "classes": list(classes),
                            "temperature": temperature, "threshold": threshold, "encoder": encoder,
                            "age_bands": list(age_bands), "history": history})


def load_end_to_end(path: str | Path, blob: dict | None = None
                    ) -> tuple[EndToEndTrunk, TrainedClassifier, TrainedClassifier | None]:
    """Split an end-to-end run's ``best.pt`` into the encoder (the trunk), the calibrated gender
    head and, when the run has one, the age-band head (classes = the bands; not calibrated), both
    as :class:`TrainedClassifier` on the trunk's features (identity normalisation)."""
    blob = read_checkpoint(path) if blob is None else blob
    if blob.get("kind") != END_TO_END:
        raise ValueError(f"{path} is not an end-to-end checkpoint")
    network = get_class(blob["model_target"])(**blob["model_kwargs"])
    network.load_state_dict(blob["state_dict"])
    network.eval()
    name = blob.get("encoder", {}).get("encoder") or blob["model_target"].rsplit(".", 1)[-1].lower()
    trunk = EndToEndTrunk(network, name, identity=f"{name} end-to-end network {Path(path).resolve()}")

    def head(layer: nn.Linear, classes: list[str], temperature: float) -> TrainedClassifier:
        dim = layer.in_features
        return TrainedClassifier(
            model=layer, model_target="torch.nn.Linear",
            model_kwargs={"in_features": dim, "out_features": layer.out_features},
            mean=np.zeros(dim, np.float32), std=np.ones(dim, np.float32), classes=tuple(classes),
            temperature=temperature, threshold=float(blob["threshold"]), encoder=blob.get("encoder", {}))

    gender = head(network.gender_head, blob["classes"], float(blob["temperature"]))
    age = head(network.age_head, blob["age_bands"], 1.0) if network.age_head is not None else None
    return trunk, gender, age
