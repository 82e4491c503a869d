"""Sections (d) and (e) of ``bench/extract.py``: extraction workers side by side, and the speed
of every encoder (the hub encoders at full size with random weights).

Kept in their own module so the worker processes (``multiprocessing`` spawn) import only this
(hence the imports inside functions). ``run_scale`` runs the two as ``--sections`` picks them and
prints their table.
"""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import os
import tempfile
import time
from pathlib import Path

import numpy as np

log = logging.getLogger("bench.extract")

GOAL_WORKERS_RATIO = 1.8        # 2 workers / 1 worker throughput, at least


# --------------------------------------------------------------------------- (d) workers

def _worker(encoder: str, overrides: list[str], clips, cpu: int | None, tmp_dir: str, barrier, out) -> None:
    """One extraction process: load models, wait for the others, extract its clips, report times."""
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    import silero_vad  # noqa: F401  (sets torch threads to 1 on import: import first)

    from bench.extract_common import compose_config, extract_options
    from src.building import build_encoder, build_segmenter, embedding_options
    from src.embeddings.extract import extract
    from src.embeddings.store import JsonlWriter, config_hash
    from src.runtime import set_threads

    set_threads(1)
    cfg = compose_config(encoder, overrides)
    segmenter, enc = build_segmenter(cfg.vad), build_encoder(cfg.encoder)
    opts = extract_options(cfg)
    warm = np.random.default_rng(0).normal(0, 0.1, 32_000).astype(np.float32)
    enc.embed([warm])
    segmenter.speech_only([warm])
    options = embedding_options(cfg)
    meta = {"encoder": enc.name, "dim": enc.dim, "weights": enc.identity, "config_hash": config_hash(options),
            "options": options}
    path = Path(tmp_dir) / f"{enc.name}-embeddings.{os.getpid()}.jsonl"
    barrier.wait()
    start, cpu0 = time.time(), time.process_time()
    with JsonlWriter(path, meta) as writer:
        summary = extract(clips, segmenter, enc, writer, opts)
    out.put({"start": start, "end": time.time(), "audio_s": summary.audio_s, "done": summary.done,
             "cpu_s": time.process_time() - cpu0})


def run_workers(encoder: str, overrides: list[str], clips, n: int, pin: bool, tmp_dir: Path) -> dict:
    """``n`` processes, worker ``i`` extracting ``clips[i::n]`` (what ``num_shards=n shard=i`` does),
    started together after loading their models; throughput = all audio / (last end - first start)."""
    ctx = mp.get_context("spawn")
    barrier, out = ctx.Barrier(n), ctx.Queue()
    with tempfile.TemporaryDirectory(dir=tmp_dir) as tmp:
        procs = [ctx.Process(target=_worker, args=(encoder, overrides, clips[i::n], i % os.cpu_count() if pin else None,
                                                   tmp, barrier, out)) for i in range(n)]
        for p in procs:
            p.start()
        results = [out.get(timeout=3600) for _ in procs]
        for p in procs:
            p.join()
    span = max(r["end"] for r in results) - min(r["start"] for r in results)
    audio = sum(r["audio_s"] for r in results)
    return {"workers": n, "pinned": pin, "wall_s": span, "audio_s": audio, "audio_s_per_s": audio / span,
            "clips": sum(r["done"] for r in results), "cpu_s": sum(r["cpu_s"] for r in results)}


def bench_workers(encoder: str, overrides: list[str], clips, repeats: int, tmp_dir: Path) -> dict:
    """One pinned worker, two pinned workers (one core each), and one unpinned process (today's
    default: its two threads on any core); best of ``repeats``, alternating."""
    contenders = {"one_pinned": (1, True), "two_pinned": (2, True), "one_unpinned": (1, False)}
    best: dict[str, dict] = {}
    for run in range(repeats):
        for name, (n, pin) in contenders.items():
            r = run_workers(encoder, overrides, clips, n, pin, tmp_dir)
            log.info("(d) %s run %d: %.2f s, %.1f audio-s/s (cpu %.1f s)", name, run, r["wall_s"],
                     r["audio_s_per_s"], r["cpu_s"])
            if name not in best or r["audio_s_per_s"] > best[name]["audio_s_per_s"]:
                best[name] = r
    for run in range(repeats):  # the command as a user types it: process start, model loads, merge included
        for name, workers in (("command_one", "1"), ("command_auto", "auto")):
            r = run_command(encoder, overrides, clips, workers, tmp_dir)
            log.info("(d) %s run %d: %.2f s, %.1f audio-s/s", name, run, r["wall_s"], r["audio_s_per_s"])
            if name not in best or r["audio_s_per_s"] > best[name]["audio_s_per_s"]:
                best[name] = r
    best["ratio_command_auto_over_one"] = best["command_auto"]["audio_s_per_s"] / best["command_one"]["audio_s_per_s"]
    best["ratio_two_over_one"] = best["two_pinned"]["audio_s_per_s"] / best["one_pinned"]["audio_s_per_s"]
    best["ratio_two_over_default"] = best["two_pinned"]["audio_s_per_s"] / best["one_unpinned"]["audio_s_per_s"]
    # CPU seconds per audio second: what the ratio would be on two otherwise idle cores
    per_audio = {k: best[k]["cpu_s"] / best[k]["audio_s"] for k in contenders}
    best["ratio_two_over_one_idle_cores"] = 2 * per_audio["one_pinned"] / per_audio["two_pinned"]
    return best


