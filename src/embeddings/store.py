"""The JSONL embedding store: append, resume, repair, shard, merge, read.

One file per encoder, ``<dir>/<encoder>-embeddings.jsonl``, one record per clip, and
a sidecar ``<encoder>-embeddings.meta.json`` naming the encoder, its weights and a
hash of the options that shape the embeddings. Sharded runs write
``<encoder>-embeddings.shard-<i>-of-<n>.jsonl`` (each with its own sidecar);
:func:`read_records` joins the main file and any shards, :func:`src.embeddings.shards.merge_shards`
folds shards into the main file.

Done markers of finished shards and the merge that is safe on a cluster live in
:mod:`src.embeddings.shards`.

Crash safety: each record is written as one line and flushed, so a killed process
loses at most the line it was writing; :meth:`JsonlWriter.open` cuts such a
truncated last line off before appending, and ids already present are skipped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from src.data.files import write_json_atomic

log = logging.getLogger(__name__)

STATUS_OK = "ok"
STATUS_NO_SPEECH = "no_speech"
STATUS_ERROR = "error"


class EmbeddingsError(ValueError):
    """An embedding file that cannot be used; the message names the file and line."""


def config_hash(options: dict[str, Any]) -> str:
    """Short stable hash of the options that shape the embeddings."""
    blob = json.dumps(options, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def embeddings_path(embeddings_dir: str | Path, encoder: str, shard: int = 0, num_shards: int = 1) -> Path:
    """Where an encoder's records go: the main file, or a shard's part file."""
    stem = f"{encoder}-embeddings"
    if num_shards > 1:
        stem += f".shard-{shard}-of-{num_shards}"
    return Path(embeddings_dir) / f"{stem}.jsonl"


def meta_path(jsonl_path: Path) -> Path:
    """The sidecar of a JSONL file."""
    return jsonl_path.with_suffix(".meta.json")


def repair_truncated_tail(path: Path) -> int:
    """Cut an unfinished last line (no newline, from a killed writer); returns bytes cut."""
    if not path.exists() or path.stat().st_size == 0:
        return 0
    with open(path, "rb+") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(max(0, size - 1))
        if f.read(1) == b"\n":
            return 0
        # walk back to the last newline
        pos = size
        while pos > 0:
            step = min(65536, pos)
            f.seek(pos - step)
            chunk = f.read(step)
            nl = chunk.rfind(b"\n")
            if nl >= 0:
                pos = pos - step + nl + 1
                break
            pos -= step
        f.truncate(pos)
    log.warning("%s: removed an unfinished last line (%d bytes) left by an interrupted run", path, size - pos)
    return size - pos


def iter_lines(path: Path, strict: bool = True) -> Iterator[dict[str, Any]]:
    """Records of one JSONL file; a bad line raises (``strict``) or is skipped with a warning."""
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                if not isinstance(rec, dict) or "id" not in rec:
                    raise ValueError("not a record with an 'id'")
            except ValueError as e:
                msg = f"{path}:{line_no}: corrupt record ({e})"
                if strict:
                    raise EmbeddingsError(msg + "; delete that line, then rerun extraction to redo its clip") from None
                log.warning(msg)
                continue
            yield rec


class JsonlWriter:
    """Appends records to one JSONL file, resuming where an earlier run stopped."""

    def __init__(self, path: Path, meta: dict[str, Any]):
        self.path = Path(path)
        self.meta = meta
        self.done_ids: set[str] = set()
        self._f = None

    def open(self) -> JsonlWriter:
        """Check the sidecar, repair the tail, load the ids already written."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        side = meta_path(self.path)
        if side.exists():
            old = json.loads(side.read_text())
            if old.get("config_hash") != self.meta["config_hash"]:
                raise EmbeddingsError(
                    f"{self.path} was made with other options (config hash {old.get('config_hash')} vs "
                    f"{self.meta['config_hash']}); set overwrite=true or another paths.embeddings_dir")
        else:
            write_json_atomic(side, self.meta)
        repair_truncated_tail(self.path)
        if self.path.exists():
            self.done_ids = {r["id"] for r in iter_lines(self.path, strict=False)}
        self._f = open(self.path, "a", encoding="utf-8")
        return self

    def write(self, record: dict[str, Any]) -> None:
        """Append one record as one line and flush it to the OS."""
        assert self._f is not None, "call open() first"
        self._f.write(json.dumps(record, separators=(",", ":")) + "\n")
        self._f.flush()
        self.done_ids.add(record["id"])

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None

    def __enter__(self) -> JsonlWriter:
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()


