"""Embedding records -> arrays for training and evaluation, with the checks that keep
a bad file from becoming a misleading run."""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from src.data.files import atomic_write
from src.embeddings.store import STATUS_OK, Source, columns_path, files_key, iter_records, source_files
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


def records_to_set(records: Iterable[dict], source: str = "embeddings", both_classes: bool = True) -> EmbeddingSet:
    """Keep the ``ok`` records and stack them; checks dimension and classes. ``records`` may be
    a generator: each record is turned into a row and dropped (no list of every embedding).

    Args:
        both_classes: require clips of every class (training does; scoring a one-gender source does not).

    Raises:
        DatasetError: no usable record, embeddings of mixed dimension, or (``both_classes``) a single class.
    """
    x, y, ids, paths, speakers, speech_s, split, age = [], [], [], [], [], [], [], []
    groups: list[dict] = []
    skipped: Counter = Counter()
    dims: Counter = Counter()
    first_of_dim: dict[int, list[str]] = {}
    n = 0
    for r in records:
        n += 1
        if r.get("status") != STATUS_OK or r.get("embedding") is None:
            skipped[r.get("status", "?")] += 1
            continue
        v = np.asarray(r["embedding"], np.float32)
        dims[len(v)] += 1
        some = first_of_dim.setdefault(len(v), [])
        if len(some) < 3:
            some.append(r["id"])
        x.append(v)
        y.append(class_index(r["gender"]))
        ids.append(r["id"])
        paths.append(r["path"])
        speakers.append(r["speaker"])
        speech_s.append(float(r.get("speech_s", 0.0)))
        split.append(r.get("split") or "")
        age.append(r["age"] if r.get("age") is not None else np.nan)
        groups.append(r.get("groups") or {})
    if skipped:
        log.info("%s: left out %s", source, dict(skipped))
    if not x:
        raise DatasetError(f"{source}: no usable embedding among {n} records")
    if len(dims) > 1:
        common = dims.most_common(1)[0][0]
        odd = [i for d, some in first_of_dim.items() if d != common for i in some][:3]
        raise DatasetError(f"{source}: embeddings of mixed dimension {dict(dims)} (e.g. {odd}); "
                           f"were two encoders written to one file?")
    group_names = sorted({k for g in groups for k in g})
    data = EmbeddingSet(
        x=np.stack(x), y=np.array(y), ids=np.array(ids), paths=np.array(paths), speakers=np.array(speakers),
        speech_s=np.array(speech_s), split=np.array(split), age=np.array(age, float),
        groups={g: np.array([str(row.get(g, "")) for row in groups]) for g in group_names})
    if both_classes:
        check_both_classes(data, source)
    return data


def check_both_classes(data: EmbeddingSet, source: str) -> None:
    """Raise :class:`DatasetError` unless ``data`` holds clips of every class."""
    if len(set(data.y.tolist())) < len(CLASSES):
        raise DatasetError(f"{source}: only one class ({CLASSES[data.y[0]]}) among {len(data)} clips")


COLUMNS_FORMAT = 1  # bump when the cached columns change meaning


def load_embedding_set(embeddings_dir: str | Path, encoder: str, both_classes: bool = True,
                       cache: bool = True) -> EmbeddingSet:
    """Read an encoder's JSONL (strictly: a corrupt line is an error) into an :class:`EmbeddingSet`.

    The JSONL stays the interchange format; the set is also cached in columnar form
    (``<encoder>-embeddings.columns.npz`` beside it, keyed by the name, size, mtime and config
    hash of every JSONL file read), so the next load reads arrays instead of parsing a million
    lines. Any change to the files rebuilds it; a folder that cannot be written just goes uncached.
    """
    source = f"{embeddings_dir}/{encoder}"
    files = source_files(embeddings_dir, encoder)
    key = json.dumps({"format": COLUMNS_FORMAT, "classes": list(CLASSES), "files": files_key(files)})
    path = columns_path(embeddings_dir, encoder)
    data = _load_columns(path, key) if cache else None
    if data is None:
        data = records_to_set(iter_records(embeddings_dir, encoder, strict=True), source=source, both_classes=False)
        if cache:
            _save_columns(path, key, data)
    if both_classes:
        check_both_classes(data, source)
    return data


def _save_columns(path: Path, key: str, data: EmbeddingSet) -> None:
    arrays = {"key": np.array(key), "x": data.x, "y": data.y, "ids": data.ids, "paths": data.paths,
              "speakers": data.speakers, "speech_s": data.speech_s, "split": data.split, "age": data.age,
              **{f"group:{g}": v for g, v in data.groups.items()}}
    try:
        with atomic_write(path, "wb") as f:
            np.savez(f, **arrays)
    except OSError as e:
        log.warning("could not cache %s (%s); loading will parse the JSONL each time", path, e)


def _load_columns(path: Path, key: str) -> EmbeddingSet | None:
    """The cached set, or ``None`` when absent, unreadable or made from other files."""
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z["key"]) != key:
                return None
            cols = {k: z[k] for k in z.files}
    except (OSError, ValueError, KeyError, EOFError) as e:
        log.warning("%s: unreadable column cache (%s); rebuilding it", path, e)
        return None
    return EmbeddingSet(x=cols["x"], y=cols["y"], ids=cols["ids"], paths=cols["paths"], speakers=cols["speakers"],
                        speech_s=cols["speech_s"], split=cols["split"], age=cols["age"],
                        groups={k.split(":", 1)[1]: v for k, v in cols.items() if k.startswith("group:")})


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
        age=cat(lambda _, s: s.age), groups={g: cat(lambda _, s, g=g: s.groups[g].astype(str)) for g in sorted(common)})


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
