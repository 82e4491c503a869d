"""Section (a) of ``bench/extract.py``: batched ``SileroSegmenter.timestamps`` (called per pipeline
chunk, as ``extract()`` calls it, and once on all clips) against Silero's stock per-file loop on the
same clips, decoded once beforehand; speed-up and the share of clips with identical segment lists.
"""

from __future__ import annotations

import logging
from dataclasses import asdict

import numpy as np
import torch

from bench.extract_common import Clock, check_threads, chunked

log = logging.getLogger("bench.extract")

GOAL_VAD_SPEEDUP = 3.0          # batched / stock throughput, at least
GOAL_VAD_IDENTICAL = 1.0        # share of clips with identical segment lists


def bench_vad(waves: list[np.ndarray], segmenter, stock_model, chunk_clips: int, threads: int,
              repeats: int, audio_s: float) -> dict:
    """Batched ``SileroSegmenter.timestamps`` (called per pipeline chunk) vs the stock per-file loop."""
    from silero_vad import get_speech_timestamps

    params = asdict(segmenter.params)  # Silero's own names; the same values for both contenders
    chunks = chunked(waves, chunk_clips)

    def batched() -> list:
        return [ts for chunk in chunks for ts in segmenter.timestamps(chunk)]

    def batched_all() -> list:
        return segmenter.timestamps(waves)

    def stock() -> list:
        return [get_speech_timestamps(torch.from_numpy(w), stock_model, **params) for w in waves]

    # warm-up: each contender once on one clip
    segmenter.timestamps(waves[:1])
    get_speech_timestamps(torch.from_numpy(waves[0]), stock_model, **params)

    times = {"batched": [], "stock": [], "batched_all": []}
    cpu = {k: [] for k in times}
    out = {}
    for _ in range(repeats):
        for name, fn in (("stock", stock), ("batched", batched), ("batched_all", batched_all)):
            check_threads(threads, f"VAD {name}")
            with Clock() as c:
                out[name] = fn()
            times[name].append(c.wall_s)
            cpu[name].append(c.cpu_s)
            log.info("VAD %-11s %.2f s (cpu %.2f s)", name, c.wall_s, c.cpu_s)
    best = {k: min(v) for k, v in times.items()}
    identical = sum(a == b for a, b in zip(out["batched"], out["stock"]))
    identical_all = sum(a == b for a, b in zip(out["batched_all"], out["stock"]))
    mismatches = [i for i, (a, b) in enumerate(zip(out["batched"], out["stock"])) if a != b]
    return {
        "clips": len(waves), "audio_s": audio_s, "chunk_clips": chunk_clips,
        "vad_batch_size": segmenter.batch_size, "vad_backend": segmenter.backend,
        "stock_s": best["stock"], "batched_s": best["batched"], "batched_all_s": best["batched_all"],
        "stock_audio_s_per_s": audio_s / best["stock"],
        "batched_audio_s_per_s": audio_s / best["batched"],
        "batched_all_audio_s_per_s": audio_s / best["batched_all"],
        "speedup": best["stock"] / best["batched"],
        "speedup_all_at_once": best["stock"] / best["batched_all"],
        "identical_share": identical / len(waves),
        "identical_share_all_at_once": identical_all / len(waves),
        "mismatched_clip_indices": mismatches[:20],
        "all_times_s": times, "all_cpu_s": cpu,
    }


def vad_goals(vad: dict) -> dict:
    """name: (measured, goal, pass) for the report's table and the JSON's ``goals``."""
    return {
        "vad_speedup": (vad["speedup"], GOAL_VAD_SPEEDUP, vad["speedup"] >= GOAL_VAD_SPEEDUP),
        "vad_identical": (vad["identical_share"], GOAL_VAD_IDENTICAL, vad["identical_share"] >= GOAL_VAD_IDENTICAL),
    }


def print_vad(vad: dict, goals: dict) -> list[tuple]:
    """Prints the details of (a); returns its rows of the table."""
    per_call = ("512 windows per call (the sequence ONNX model)" if vad.get("vad_backend") == "onnx"
                else f"{vad['vad_batch_size']} clips per model call")
    print(f"\n(a) VAD: Silero, {per_call}; stock: the TorchScript model per file")
    print(f"  stock per-file loop         {vad['stock_s']:8.2f} s {vad['stock_audio_s_per_s']:8.0f} audio-s/s")
    print(f"  batched, per chunk of {vad['chunk_clips']:<5} {vad['batched_s']:8.2f} s "
          f"{vad['batched_audio_s_per_s']:8.0f} audio-s/s  {vad['speedup']:5.2f}x  identical "
          f"{vad['identical_share']:.1%}   <- as extract() calls it")
    print(f"  batched, all clips at once  {vad['batched_all_s']:8.2f} s {vad['batched_all_audio_s_per_s']:8.0f} "
          f"audio-s/s  {vad['speedup_all_at_once']:5.2f}x  identical {vad['identical_share_all_at_once']:.1%}"
          f"   (sorted by length: less padding)")
    return [
        ("VAD speed-up, batched / stock per-file", f"{vad['speedup']:.2f}x", f">= {GOAL_VAD_SPEEDUP:g}x",
         goals["vad_speedup"][2]),
        ("VAD clips with identical segments",
         f"{vad['identical_share']:.1%} ({round(vad['identical_share'] * vad['clips'])}/{vad['clips']})",
         "100%", goals["vad_identical"][2]),
    ]
