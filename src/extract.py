"""``python -m src.extract``: embed every clip of a data source with one encoder.

    python -m src.extract encoder=resemblyzer                 # the bundled sample
    python -m src.extract encoder=ecapa data=dev              # ../shared/data/dev
    python -m src.extract -m hydra/launcher=joblib num_shards=2 'shard=range(0,2)'
    python -m src.extract -m hydra/launcher=slurm num_shards=64 'shard=range(0,64)' data=dev
    python -m src.extract merge=true                          # fold finished shard files together
    python -m src.extract num_workers=2                       # 2 processes here (default auto: the CPUs we may use)

Writes ``<paths.embeddings_dir>/<encoder>-embeddings.jsonl``; rerun to resume.
"""

from __future__ import annotations

import copy
import json
import logging
import time

from omegaconf import DictConfig, open_dict

from src.building import (
    build_encoder,
    build_segmenter,
    embedding_options,
    load_clips,
    shard_encoder_config,
    source_data_config,
)
from src.cli import UsageError, verb
from src.data.files import write_json_atomic
from src.embeddings.extract import ExtractOptions, Summary, extract
from src.embeddings.shards import (
    clear_done,
    is_done,
    mark_done,
    merge_shards,
    plain_config,
    remove_shard_outputs,
    resolve_workers,
    run_workers,
)
from src.embeddings.store import JsonlWriter, config_hash, embeddings_path, remove_outputs, stats_path, written_ids
from src.runtime import set_threads
from src.settings import from_cfg

log = logging.getLogger(__name__)


def run_extract(cfg: DictConfig) -> Summary | None:
    """Extract (or, with ``merge=true``, merge shards); returns the run's summary. A ``data=mix``
    extracts each of its sources into the source's own folder (returns the last one's summary)."""
    if cfg.data.get("sources"):
        summary = None
        for source in cfg.data.sources:
            log.info("data=%s: source %s", cfg.data.name, source)
            sub, resolved = copy.deepcopy(cfg), source_data_config(source, cfg.paths)
            with open_dict(sub):
                sub.data, sub.paths = resolved.data, resolved.paths
            summary = run_extract(sub)
        return summary
    set_threads(cfg.num_threads)
    name, out_dir = cfg.encoder.name, cfg.paths.embeddings_dir
    if cfg.merge:
        merged = merge_shards(out_dir, name, num_shards=cfg.num_shards if cfg.num_shards > 1 else None,
                              force=cfg.merge_force)
        log.info("merged into %s", merged)
        return None
    if cfg.overwrite and cfg.num_shards > 1:
        remove_shard_outputs(out_dir, name, cfg.shard, cfg.num_shards)  # other shards may be running
    elif cfg.overwrite:
        remove_outputs(out_dir, name)
    clips = load_clips(cfg.data)
    if cfg.num_shards > 1:
        clips = clips[cfg.shard::cfg.num_shards]
    else:
        try:
            workers = resolve_workers(cfg.get("num_workers", 1), len(clips))
        except ValueError as e:
            raise UsageError(str(e)) from None
        if workers > 1:
            return _extract_in_workers(cfg, workers, len(clips))
    options = embedding_options(cfg)
    digest = config_hash(options)
    path = embeddings_path(out_dir, name, cfg.shard, cfg.num_shards)
    ids = [c.id for c in clips]
    if cfg.num_shards > 1:
        if is_done(path, digest, ids):  # finished before (a requeue, a rerun of the sweep): no model to load
            log.info("%s: shard %d of %d is done (%d clips); nothing to do", path, cfg.shard, cfg.num_shards, len(ids))
            return Summary(skipped=len(ids))
        clear_done(path)
        merged = written_ids(embeddings_path(out_dir, name), digest)  # a merge moved them to the main file
        todo = [c for c in clips if c.id not in merged]
        if not todo:
            log.info("%s: every clip of shard %d of %d is in the main file; nothing to do", path, cfg.shard,
                     cfg.num_shards)
            mark_done(path, digest, ids, cfg.shard, cfg.num_shards)
            return Summary(skipped=len(ids))
    else:
        todo = clips
    encoder = build_encoder(shard_encoder_config(cfg.encoder, cfg.device, cfg.shard))
    meta = {"encoder": name, "dim": encoder.dim, "weights": encoder.identity,
            "config_hash": digest, "options": options, "data": cfg.data.name}
    opts = from_cfg(ExtractOptions, cfg, encoder_batch_size=int(cfg.encoder.batch_size))
    with JsonlWriter(path, meta) as writer:
        summary = extract(todo, build_segmenter(cfg.vad), encoder, writer, opts)
    summary.skipped += len(clips) - len(todo)
    log.info("%s: %s", path, summary.text())
    if summary.done:
        write_json_atomic(stats_path(out_dir, name, cfg.shard, cfg.num_shards), summary.as_dict())
    if cfg.num_shards > 1:
        mark_done(path, digest, ids, cfg.shard, cfg.num_shards)
    return summary


def _extract_in_workers(cfg: DictConfig, workers: int, num_clips: int) -> Summary:
    """``num_workers`` on one machine: shard ``k`` of ``workers`` in each of as many processes (the code a
    cluster shard runs: part files, resume, done markers), then the merge into the main file."""
    name, out_dir = cfg.encoder.name, cfg.paths.embeddings_dir
    log.info("%d clips in %d worker processes (num_workers=%s)", num_clips, workers, cfg.num_workers)
    start = time.perf_counter()
    cfgs = []
    for k in range(workers):
        sub = plain_config(cfg)
        sub.update(shard=k, num_shards=workers, num_workers=1, merge=False, overwrite=False)
        cfgs.append(sub)
    run_workers(run_extract, cfgs)  # killed or failed: the part files stay, and the same command resumes
    summary = Summary()
    for k in range(workers):  # what the workers did now (a shard with nothing to do writes no stats)
        if (p := stats_path(out_dir, name, k, workers)).exists():
            s = json.loads(p.read_text())
            summary.done += s["done"]
            summary.statuses.update(s["statuses"])
            summary.reasons.update(s["reasons"])
            summary.audio_s += s["audio_s"]
            summary.speech_s += s["speech_s"]
    summary.skipped = num_clips - summary.done
    merge_shards(out_dir, name, num_shards=workers)
    for k in range(workers):  # unlike a cluster sweep's, these markers go: the main file alone says what is done
        clear_done(embeddings_path(out_dir, name, k, workers))
    summary.wall_s = time.perf_counter() - start  # the command's wall time (the stats file keeps process-seconds)
    log.info("%s (%d workers): %s", embeddings_path(out_dir, name), workers, summary.text())
    return summary


@verb("extract")
def main(cfg: DictConfig) -> None:
    run_extract(cfg)


if __name__ == "__main__":
    main()