def run_command(encoder: str, overrides: list[str], clips, num_workers: str, tmp_dir: Path) -> dict:
    """``python -m src.extract num_workers=<num_workers>`` on ``clips`` (a manifest written for them),
    timed from the command's start to its exit."""
    import subprocess
    import sys

    from src.data.manifest import write_manifest

    with tempfile.TemporaryDirectory(dir=tmp_dir) as tmp:
        manifest = write_manifest([{"path": str(Path(c.path).resolve()), "speaker": c.speaker, "gender": c.gender,
                                    "id": c.id} for c in clips], Path(tmp) / "manifest.csv")
        cmd = [sys.executable, "-m", "src.extract", f"encoder={encoder}", "data=manifest",
               f"data.manifest_path={manifest}", f"paths.embeddings_dir={tmp}/emb", f"num_workers={num_workers}",
               "progress=false", f"hydra.run.dir={tmp}/log", *overrides]
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, cwd=Path(__file__).resolve().parents[1])
        wall = time.perf_counter() - t0
        stats = json.loads((Path(tmp) / "emb" / f"{encoder}-embeddings.extract.json").read_text())
    audio = stats["audio_s"]
    return {"num_workers": num_workers, "wall_s": wall, "audio_s": audio, "audio_s_per_s": audio / wall,
            "clips": stats["done"], "cpu_s": float("nan")}


# --------------------------------------------------------------------------- (e) encoders

def random_ecapa(folder: Path):
    """spkrec-ecapa-voxceleb's layout and sizes with random weights, loaded by the real loader."""
    from src.encoders.ecapa import EcapaEncoder, save_random_ecapa

    return EcapaEncoder(source=str(save_random_ecapa(folder)), device="cpu")


def random_wav2vec2(path: Path, layer: int = 12):
    """torchaudio's WAV2VEC2_BASE architecture (94.4 M parameters) with random weights."""
    import torch
    import torchaudio

    from src.encoders.wav2vec2 import Wav2Vec2Encoder, save_wav2vec2_checkpoint

    params = dict(torchaudio.pipelines.WAV2VEC2_BASE._params)
    torch.manual_seed(0)
    save_wav2vec2_checkpoint(params, torchaudio.models.wav2vec2_model(**params), path)
    return Wav2Vec2Encoder(checkpoint_path=str(path), layer=layer, device="cpu")


def bench_encoders(speech: list[np.ndarray], batch_sizes: dict[str, int], repeats: int, tmp_dir: Path) -> dict:
    """Speech seconds embedded per wall second by each encoder on the same VAD speech."""
    import torch

    from src.encoders.resemblyzer import ResemblyzerEncoder

    speech_s = sum(len(s) for s in speech) / 16_000
    out: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(dir=tmp_dir) as tmp:
        makers = {"resemblyzer": (lambda: ResemblyzerEncoder(device="cpu"), "real weights (in its wheel)"),
                  "ecapa": (lambda: random_ecapa(Path(tmp) / "ecapa"), "full size, RANDOM weights: speed only"),
                  "wav2vec2": (lambda: random_wav2vec2(Path(tmp) / "w2v.pth"), "full size (base), RANDOM weights: "
                                                                                "speed only")}
        for name, (make, label) in makers.items():
            t0 = time.perf_counter()
            enc = make()
            load_s = time.perf_counter() - t0
            bs = batch_sizes.get(name, 8)
            enc.embed(speech[:1])  # warm-up
            best = None
            for _ in range(repeats):
                t0 = time.perf_counter()
                for i in range(0, len(speech), bs):
                    enc.embed(speech[i:i + bs])
                wall = time.perf_counter() - t0
                best = wall if best is None else min(best, wall)
            params = sum(p.numel() for p in enc.model.parameters()) if hasattr(
                getattr(enc, "model", None), "parameters") else None
            out[name] = {"label": label, "batch_size": bs, "load_s": load_s, "wall_s": best,
                         "speech_s": speech_s, "x_real_time": speech_s / best, "clips_per_s": len(speech) / best,
                         "params_m": params / 1e6 if params else None, "threads": torch.get_num_threads()}
            log.info("(e) %s: %.1fx real time (%s)", name, speech_s / best, label)
            del enc
    return out


