"""``python -m src.extract``: embed every clip of a data source with one encoder.

    python -m src.extract encoder=resemblyzer                 # the bundled sample
    python -m src.extract encoder=ecapa data=dev              # ../shared/data/dev
    python -m src.extract -m hydra/launcher=joblib num_shards=2 'shard=range(0,2)'
    python -m src.extract merge=true                          # fold shard files together

Writes ``<paths.embeddings_dir>/<encoder>-embeddings.jsonl``; rerun to resume.
"""

from __future__ import annotations

import copy
import json
import logging

import hydra
from omegaconf import DictConfig, open_dict

from src.building import (build_encoder, build_segmenter, embedding_options, load_clips, set_threads,
                          source_data_config)
from src.embeddings.extract import ExtractOptions, Summary, extract
from src.embeddings.store import (JsonlWriter, config_hash, embeddings_path, merge_shards, remove_outputs,
                                  stats_path)

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
        log.info("merged into %s", merge_shards(out_dir, name))
        return None
    if cfg.overwrite:
        remove_outputs(out_dir, name)
    clips = load_clips(cfg.data)
    if cfg.num_shards > 1:
        clips = clips[cfg.shard::cfg.num_shards]
    encoder = build_encoder(cfg.encoder)
    options = embedding_options(cfg)
    meta = {"encoder": name, "dim": encoder.dim, "weights": encoder.identity,
            "config_hash": config_hash(options), "options": options, "data": cfg.data.name}
    path = embeddings_path(out_dir, name, cfg.shard, cfg.num_shards)
    opts = ExtractOptions(chunk_clips=cfg.chunk_clips, encoder_batch_size=cfg.encoder.batch_size,
                          min_clip_s=cfg.min_clip_s, min_speech_s=cfg.min_speech_s,
                          max_duration_s=cfg.max_duration_s, progress=cfg.progress)
    with JsonlWriter(path, meta) as writer:
        summary = extract(clips, build_segmenter(cfg.vad), encoder, writer, opts)
    log.info("%s: %s", path, summary.text())
    if summary.done:
        stats_path(out_dir, name).write_text(json.dumps(summary.as_dict(), indent=2))
    return summary


@hydra.main(version_base="1.3", config_path="pkg://conf", config_name="extract")
def main(cfg: DictConfig) -> None:
    run_extract(cfg)


if __name__ == "__main__":
    main()
