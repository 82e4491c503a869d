"""The ``core`` sections of ``bench/extract.py`` run together: (a) VAD (``bench/extract_vad.py``),
(b) pipeline overhead (``bench/extract_pipeline.py``) and (c) memory (``bench/extract_memory.py``).

They share the models, one warm-up, the decoded clips and a temp folder, and print one report
that closes with one table; ``run_core`` returns the figures that are the top level of ``--json``.
"""

from __future__ import annotations

import logging
import os
import platform
import tempfile
from dataclasses import asdict
from pathlib import Path

import torch
from silero_vad import get_speech_timestamps

from bench.extract_common import (
    check_threads,
    decode_clips,
    extract_options,
    loadavg,
    max_rss_mb,
    table,
    warm_page_cache,
)
from bench.extract_memory import bench_long_decode, memory_goals, print_memory
from bench.extract_pipeline import bench_pipeline, pipeline_goals, print_pipeline, run_e2e
from bench.extract_vad import bench_vad, print_vad, vad_goals
from src.building import build_encoder, build_segmenter, embedding_options
from src.data.audio import SAMPLE_RATE_HZ, load_audio
from src.embeddings.store import config_hash
from src.vad.silero import load_silero_model

log = logging.getLogger("bench.extract")


def load_models(cfg, threads: int):
    """The segmenter (``vad.backend``: the sequence ONNX model by default), a second Silero model,
    the TorchScript one, for the stock per-file loop, the encoder, and the JSONL header
    ``extract()`` writes; returns (segmenter, stock model, encoder, meta)."""
    segmenter = build_segmenter(cfg.vad)
    stock_model = load_silero_model("jit")
    if stock_model is segmenter.model:
        raise RuntimeError("the stock loop and the segmenter must use two models")
    encoder = build_encoder(cfg.encoder)
    check_threads(threads, "after loading models")
    options = embedding_options(cfg)
    meta = {"encoder": encoder.name, "dim": encoder.dim, "weights": encoder.identity,
            "config_hash": config_hash(options), "options": options, "data": "bench"}
    return segmenter, stock_model, encoder, meta


def warm_up(all_clips, segmenter, stock_model, encoder, opts) -> None:
    """One clip through both VAD contenders and the encoder; then the page cache."""
    warm = load_audio(all_clips[0].path, SAMPLE_RATE_HZ, opts.max_duration_s)
    warm_speech = segmenter.speech_only([warm])[0]
    get_speech_timestamps(torch.from_numpy(warm), stock_model, **asdict(segmenter.params))
    encoder.embed([warm_speech if len(warm_speech) else warm])
    warm_page_cache(all_clips)


def measure(args, all_clips, segmenter, stock_model, encoder, opts, meta: dict) -> dict:
    """(a), (b) and (c) in a temp folder; returns their figures with the decoded clips' count and length."""
    with tempfile.TemporaryDirectory(prefix="bench-extract-", dir=args.tmp_dir) as tmp:
        tmp_dir = Path(tmp)

        def e2e(run: int):
            return run_e2e(all_clips, segmenter, encoder, opts, meta,
                           tmp_dir / f"e2e-{run}" / f"{encoder.name}-embeddings.jsonl", args.threads)

        # First, before this script holds any decoded audio: one end-to-end run, so that the
        # peak RSS after it is that of the models plus the pipeline, as in `python -m src.extract`.
        log.info("(b) pipeline: extract() end to end, first run")
        first_e2e = e2e(0)
        rss_after_extract_mb = max_rss_mb()

        log.info("decoding %d clips", len(all_clips))
        clips, waves, decode_s = decode_clips(all_clips, opts, SAMPLE_RATE_HZ)
        if not clips:
            raise SystemExit("no clip could be decoded")
        audio_s = sum(len(w) for w in waves) / SAMPLE_RATE_HZ
        log.info("decoded %d clips, %.1f min of audio, in %.1f s", len(clips), audio_s / 60, decode_s)

        log.info("(a) VAD: stock per-file loop vs batched")
        vad = bench_vad(waves, segmenter, stock_model, opts.chunk_clips, args.threads, args.repeats, audio_s)
        log.info("(b) pipeline: bare encoder (and further end-to-end runs)")
        pipe = bench_pipeline(clips, waves, segmenter, encoder, opts, meta, tmp_dir, args.threads,
                              args.repeats, audio_s, decode_s, first_e2e, e2e)
        long = None
        if args.long_file_min > 0:
            log.info("(c) memory: decoding a %g min 48 kHz stereo WAV", args.long_file_min)
            long = bench_long_decode(waves, args.long_file_min, tmp_dir, opts.max_duration_s)
    return {"clips": len(clips), "audio_s": audio_s, "decode_s": decode_s, "vad": vad, "pipeline": pipe,
            "long_file": long, "rss_after_extract_mb": rss_after_extract_mb}


def run_core(args, cfg, manifest: Path, all_clips, command: str, load_start) -> dict:
    """(a), (b), (c) on ``all_clips``: prints their report; returns every figure, goals included."""
    opts = extract_options(cfg)
    segmenter, stock_model, encoder, meta = load_models(cfg, args.threads)
    warm_up(all_clips, segmenter, stock_model, encoder, opts)
    rss_after_load_mb = max_rss_mb()
    m = measure(args, all_clips, segmenter, stock_model, encoder, opts, meta)
    rss_end_mb = max_rss_mb()

    vad, pipe, long, audio_s = m["vad"], m["pipeline"], m["long_file"], m["audio_s"]
    results = {
        "command": command,
        "env": {"python": platform.python_version(), "torch": torch.__version__, "threads": args.threads,
                "cpu_count": os.cpu_count(), "machine": platform.machine(), "platform": platform.platform(),
                "loadavg_start": load_start, "loadavg_end": loadavg()},
        "config": {"manifest": str(manifest), "clips": m["clips"], "audio_s": audio_s, "repeats": args.repeats,
                   "extract_options": asdict(opts), "vad": asdict(segmenter.params),
                   "vad_batch_size": segmenter.batch_size, "overrides": args.overrides},
        "decode": {"s": m["decode_s"], "audio_s_per_s": audio_s / m["decode_s"]},
        "vad": vad, "pipeline": pipe,
        "memory": {"peak_rss_after_models_mb": rss_after_load_mb,
                   "peak_rss_after_extract_mb": m["rss_after_extract_mb"],
                   "peak_rss_end_mb": rss_end_mb, "long_file": long},
    }
    goals = {**vad_goals(vad), **pipeline_goals(pipe), **memory_goals(long)}
    results["goals"] = {k: {"measured": v, "goal": g, "pass": ok} for k, (v, g, ok) in goals.items()}
    print_report(results, goals)
    return results


def print_report(r: dict, goals: dict) -> None:
    """The run's header, the details of each measurement, then the markdown table."""
    env, cfg = r["env"], r["config"]
    print(f"\n{r['command']}\n{cfg['clips']} clips, {cfg['audio_s'] / 60:.1f} min of real speech audio; "
          f"torch {env['torch']}, {env['threads']} threads, {env['cpu_count']} CPUs; "
          f"load average {env['loadavg_start']} -> {env['loadavg_end']}; fastest of {cfg['repeats']} run(s)")
    rows = print_vad(r["vad"], goals)
    rows += print_pipeline(r["pipeline"], r["vad"], goals)
    rows += print_memory(r["memory"], goals)
    print("\n" + table(rows))
