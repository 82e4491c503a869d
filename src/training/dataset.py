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


@dataclass(frozen=True)
class Source:
    """One data source of a training set: where its embeddings are and what its rows may lack.

    Attributes:
        name: the ``data=`` key (``dev``, ``speechocean762``, ...); prefixes its speaker ids in a mix.
        embeddings_dir: the folder of its ``<encoder>-embeddings.jsonl``.
        corpus: the corpus of rows without a ``corpus`` group value.
        age_group: the age group of rows with neither an age nor an ``age_group`` value.
        augments: the source this one holds degraded copies of (``python -m src.augment``): its rows
            take that source's speaker ids (so they follow their speakers' split) and are marked
            ``augmented``, to be trained on only.
    """

    name: str
    embeddings_dir: str
    corpus: str | None = None
    age_group: str | None = None
    augments: str | None = None


def with_corpus_and_age(data: EmbeddingSet, corpus: str | None, age_group: str | None) -> EmbeddingSet:
    """Give every row a ``corpus`` and an ``age_group`` group value (``""`` where nothing says;
    a column nothing fills is not added).

    The age group is the row's own ``age_group`` value, else the one its age falls in
    (:func:`src.labels.age_group_of`), else ``age_group``.
    """
    from src.labels import age_group_of

    n = len(data)
    given = data.groups.get("corpus", np.full(n, "", dtype=object))
    groups = dict(data.groups)
    groups["corpus"] = np.array([g or corpus or "" for g in given])
    own = data.groups.get("age_group", np.full(n, "", dtype=object))
    groups["age_group"] = np.array([g or age_group_of(a) or age_group or "" for g, a in zip(own, data.age)])
    groups = {k: v for k, v in groups.items() if k in data.groups or (v != "").any()}  # nothing said: no column
    return EmbeddingSet(x=data.x, y=data.y, ids=data.ids, paths=data.paths, speakers=data.speakers,
                        speech_s=data.speech_s, split=data.split, age=data.age, groups=groups)


def concat_sets(named: list[tuple[str, EmbeddingSet]]) -> EmbeddingSet:
    """One set from several sources: speaker ids and clip ids become ``<source>/<id>`` so two
    sources' speakers never merge, the manifests' own splits are dropped (a mix is split anew),
    and only the group columns every source has are kept.

    Raises:
        DatasetError: the sources' embeddings differ in dimension.
    """
    dims = {name: s.dim for name, s in named}
    if len(set(dims.values())) > 1:
        raise DatasetError(f"sources have embeddings of different dimension {dims}: one encoder for all")
    common = set.intersection(*(set(s.groups) for _, s in named))
    cat = lambda f: np.concatenate([f(name, s) for name, s in named])  # noqa: E731
    return EmbeddingSet(
        x=cat(lambda _, s: s.x), y=cat(lambda _, s: s.y),
        ids=cat(lambda n, s: np.char.add(f"{n}/", s.ids.astype(str))), paths=cat(lambda _, s: s.paths),
        speakers=cat(lambda n, s: np.char.add(f"{n}/", s.speakers.astype(str))),
        speech_s=cat(lambda _, s: s.speech_s), split=np.full(sum(len(s) for _, s in named), ""),
        age=cat(lambda _, s: s.age), groups={g: cat(lambda _, s: s.groups[g].astype(str)) for g in sorted(common)})


AUGMENTED = "augmented"  # the group column that marks degraded training copies ("yes")


def load_sources(sources: list[Source], encoder: str, both_classes: bool = True) -> EmbeddingSet:
    """One source's embeddings as they are (with ``corpus`` and ``age_group`` filled in), or
    several concatenated by :func:`concat_sets`."""
    sets = [(s.augments or s.name, with_corpus_and_age(load_embedding_set(s.embeddings_dir, encoder,
                                                                          both_classes=False), s.corpus, s.age_group))
            for s in sources]
    if any(s.augments for s in sources):
        for s, (_, d) in zip(sources, sets):
            d.groups[AUGMENTED] = np.full(len(d), "yes" if s.augments else "")
    data = sets[0][1] if len(sets) == 1 else concat_sets(sets)
    if both_classes and len(set(data.y.tolist())) < len(CLASSES):
        raise DatasetError(f"{', '.join(s.embeddings_dir for s in sources)}/{encoder}: only one class "
                           f"({CLASSES[data.y[0]]}) among {len(data)} clips")
    return data


def read_exclusions(path: str | Path) -> set[str]:
    """Speaker or clip ids to leave out: a CSV with a ``speaker`` or ``id`` column (e.g. the
    reviewed ``post-analysis/audit-*-speakers.csv``), or a text file with one id per line."""
    import csv

    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"exclude_path: no such file {path}")
    if path.suffix.lower() == ".csv":
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.DictReader(f))
        column = next((c for c in ("speaker", "id") if rows and c in rows[0]), None)
        if column is None:
            raise DatasetError(f"{path}: needs a 'speaker' or 'id' column")
        return {r[column].strip() for r in rows if r[column].strip()}
    return {line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")}


def exclude(data: EmbeddingSet, names: set[str]) -> EmbeddingSet:
    """The set without the clips whose speaker or id is in ``names`` (as written, or without a
    mix's ``<source>/`` prefix); logs how many went."""
    def hit(values: np.ndarray) -> np.ndarray:
        return np.array([v in names or v.split("/", 1)[-1] in names for v in values.astype(str)], bool)

    drop = hit(data.speakers) | hit(data.ids)
    log.info("excluded %d clips of %d speakers (%d names listed)", int(drop.sum()),
             len(set(data.speakers[drop].tolist())), len(names))
    return data.subset(~drop)
