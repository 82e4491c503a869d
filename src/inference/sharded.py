"""Predict in shards: each shard appends its results to a part file, resumes where it stopped,
and marks itself done; a merge puts every result back in input order.

The machinery is extraction's (:mod:`src.embeddings.shards`): a part file written one line per
file (:class:`~src.embeddings.store.JsonlWriter`: a killed shard loses at most the file in flight,
its half line is cut on resume), a done marker naming the options and the files covered, and a
merge that refuses while a shard has not finished. The files are dealt out by size, so shards
get about equal audio (:func:`shard_owners`). Parts keep the whole result (timeline
included), so one set of parts can be merged into any output format, again and again.

    <shards_dir>/predictions.shard-<i>-of-<n>.jsonl        results, one line per input file
    <shards_dir>/predictions.shard-<i>-of-<n>.meta.json    the options' hash
    <shards_dir>/predictions.shard-<i>-of-<n>.done.json    written when the shard has finished
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from src.embeddings.shards import done_path, is_done, mark_done
from src.embeddings.store import JsonlWriter, iter_lines, repair_truncated_tail
from src.inference.pipeline import GenderResult, Segment

log = logging.getLogger(__name__)

PARTS_NAME = "predictions"
#: ``num_workers=auto`` in ``predict`` starts at most one worker per this many files: a worker's start and
#: model load (5-10 s) is what one process spends on 10-30 short files with the shipped model.
MIN_FILES_PER_WORKER = 32


class ShardsError(ValueError):
    """A merge that cannot be made (a shard not finished, shards made with other options)."""


def part_path(shards_dir: str | Path, shard: int, num_shards: int) -> Path:
    """A shard's part file."""
    return Path(shards_dir) / f"{PARTS_NAME}.shard-{shard}-of-{num_shards}.jsonl"


def default_shards_dir(output: Path | None, output_dir: Path | None) -> Path | None:
    """Where the parts go beside the outputs: ``<output_dir>/.predict-shards`` or ``.<output>.shards``
    beside the output file (hidden: not an output); None for standard output."""
    if output_dir is not None:
        return Path(output_dir) / ".predict-shards"
    if output is not None:
        return Path(output).parent / f".{Path(output).name}.shards"
    return None


def shard_owners(files: list[Path], num_shards: int) -> list[int]:
    """Which shard predicts each input: the files dealt out largest first (bytes on disk, the cost's
    proxy), each to the shard with the fewest bytes so far (ties: the lower shard; longest
    processing time first), so shards get about equal audio. Every-``num_shards``-th gave one of
    two workers 7 % more of ``dev``'s audio, and an archive with a few long files far worse. The
    same files with the same sizes give the same shards, which resuming and the merge rely on; a
    file that cannot be read counts 0 bytes (it is answered with an error, in no time)."""
    import heapq

    if num_shards <= 1:
        return [0] * len(files)

    def size(f: Path) -> int:
        try:
            return os.path.getsize(f)
        except OSError:
            return 0

    sizes = [size(f) for f in files]
    heap = [(0, k) for k in range(num_shards)]
    owners = [0] * len(files)
    for i in sorted(range(len(files)), key=lambda i: (-sizes[i], i)):
        load, k = heapq.heappop(heap)
        owners[i] = k
        heapq.heappush(heap, (load + sizes[i], k))
    return owners


def shard_files(files: list[Path], shard: int, num_shards: int, owners: list[int] | None = None) -> list[Path]:
    """The inputs of one shard (:func:`shard_owners`; pass ``owners`` when asking for several
    shards), in input order."""
    owners = shard_owners(files, num_shards) if owners is None else owners
    return [f for f, k in zip(files, owners) if k == shard]


def result_record(result: GenderResult) -> dict[str, Any]:
    """A result as a part-file line (``id``: its input path)."""
    return {"id": str(result.path), **result.to_dict()}


