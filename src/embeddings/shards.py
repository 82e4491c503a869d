"""Shards on a cluster: done markers, and a merge that is safe while shards still run.

A shard that finishes writes a done marker (``<encoder>-embeddings.shard-<i>-of-<n>.done.json``:
config hash, clips covered, a hash of their ids) and its own stats
(``<...>.shard-<i>-of-<n>.extract.json``). :func:`merge_shards` refuses unless every shard of
one ``num_shards`` is done (``force`` merges what is there and keeps the unfinished shards'
files), and never deletes the file of a shard that has not finished, so a shard still writing
loses nothing. The done markers stay after a merge, so a rerun of a finished shard exits at once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from src.data.files import write_json_atomic
from src.embeddings.store import (
    EmbeddingsError,
    JsonlWriter,
    columns_path,
    embeddings_path,
    iter_lines,
    meta_path,
    repair_truncated_tail,
    stats_path,
    stats_path_of,
)

log = logging.getLogger(__name__)


def done_path(jsonl_path: Path) -> Path:
    """A shard's done marker (written when every clip of the shard has its record)."""
    return Path(jsonl_path).with_suffix(".done.json")


def ids_digest(ids: list[str]) -> str:
    """Short hash of a set of clip ids (order does not matter)."""
    return hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest()[:16]


def mark_done(jsonl_path: Path, config_hash_: str, ids: list[str], shard: int, num_shards: int) -> dict[str, Any]:
    """Write the done marker of a shard that covered ``ids``; returns it."""
    marker = {"config_hash": config_hash_, "shard": shard, "num_shards": num_shards, "clips": len(ids),
              "ids_sha256": ids_digest(ids)}
    write_json_atomic(done_path(jsonl_path), marker)
    return marker


def is_done(jsonl_path: Path, config_hash_: str, ids: list[str]) -> bool:
    """Whether ``jsonl_path``'s done marker says exactly these ids were finished with these options."""
    p = done_path(jsonl_path)
    if not p.exists():
        return False
    try:
        m = json.loads(p.read_text())
    except ValueError:
        return False
    return m.get("config_hash") == config_hash_ and m.get("ids_sha256") == ids_digest(ids)


def clear_done(jsonl_path: Path) -> None:
    """Remove a done marker (the shard is at work again)."""
    done_path(jsonl_path).unlink(missing_ok=True)


_SHARD_NAME = re.compile(r"\.shard-(\d+)-of-(\d+)\.(?:jsonl|done\.json)$")


def _shard_files(embeddings_dir: str | Path, encoder: str) -> dict[int, dict[int, dict[str, Path]]]:
    """num_shards -> shard -> {"part": path, "done": path} for what exists on disk."""
    out: dict[int, dict[int, dict[str, Path]]] = {}
    for p in Path(embeddings_dir).glob(f"{encoder}-embeddings.shard-*-of-*"):
        m = _SHARD_NAME.search(p.name)
        if m and p.name.startswith(f"{encoder}-embeddings.shard-"):
            kind = "part" if p.name.endswith(".jsonl") else "done"
            out.setdefault(int(m.group(2)), {}).setdefault(int(m.group(1)), {})[kind] = p
    return out