# --------------------------------------------------------------------------- the section's run and report

def run_scale(args, cfg, all_clips, sections: set[str]) -> dict:
    """Sections (d) workers and (e) encoders, as ``--sections`` picks them; prints their table."""
    from bench.extract_common import compose_config, loadavg, pick, warm_page_cache
    from src.building import build_segmenter
    from src.data.audio import load_audio

    warm_page_cache(all_clips)
    tmp_dir = Path(args.tmp_dir) if args.tmp_dir else Path(tempfile.gettempdir())
    out: dict = {"loadavg_start": loadavg()}
    overrides = list(args.overrides)
    if "workers" in sections:
        log.info("(d) workers: %d clips", len(all_clips))
        out["workers"] = bench_workers(args.encoder, overrides, all_clips, args.repeats, tmp_dir)
    if "encoders" in sections:
        chosen = pick(all_clips, args.encoder_clips)
        seg = build_segmenter(cfg.vad)
        speech = [s for s in seg.speech_only([load_audio(c.path) for c in chosen]) if len(s) >= 8000]
        sizes = {}
        for key in ("resemblyzer", "ecapa", "wav2vec2"):
            sizes[key] = int(compose_config(key, []).encoder.batch_size)
        log.info("(e) encoders: %d clips of speech", len(speech))
        out["encoders"] = bench_encoders(speech, sizes, args.repeats, tmp_dir)
    out["loadavg_end"] = loadavg()
    print_scale(out, args.repeats)
    return out


def print_scale(r: dict, repeats: int) -> None:
    from bench.extract_common import table
    from src.embeddings.shards import available_cpus

    print(f"\n{os.cpu_count()} CPUs; load average {r['loadavg_start']} -> {r['loadavg_end']}; "
          f"best of {repeats} run(s)")
    rows = []
    if "workers" in r:
        w = r["workers"]
        print("\n(d) workers (processes; 1 torch thread each)")
        for name in ("one_pinned", "two_pinned", "one_unpinned"):
            x = w[name]
            print(f"  {name:13s} {x['wall_s']:7.2f} s {x['audio_s_per_s']:7.1f} audio-s/s  "
                  f"{x['clips']} clips, CPU {x['cpu_s']:.1f} s")
        rows.append(("2 workers / 1 worker throughput (one core each)", f"{w['ratio_two_over_one']:.2f}x",
                     f">= {GOAL_WORKERS_RATIO:g}x", w["ratio_two_over_one"] >= GOAL_WORKERS_RATIO))
        rows.append(("  same, from CPU s per audio s (2 idle cores would give)",
                     f"{w['ratio_two_over_one_idle_cores']:.2f}x", "", None))
        rows.append(("2 workers / one default process (two threads, any core)",
                     f"{w['ratio_two_over_default']:.2f}x", "", None))
        for name in ("command_one", "command_auto"):
            x = w[name]
            print(f"  {name:13s} {x['wall_s']:7.2f} s {x['audio_s_per_s']:7.1f} audio-s/s  {x['clips']} clips "
                  f"(python -m src.extract num_workers={x['num_workers']}, start to exit)")
        rows.append((f"default command (num_workers=auto: {available_cpus()} CPUs) / num_workers=1",
                     f"{w['ratio_command_auto_over_one']:.2f}x", f">= {GOAL_WORKERS_RATIO:g}x",
                     w["ratio_command_auto_over_one"] >= GOAL_WORKERS_RATIO))
    if "encoders" in r:
        print("\n(e) encoders: the same VAD speech, each encoder's batch size")
        for name, e in r["encoders"].items():
            params = f"{e['params_m']:.1f} M params, " if e["params_m"] else ""
            print(f"  {name:12s} {e['x_real_time']:7.1f}x real time  {e['clips_per_s']:6.2f} clips/s  "
                  f"batch {e['batch_size']}, {params}loaded in {e['load_s']:.1f} s  [{e['label']}]")
            rows.append((f"{name} speed ({e['label']})", f"{e['x_real_time']:.1f}x real time", "", None))
    print("\n" + table(rows))
