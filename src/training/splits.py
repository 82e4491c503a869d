"""Speaker-disjoint train/val/test splits, stratified by gender and seeded.

All clips of a speaker (so all pieces of one recording) land in one split. A
manifest ``split`` column wins when every clip has one.
"""

from __future__ import annotations

import logging

import numpy as np

from src.embeddings.dataset import DatasetError, EmbeddingSet
from src.labels import CLASSES, SPLITS

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


def stratified_speaker_split(speakers: np.ndarray, strata: np.ndarray, y: np.ndarray, val_frac: float,
                             test_frac: float, seed: int) -> np.ndarray:
    """A speaker-disjoint split that keeps every stratum (e.g. corpus x gender x age group) in
    proportion, small ones included.

    Speakers are ordered by stratum, shuffled inside it with ``seed``, and dealt out
    systematically: a running share of ``test_frac`` (then of ``val_frac`` among the rest) sends a
    speaker to test (val) each time it passes 1, from a seeded random start. So each stratum
    gets its share give or take one speaker, and a stratum of one speaker lands in train, val or
    test with the fractions' odds. Then each class gets at least one speaker in every split (a
    train speaker of the class's largest stratum moves) when ``test_frac``/``val_frac`` ask for one.
    """
    rng = np.random.default_rng(seed)
    spk_stratum: dict[str, str] = {}
    spk_class: dict[str, int] = {}
    for spk, st, c in zip(speakers.tolist(), strata.tolist(), y.tolist()):
        spk_stratum.setdefault(spk, st)
        spk_class.setdefault(spk, c)
    names = sorted(spk_stratum)
    keys = rng.permutation(len(names))
    order = sorted(range(len(names)), key=lambda i: (spk_stratum[names[i]], keys[i]))
    acc_test, acc_val = rng.random(), rng.random()
    val_share = val_frac / (1.0 - test_frac) if test_frac < 1 else 0.0
    split_of: dict[str, str] = {}
    for i in order:
        acc_test += test_frac
        if acc_test >= 1.0:
            acc_test -= 1.0
            split_of[names[i]] = "test"
            continue
        acc_val += val_share
        if acc_val >= 1.0:
            acc_val -= 1.0
            split_of[names[i]] = "val"
        else:
            split_of[names[i]] = "train"
    for c, cname in enumerate(CLASSES):
        own = [n for n in names if spk_class[n] == c]
        for s, frac in (("test", test_frac), ("val", val_frac)):
            if frac > 0 and not any(split_of[n] == s for n in own):
                movable = [n for n in own if split_of[n] == "train"]
                if len(movable) < 2:
                    raise DatasetError(f"too few {cname} speakers ({len(own)}) for a speaker-disjoint split")
                sizes = {st: sum(spk_stratum[n] == st for n in movable) for st in {spk_stratum[n] for n in movable}}
                pick = [n for n in movable if spk_stratum[n] == max(sizes, key=lambda k: (sizes[k], k))]
                split_of[pick[int(rng.integers(len(pick)))]] = s
    return np.array([split_of[s] for s in speakers.tolist()])


def strata_of(data: EmbeddingSet, stratify_by: list[str] | tuple[str, ...]) -> np.ndarray:
    """Each clip's stratum: its gender and its values of the ``stratify_by`` group columns."""
    missing = [g for g in stratify_by if g not in data.groups]
    if missing:
        raise DatasetError(f"cannot stratify by {missing}: the data has group columns {sorted(data.groups)}")
    parts = [np.array(CLASSES)[data.y]] + [data.groups[g] for g in stratify_by]
    return np.array(["|".join(map(str, t)) for t in zip(*parts)])


def assign_splits(data: EmbeddingSet, val_frac: float, test_frac: float, seed: int,
                  stratify_by: list[str] | tuple[str, ...] = (), holdout: np.ndarray | None = None) -> np.ndarray:
    """The manifest's split column if complete, else a seeded speaker-disjoint split.

    Args:
        stratify_by: group columns whose cells (with gender) keep their proportions in every
            split (:func:`stratified_speaker_split`); empty: stratified by gender only.
        holdout: a mask of clips that are the test split as a whole (e.g. one corpus left out);
            the other clips are split into train and val only.
    """
    given = data.split
    if holdout is not None:
        splits = np.full(len(data), "test", dtype=object)
        rest = ~holdout
        splits[rest] = stratified_speaker_split(data.speakers[rest], strata_of(data.subset(rest), stratify_by),
                                                data.y[rest], val_frac, 0.0, seed)
        splits = splits.astype(str)
    elif (given != "").all():
        log.info("using the manifest's split column")
        splits = given
    else:
        if (given != "").any():
            log.warning("split column given for only %d of %d clips: ignoring it", (given != "").sum(), len(given))
        if stratify_by:
            splits = stratified_speaker_split(data.speakers, strata_of(data, stratify_by), data.y, val_frac,
                                              test_frac, seed)
        else:
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


def make_splits(data: EmbeddingSet, val_frac: float, test_frac: float, seed: int,
                stratify_by: list[str] | tuple[str, ...] = (), holdout: np.ndarray | None = None
                ) -> tuple[np.ndarray, dict[str, dict[str, dict[str, int]]]]:
    """:func:`assign_splits`, plus the clip and speaker counts per split and class (also logged)."""
    splits = assign_splits(data, val_frac, test_frac, seed, stratify_by, holdout)
    counts = split_counts(data, splits)
    for s in SPLITS:
        log.info("%-5s %s", s, ", ".join(f"{c}: {v['clips']} clips / {v['speakers']} speakers"
                                        for c, v in counts[s].items()))
    return splits, counts
