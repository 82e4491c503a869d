"""Speaker-disjoint train/val/test splits, stratified by gender and seeded.

All clips of a speaker (so all pieces of one recording) land in one split. A
manifest ``split`` column wins when every clip has one.
"""

from __future__ import annotations

import logging

import numpy as np

from src.labels import CLASSES, SPLITS
from src.training.dataset import DatasetError, EmbeddingSet

log = logging.getLogger(__name__)

MIN_SPEAKERS_PER_CLASS = 3  # one per split at least


def speaker_disjoint_split(speakers: np.ndarray, y: np.ndarray, val_frac: float, test_frac: float,
                           seed: int) -> np.ndarray:
    """Assign each clip a split name so that no speaker is in two splits.

    Speakers of each class are shuffled with ``seed`` and cut by the fractions (each
    split gets at least one speaker of each class).

    Raises:
        DatasetError: fewer than :data:`MIN_SPEAKERS_PER_CLASS` speakers in a class.
    """
    rng = np.random.default_rng(seed)
    out = np.empty(len(speakers), dtype=object)
    for c, name in enumerate(CLASSES):
        spk = np.array(sorted(set(speakers[y == c].tolist())))
        if len(spk) < MIN_SPEAKERS_PER_CLASS:
            raise DatasetError(f"only {len(spk)} {name} speaker(s): a speaker-disjoint train/val/test "
                               f"split needs at least {MIN_SPEAKERS_PER_CLASS} per class")
        rng.shuffle(spk)
        n_test = max(1, round(test_frac * len(spk)))
        n_val = max(1, round(val_frac * len(spk)))
        n_train = len(spk) - n_test - n_val
        if n_train < 1:
            raise DatasetError(f"too few {name} speakers ({len(spk)}) for the split fractions")
        names = ["train"] * n_train + ["val"] * n_val + ["test"] * n_test
        mapping = dict(zip(spk.tolist(), names))
        for i in np.flatnonzero(y == c):
            out[i] = mapping[speakers[i]]
    return out.astype(str)


def assign_splits(data: EmbeddingSet, val_frac: float, test_frac: float, seed: int) -> np.ndarray:
    """The manifest's split column if complete, else a seeded speaker-disjoint split."""
    given = data.split
    if (given != "").all():
        log.info("using the manifest's split column")
        splits = given
    else:
        if (given != "").any():
            log.warning("split column given for only %d of %d clips: ignoring it", (given != "").sum(), len(given))
        splits = speaker_disjoint_split(data.speakers, data.y, val_frac, test_frac, seed)
    check_splits(data, splits)
    return splits


def check_splits(data: EmbeddingSet, splits: np.ndarray) -> None:
    """Every split has both classes; no speaker in two splits (warned for a given split column)."""
    for s in SPLITS:
        ys = set(data.y[splits == s].tolist())
        if len(ys) < len(CLASSES):
            raise DatasetError(f"split {s!r} lacks a class (has {[CLASSES[c] for c in ys]})")
    owners: dict[str, set[str]] = {}
    for spk, s in zip(data.speakers, splits):
        owners.setdefault(spk, set()).add(s)
    shared = [k for k, v in owners.items() if len(v) > 1]
    if shared:
        log.warning("%d speaker(s) appear in more than one split (e.g. %s)", len(shared), shared[:3])


def split_counts(data: EmbeddingSet, splits: np.ndarray) -> dict[str, dict[str, dict[str, int]]]:
    """Clips and speakers per split and class, for the log and metrics.json."""
    out: dict[str, dict[str, dict[str, int]]] = {}
    for s in SPLITS:
        out[s] = {}
        for c, name in enumerate(CLASSES):
            m = (splits == s) & (data.y == c)
            out[s][name] = {"clips": int(m.sum()), "speakers": len(set(data.speakers[m].tolist()))}
    return out


def make_splits(data: EmbeddingSet, val_frac: float, test_frac: float, seed: int
                ) -> tuple[np.ndarray, dict[str, dict[str, dict[str, int]]]]:
    """:func:`assign_splits`, plus the clip and speaker counts per split and class (also logged)."""
    splits = assign_splits(data, val_frac, test_frac, seed)
    counts = split_counts(data, splits)
    for s in SPLITS:
        log.info("%-5s %s", s, ", ".join(f"{c}: {v['clips']} clips / {v['speakers']} speakers"
                                        for c, v in counts[s].items()))
    return splits, counts