def merge_shards(embeddings_dir: str | Path, encoder: str, num_shards: int | None = None,
                 force: bool = False) -> Path:
    """Fold the shard files of one ``num_shards`` into the main file (ids deduplicated, ids
    already in the main file kept), then delete the part files of the finished shards.

    Args:
        num_shards: which sweep to merge; ``None``: the only one with part files on disk.
        force: merge even if some shards have no done marker (still running, requeued, failed,
            never started); their part files are read but kept, so a shard still writing loses
            nothing and a later merge picks up the rest.

    Raises:
        EmbeddingsError: part files of several ``num_shards`` (and none chosen), a shard not done
            (without ``force``), or shards made with different options.
    """
    main = embeddings_path(embeddings_dir, encoder)
    groups = _shard_files(embeddings_dir, encoder)
    with_parts = sorted(n for n, g in groups.items() if any("part" in f for f in g.values()))
    if num_shards is None or num_shards <= 1:
        if not with_parts:
            log.info("no shard files of %s in %s: nothing to merge", encoder, embeddings_dir)
            return main
        if len(with_parts) > 1:
            raise EmbeddingsError(f"{embeddings_dir} holds shard files of {encoder} from sweeps of "
                                  f"{with_parts} shards; say which to merge with num_shards=N")
        num_shards = with_parts[0]
    group = groups.get(num_shards, {})
    parts = [embeddings_path(embeddings_dir, encoder, i, num_shards) for i in range(num_shards)]
    finished = [i for i in range(num_shards) if "done" in group.get(i, {})]
    unfinished = [i for i in range(num_shards) if i not in finished]
    if unfinished and not force:
        raise EmbeddingsError(
            f"shard(s) {unfinished} of {num_shards} of {encoder} in {embeddings_dir} have not finished (no done "
            f"marker: still running, requeued, failed, or never started); run them to the end, or merge what is "
            f"there with merge_force=true (unfinished shards' files are kept)")
    present = [p for p in parts if p.exists()]
    hashes = {p.name: json.loads(meta_path(p).read_text()).get("config_hash") for p in present if meta_path(p).exists()}
    hashes.update({done_path(parts[i]).name: json.loads(done_path(parts[i]).read_text()).get("config_hash")
                   for i in finished})
    if len(set(hashes.values())) > 1:
        raise EmbeddingsError(f"shards of {encoder} were made with different options: {hashes}")
    if not present:
        log.info("every shard of %d is done and already merged into %s", num_shards, main)
        return main
    meta = json.loads(meta_path(present[0]).read_text())
    meta.pop("shard", None)
    with JsonlWriter(main, meta) as w:
        for i, s in enumerate(parts):
            if not s.exists():
                continue
            if i in finished:
                repair_truncated_tail(s)  # never cut a file another process may be writing
            for rec in iter_lines(s, strict=i in finished):
                if rec["id"] not in w.done_ids:
                    w.write(rec)
    _merge_stats(embeddings_dir, encoder, [parts[i] for i in finished])
    for i in finished:
        parts[i].unlink(missing_ok=True)
        meta_path(parts[i]).unlink(missing_ok=True)  # the done marker stays: a rerun of the shard exits at once
    if unfinished:
        log.warning("merged %d finished shard(s) into %s; kept the files of unfinished shard(s) %s",
                    len(finished), main, unfinished)
    else:
        log.info("merged %d shard(s) into %s", num_shards, main)
    return main


def _merge_stats(embeddings_dir: str | Path, encoder: str, parts: list[Path]) -> None:
    """Add the finished shards' stats into the main stats file (wall seconds summed: process-seconds)."""
    stats = [json.loads(stats_path_of(p).read_text()) for p in parts if stats_path_of(p).exists()]
    if not stats:
        return
    total: dict[str, Any] = {"done": 0, "skipped": 0, "statuses": {}, "reasons": {}, "audio_s": 0.0,
                             "speech_s": 0.0, "wall_s": 0.0, "shards": len(stats)}
    for s in stats:
        for k in ("done", "skipped", "audio_s", "speech_s", "wall_s"):
            total[k] += s.get(k, 0)
        for k in ("statuses", "reasons"):
            for name, n in s.get(k, {}).items():
                total[k][name] = total[k].get(name, 0) + n
    write_json_atomic(stats_path(embeddings_dir, encoder), total)
    for p in parts:
        stats_path_of(p).unlink(missing_ok=True)


def remove_shard_outputs(embeddings_dir: str | Path, encoder: str, shard: int, num_shards: int) -> None:
    """``overwrite=true`` in a sharded run: delete this shard's files and the main file, never
    another shard's (it may be running)."""
    mine = embeddings_path(embeddings_dir, encoder, shard, num_shards)
    for jsonl in (mine, embeddings_path(embeddings_dir, encoder)):
        for p in (jsonl, meta_path(jsonl), done_path(jsonl), stats_path_of(jsonl)):
            p.unlink(missing_ok=True)
    columns_path(embeddings_dir, encoder).unlink(missing_ok=True)


