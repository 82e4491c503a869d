"""Feature-only sources: precomputed vectors (no audio) turned into the embeddings store.

``commonvoice_mel128`` (``../shared/data/commonvoice-mel128``): ``features.npy`` (N, 128)
mean mel power spectra and ``labels.csv`` (``row,clip,subset,gender``) become
``<embeddings_dir>/mel128-embeddings.jsonl`` + ``.meta.json``, the same records
``src.extract`` writes, so training, evaluation and analysis need nothing special.

* There are no speaker ids: every clip is its own speaker, so a speaker-disjoint split
  is impossible (a warning says so; the random protocol's accuracy is optimistic).
* The ``split`` column carries the protocol: ``random`` is a seeded 81/9/10 clip split;
  ``published`` is the published example's own 81/9/10 split, row for row (its ``split_data``:
  scikit-learn's ``train_test_split`` with ``random_state=7``, test 10 %, then val 10 % of the
  rest; ``labels.csv`` is in the order of its ``balanced-all.csv``); ``official`` trains on
  ``cv-*-train``, validates on ``cv-*-dev`` and tests on ``cv-*-test``.
* Like data preparation in SpeechBrain recipes, it skips itself when the store is finished (its
  done marker) and was made with the same options (protocol, seed, rows); other options rewrite it,
  and a killed run resumes through the store's :class:`~src.embeddings.store.JsonlWriter`.
"""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import numpy as np

from src.embeddings.shards import is_done, mark_done
from src.embeddings.store import JsonlWriter, config_hash, embeddings_path, meta_path, remove_outputs
from src.encoders.mel128 import mel128_identity
from src.labels import normalise_gender

log = logging.getLogger(__name__)

MEL128_ENCODER = "mel128"
PROTOCOLS = ("random", "published", "official")
PUBLISHED_RANDOM_STATE = 7  # x4nth055/gender-recognition-by-voice, utils.split_data
RANDOM_FRACS = {"test": 0.10, "val": 0.09}  # of all clips: 81/9/10, as published


def random_protocol(n: int, seed: int) -> np.ndarray:
    """A seeded permutation cut into test (10 %), val (9 %) and train (81 %)."""
    order = np.random.default_rng(seed).permutation(n)
    n_test, n_val = round(RANDOM_FRACS["test"] * n), round(RANDOM_FRACS["val"] * n)
    out = np.full(n, "train", dtype=object)
    out[order[:n_test]] = "test"
    out[order[n_test:n_test + n_val]] = "val"
    return out.astype(str)


def published_protocol(n: int) -> np.ndarray:
    """The published example's split of its ``n`` rows in file order: ``train_test_split(X, y,
    test_size=0.1, random_state=7)``, then ``train_test_split(X_train, y_train, test_size=0.1,
    random_state=7)`` for val (6,694 test, 6,025 val and 54,219 train rows of 66,938)."""
    from sklearn.model_selection import train_test_split

    rest, test = train_test_split(np.arange(n), test_size=0.1, random_state=PUBLISHED_RANDOM_STATE)
    train, val = train_test_split(rest, test_size=0.1, random_state=PUBLISHED_RANDOM_STATE)
    out = np.full(n, "train", dtype=object)
    out[test], out[val] = "test", "val"
    return out.astype(str)


def official_protocol(subsets: np.ndarray) -> np.ndarray:
    """``cv-*-train`` -> train, ``cv-*-dev`` -> val, ``cv-*-test`` -> test."""
    mapping = {"train": "train", "dev": "val", "test": "test"}
    out = []
    for s in subsets:
        tail = str(s).rsplit("-", 1)[-1]
        if tail not in mapping:
            raise ValueError(f"subset {s!r} is not cv-*-train, cv-*-dev or cv-*-test")
        out.append(mapping[tail])
    return np.array(out)


def feature_record(row: dict[str, str], split: str, features: np.ndarray) -> dict:
    """The store's record of one ``labels.csv`` row and its feature vector (an error record when the
    gender is not a known label or the vector is not finite)."""
    gender = normalise_gender(row["gender"])
    vec = np.asarray(features, np.float64)
    ok = gender is not None and bool(np.isfinite(vec).all())
    rec = {"id": row["clip"], "path": row["clip"], "speaker": row["clip"], "gender": gender or row["gender"],
           "encoder": MEL128_ENCODER, "dim": 128, "split": str(split), "groups": {"subset": row["subset"]},
           "duration_s": 0.0, "speech_s": 0.0, "status": "ok" if ok else "error",
           "embedding": [float(f"{v:.6g}") for v in vec] if ok else None}
    if not ok:
        rec["reason"] = "bad_label" if gender is None else "non_finite_features"
    return rec


def prepare_commonvoice_mel128(features_dir: str | Path, embeddings_dir: str | Path, protocol: str = "random",
                               split_seed: int = 0, max_rows: int | None = None) -> Path:
    """Write (or keep) the mel128 store of ``features_dir``; returns the JSONL path.

    Args:
        protocol: ``random``, ``published`` or ``official`` (see the module docstring).
        split_seed: the random protocol's seed.
        max_rows: use only this many rows, a seeded random subset (quick runs, tests).
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"data.protocol={protocol!r}: use one of {PROTOCOLS}")
    features_dir = Path(features_dir)
    options = {"source": "commonvoice_mel128", "format": 3, "features_dir": str(features_dir.resolve()),
               "protocol": protocol, "split_seed": int(split_seed) if protocol == "random" else None,
               "max_rows": max_rows}
    path = embeddings_path(embeddings_dir, MEL128_ENCODER)
    side = meta_path(path)
    # the recipe of src.encoders.mel128 (its identity), so runs trained here serve audio through GenderPipeline
    meta = {"encoder": MEL128_ENCODER, "dim": 128, "weights": mel128_identity(),
            "config_hash": config_hash(options), "options": options, "data": "commonvoice_mel128"}
    x = np.load(features_dir / "features.npy", mmap_mode="r")
    with open(features_dir / "labels.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    if max_rows and max_rows < len(rows):  # labels.csv is sorted by gender: a seeded random subset, in file order
        keep = np.sort(np.random.default_rng(split_seed).permutation(len(rows))[:int(max_rows)])
        rows = [rows[i] for i in keep]
    subsets = np.array([r["subset"] for r in rows])
    splits = (random_protocol(len(rows), split_seed) if protocol == "random" else
              published_protocol(len(rows)) if protocol == "published" else official_protocol(subsets))
    ids = [r["clip"] for r in rows]
    if path.exists() and is_done(path, meta["config_hash"], ids):
        log.info("%s is up to date (protocol %s)", path, protocol)
        return path
    log.warning("commonvoice_mel128 has no speaker ids: every clip is its own speaker, so the splits cannot "
                "be speaker-disjoint and one speaker's clips may sit on both sides (accuracy is optimistic)")
    if side.exists() and json.loads(side.read_text()).get("config_hash") != meta["config_hash"]:
        remove_outputs(embeddings_dir, MEL128_ENCODER)  # other options: rewrite
    # through the store's writer: a killed run resumes from its last whole line; the done marker comes last
    with JsonlWriter(path, meta) as writer:
        for r, split in zip(rows, splits):
            if r["clip"] not in writer.done_ids:
                writer.write(feature_record(r, split, x[int(r["row"])]))
    mark_done(path, meta["config_hash"], ids, 0, 1)
    counts = {s: int((splits == s).sum()) for s in ("train", "val", "test")}
    log.info("wrote %s: %d clips, protocol %s, %s", path, len(rows), protocol, counts)
    return path