def remove_outputs(embeddings_dir: str | Path, encoder: str) -> None:
    """Delete an encoder's main file, shards and sidecars (for ``overwrite=true``)."""
    for pattern in (f"{encoder}-embeddings*.json*", f"{encoder}-embeddings*.columns.npz"):
        for p in Path(embeddings_dir).glob(pattern):
            p.unlink()


def shard_paths(embeddings_dir: str | Path, encoder: str) -> list[Path]:
    """Part files of a sharded run, sorted."""
    return sorted(Path(embeddings_dir).glob(f"{encoder}-embeddings.shard-*-of-*.jsonl"))


def source_files(embeddings_dir: str | Path, encoder: str) -> list[Path]:
    """The JSONL files of an encoder that readers join: the main file, then the shards.

    Raises:
        EmbeddingsError: none, or files made with different options (config hashes of their sidecars).
    """
    main = embeddings_path(embeddings_dir, encoder)
    files = ([main] if main.exists() else []) + shard_paths(embeddings_dir, encoder)
    if not files:
        raise EmbeddingsError(f"no embeddings for encoder {encoder!r} in {embeddings_dir}; "
                              f"run `python -m src.extract encoder={encoder}` first")
    hashes = {p.name: json.loads(meta_path(p).read_text()).get("config_hash") for p in files if meta_path(p).exists()}
    if len(set(hashes.values())) > 1:
        raise EmbeddingsError(f"{encoder} embeddings in {embeddings_dir} were made with different options "
                              f"(config hashes {hashes}); re-extract the odd ones with overwrite=true")
    return files


def files_key(files: list[Path]) -> list[list[Any]]:
    """What identifies the content of ``files`` for a cache: name, size, mtime (ns) and config hash of each."""
    key = []
    for p in files:
        st = p.stat()
        side = meta_path(p)
        digest = json.loads(side.read_text()).get("config_hash") if side.exists() else None
        key.append([p.name, st.st_size, st.st_mtime_ns, digest])
    return key


def iter_records(embeddings_dir: str | Path, encoder: str, strict: bool = True) -> Iterator[dict[str, Any]]:
    """The records of :func:`read_records`, one at a time (only the ids seen are kept in memory)."""
    seen: set[str] = set()
    for path in source_files(embeddings_dir, encoder):
        for rec in iter_lines(path, strict=strict):
            if rec["id"] not in seen:
                seen.add(rec["id"])
                yield rec


def read_records(embeddings_dir: str | Path, encoder: str, strict: bool = True) -> list[dict[str, Any]]:
    """All records of an encoder, main file and shards joined, first occurrence of an id kept.

    Raises:
        EmbeddingsError: no file at all, files made with different options (config hashes of
            their sidecars), or (``strict``) a corrupt line.
    """
    files = source_files(embeddings_dir, encoder)  # raises here, not at the first record
    del files
    return list(iter_records(embeddings_dir, encoder, strict=strict))


def columns_path(embeddings_dir: str | Path, encoder: str) -> Path:
    """The cached columnar form of an encoder's records (``np.savez``; rebuilt when the JSONL changes)."""
    return Path(embeddings_dir) / f"{encoder}-embeddings.columns.npz"


def read_meta(embeddings_dir: str | Path, encoder: str) -> dict[str, Any]:
    """The sidecar of the main file, or of the first shard."""
    for p in [embeddings_path(embeddings_dir, encoder), *shard_paths(embeddings_dir, encoder)]:
        if meta_path(p).exists():
            return json.loads(meta_path(p).read_text())
    return {}


def stats_path(embeddings_dir: str | Path, encoder: str, shard: int = 0, num_shards: int = 1) -> Path:
    """Where an extraction's summary (audio seconds, wall seconds, counts) is kept; one per shard."""
    return stats_path_of(embeddings_path(embeddings_dir, encoder, shard, num_shards))


def stats_path_of(jsonl_path: Path) -> Path:
    """The stats file of a JSONL file (main or shard)."""
    return Path(jsonl_path).with_suffix(".extract.json")


def written_ids(path: Path, config_hash_: str) -> set[str]:
    """Ids with a record in ``path`` (a missing file: none); the file's sidecar must name ``config_hash_``.

    Raises:
        EmbeddingsError: the file was made with other options.
    """
    if not path.exists():
        return set()
    side = meta_path(path)
    if side.exists():
        old = json.loads(side.read_text()).get("config_hash")
        if old != config_hash_:
            raise EmbeddingsError(f"{path} was made with other options (config hash {old} vs {config_hash_}); "
                                  f"set overwrite=true or another paths.embeddings_dir")
    return {r["id"] for r in iter_lines(path, strict=False)}


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