# --------------------------------------------------------------------------- one machine, several workers

#: ``num_workers=auto`` in ``extract`` starts at most one worker per this many clips: a worker costs a
#: process start and model loads (5-10 s on a busy 2-core machine), about what one process embeds of
#: 250 short clips; fewer clips finish sooner in one process.
MIN_CLIPS_PER_WORKER = 256


def available_cpus() -> int:
    """The CPUs this process may run on (``os.sched_getaffinity``: a SLURM task's or ``taskset``'s
    share, not the machine's count), or ``os.cpu_count()`` where affinity is not reported."""
    import os

    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def resolve_workers(num_workers: int | str | None, num_items: int, min_items_per_worker: int = MIN_CLIPS_PER_WORKER
                    ) -> int:
    """How many worker processes to start for ``num_items`` items.

    ``auto`` (or None): the available CPUs, at most one per ``min_items_per_worker`` items (a worker
    must repay its start); a number: that many, at most one per item. Always at least 1.

    Raises:
        ValueError: neither ``auto`` nor a positive whole number.
    """
    if num_workers is None or str(num_workers).lower() == "auto":
        n = min(available_cpus(), num_items // max(1, min_items_per_worker))
    else:
        try:
            n = int(num_workers)
        except (TypeError, ValueError):
            n = 0
        if n < 1 or str(n) != str(num_workers).strip():
            raise ValueError(f"num_workers={num_workers}: auto or a whole number >= 1")
    return max(1, min(n, num_items))


def plain_config(cfg: Any) -> Any:
    """A config as plain values for another process, every interpolation resolved here (Hydra's
    resolvers live in this process); a value whose interpolation cannot resolve (a path of a group
    the verb does not use, e.g. ``paths.embeddings_dir`` in ``predict``) is left out."""
    from omegaconf import DictConfig, ListConfig
    from omegaconf.errors import InterpolationResolutionError

    if isinstance(cfg, DictConfig):
        out = {}
        for k in cfg.keys():
            try:
                out[k] = plain_config(cfg[k])
            except InterpolationResolutionError:
                continue
        return out
    if isinstance(cfg, ListConfig):
        return [plain_config(v) for v in cfg]
    return cfg


def _die_with_parent(parent_pid: int) -> None:
    """Linux: SIGTERM this process when its parent dies (a killed ``num_workers`` run leaves no worker
    writing a part file that the rerun's workers will append to); elsewhere a no-op."""
    import ctypes
    import os
    import signal
    import sys

    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        except OSError:
            return
        if os.getppid() != parent_pid:  # the parent died before the line above
            os._exit(1)


def _worker_main(target: Callable[[Any], Any], cfg: dict[str, Any], parent_pid: int) -> None:
    """A worker process: the same code a cluster shard runs, on its own config (a plain dict)."""
    from omegaconf import OmegaConf

    _die_with_parent(parent_pid)

    logging.basicConfig(level=logging.INFO, format=f"[worker {cfg.get('shard')}] %(levelname)s %(message)s")
    target(OmegaConf.create(cfg))


def run_workers(target: Callable[[Any], Any], cfgs: list[dict[str, Any]]) -> None:
    """Run ``target(cfg)`` for each config in its own process (spawned: no fork of torch's threads)
    and wait for all; each is one shard (``shard=i num_shards=n``), so a killed run resumes as a
    killed sweep does. Ctrl-C or an error stops every worker.

    Raises:
        RuntimeError: a worker failed (its exit code; its own message is on stderr above).
    """
    import multiprocessing as mp
    import os

    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_worker_main, args=(target, c, os.getpid()), name=f"worker-{c.get('shard')}")
             for c in cfgs]
    try:
        for p in procs:
            p.start()
        for p in procs:
            p.join()
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
                p.join()
    failed = [(p.name, p.exitcode) for p in procs if p.exitcode != 0]
    if failed:
        which = ", ".join(f"{n}: exit {c}" for n, c in failed)
        raise RuntimeError(f"{len(failed)} of {len(procs)} worker(s) failed ({which}); rerun to resume")