def result_from_record(rec: dict[str, Any]) -> GenderResult:
    """The :class:`GenderResult` a part-file line was made from (``to_dict`` of it is that line less ``id``)."""
    d = {k: v for k, v in rec.items() if k != "id"}
    d["timeline"] = [Segment(**s) for s in d.get("timeline") or []]
    return GenderResult(**d)


def predict_shard(predict: Any, files: list[Path], shards_dir: Path, shard: int, num_shards: int,
                  options_hash: str, meta: dict[str, Any]) -> int:
    """Predict this shard's files not yet in its part file, then mark it done; returns how many were
    predicted now. ``predict(files)`` yields one result per file (a bad file: an error result).

    Raises:
        EmbeddingsError: the part file was made with other options.
    """
    mine = shard_files(files, shard, num_shards)
    path = part_path(shards_dir, shard, num_shards)
    ids = [str(f) for f in mine]
    if is_done(path, options_hash, ids):
        log.info("%s: shard %d of %d is done (%d files); nothing to do", path, shard, num_shards, len(ids))
        return 0
    done_path(path).unlink(missing_ok=True)  # at work again
    n = 0
    with JsonlWriter(path, {**meta, "config_hash": options_hash, "shard": shard, "num_shards": num_shards}) as w:
        todo = [f for f in mine if str(f) not in w.done_ids]
        if len(todo) < len(mine):
            log.info("%s: %d of %d files already predicted; resuming", path, len(mine) - len(todo), len(mine))
        for r in predict(todo):
            w.write(result_record(r))
            n += 1
    mark_done(path, options_hash, ids, shard, num_shards)
    return n


def remove_parts(shards_dir: Path, num_shards: int) -> None:
    """Delete a sweep's part files, sidecars and done markers (and the folder, once empty)."""
    from src.embeddings.store import meta_path

    for i in range(num_shards):
        path = part_path(shards_dir, i, num_shards)
        for p in (path, meta_path(path), done_path(path)):
            p.unlink(missing_ok=True)
    try:
        Path(shards_dir).rmdir()
    except OSError:
        pass  # other files there: not ours


def check_done(shards_dir: Path, files: list[Path], num_shards: int, options_hash: str) -> None:
    """Refuse a merge before every shard of ``num_shards`` finished these files with these options.

    Raises:
        ShardsError: naming the shards not done, or made with other options / other inputs.
    """
    missing, other = [], []
    owners = shard_owners(files, num_shards)
    for i in range(num_shards):
        path = part_path(shards_dir, i, num_shards)
        if not done_path(path).exists():
            missing.append(i)
        elif not is_done(path, options_hash, [str(f) for f in shard_files(files, i, num_shards, owners)]):
            other.append(i)
    if missing:
        raise ShardsError(f"shard(s) {missing} of {num_shards} in {shards_dir} have not finished (no done "
                          "marker: still running, failed or never started); run them to the end (a rerun resumes)")
    if other:
        raise ShardsError(f"shard(s) {other} of {num_shards} in {shards_dir} were made with other options or other "
                          "inputs than this command's; rerun them with these options, or give these shards' options")


def merged_results(shards_dir: Path, files: list[Path], num_shards: int, options_hash: str) -> Iterator[GenderResult]:
    """Every input's result, in input order, from finished shards (checked first: see :func:`check_done`)."""
    check_done(shards_dir, files, num_shards, options_hash)
    by_id: dict[str, dict[str, Any]] = {}
    for i in range(num_shards):
        path = part_path(shards_dir, i, num_shards)
        repair_truncated_tail(path)
        for rec in iter_lines(path, strict=True):
            by_id[rec["id"]] = rec
    lost = [str(f) for f in files if str(f) not in by_id]
    if lost:
        raise ShardsError(f"{len(lost)} input(s) have no result in {shards_dir} though their shards are marked done "
                          f"(first: {lost[0]}); delete that shard's .done.json and rerun it")
    for f in files:
        yield result_from_record(by_id[str(f)])

