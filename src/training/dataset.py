"""Embedding records -> arrays for training and evaluation, with the checks that keep
a bad file from becoming a misleading run."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from src.embeddings.store import STATUS_OK, read_records
from src.labels import CLASSES, class_index

log = logging.getLogger(__name__)


class DatasetError(ValueError):
    """Embeddings that cannot be trained or evaluated on; the message names the problem."""


@dataclass
class EmbeddingSet:
    """Usable clips of one encoder, row-aligned.

    Attributes:
        x: (N, dim) float32 embeddings.
        y: (N,) int class indices into :data:`src.labels.CLASSES`.
        ids, paths, speakers: (N,) clip identity.
        speech_s: (N,) seconds of speech the embedding was made from.
        split: (N,) manifest split or ``""``.
        age: (N,) years, NaN when unknown.
        groups: column name -> (N,) values, for per-group metrics.
    """

    x: np.ndarray
    y: np.ndarray
    ids: np.ndarray
    paths: np.ndarray
    speakers: np.ndarray
    speech_s: np.ndarray
    split: np.ndarray
    age: np.ndarray
    groups: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.y)

    @property
    def dim(self) -> int:
        return int(self.x.shape[1])

    def subset(self, mask: np.ndarray) -> EmbeddingSet:
        """Rows where ``mask`` is true (a boolean or index array)."""
        return EmbeddingSet(x=self.x[mask], y=self.y[mask], ids=self.ids[mask], paths=self.paths[mask],
                            speakers=self.speakers[mask], speech_s=self.speech_s[mask], split=self.split[mask],
                            age=self.age[mask], groups={k: v[mask] for k, v in self.groups.items()})


def records_to_set(records: list[dict], source: str = "embeddings", both_classes: bool = True) -> EmbeddingSet:
    """Keep the ``ok`` records and stack them; checks dimension and classes.

    Args:
        both_classes: require clips of every class (training does; scoring a one-gender source does not).

    Raises:
        DatasetError: no usable record, embeddings of mixed dimension, or (``both_classes``) a single class.
    """
    usable = [r.get("status") == STATUS_OK and r.get("embedding") is not None for r in records]
    ok = [r for r, u in zip(records, usable) if u]
    skipped = Counter(r.get("status", "?") for r, u in zip(records, usable) if not u)
    if skipped:
        log.info("%s: left out %s", source, dict(skipped))
    if not ok:
        raise DatasetError(f"{source}: no usable embedding among {len(records)} records")
    dims = Counter(len(r["embedding"]) for r in ok)
    if len(dims) > 1:
        odd = [r["id"] for r in ok if len(r["embedding"]) != dims.most_common(1)[0][0]][:3]
        raise DatasetError(f"{source}: embeddings of mixed dimension {dict(dims)} (e.g. {odd}); "
                           f"were two encoders written to one file?")
    y = np.array([class_index(r["gender"]) for r in ok])
    if both_classes and len(set(y.tolist())) < len(CLASSES):
        raise DatasetError(f"{source}: only one class ({CLASSES[y[0]]}) among {len(ok)} clips")
    group_names = sorted({k for r in ok for k in r.get("groups", {})})
    return EmbeddingSet(
        x=np.asarray([r["embedding"] for r in ok], np.float32), y=y,
        ids=np.array([r["id"] for r in ok]), paths=np.array([r["path"] for r in ok]),
        speakers=np.array([r["speaker"] for r in ok]),
        speech_s=np.array([float(r.get("speech_s", 0.0)) for r in ok]),
        split=np.array([r.get("split") or "" for r in ok]),
        age=np.array([r["age"] if r.get("age") is not None else np.nan for r in ok], float),
        groups={g: np.array([str(r.get("groups", {}).get(g, "")) for r in ok]) for g in group_names})


def load_embedding_set(embeddings_dir: str | Path, encoder: str, both_classes: bool = True) -> EmbeddingSet:
    """Read an encoder's JSONL (strictly: a corrupt line is an error) into an :class:`EmbeddingSet`."""
    records = read_records(embeddings_dir, encoder, strict=True)
    return records_to_set(records, source=f"{embeddings_dir}/{encoder}", both_classes=both_classes)
