"""Section (f) of ``bench/extract.py``: one long recording against short clips, per second of audio.

``GenderPipeline.classify_wave`` (VAD, the whole-recording answer and, with ``timeline=True``, one
decision every 0.5 s) on ``--long-clips`` short dev clips one by one, and on one recording of
``--long-min`` minutes made of other dev clips joined with 0.5 s of silence between them (speakers
change at every clip, as in a meeting). Both are decoded beforehand (decoding is in neither timing).
Each side gets x real time (audio seconds per wall second) and audio seconds per CPU second; the
ratio long / short of the CPU figure is the one to read on a shared machine (goal: >= 0.9, a long
file as fast per second as short ones). Also: the peak RSS growth while the long file is classified
(``VmHWM`` reset first, Linux), and with ``--profile`` where its time goes (cProfile, top entries).
``run_long`` loads the model, runs it and prints the section's own table.
"""

from __future__ import annotations

import cProfile
import io
import logging
import os
import pstats
import time
from pathlib import Path

import numpy as np
import torch

from bench.extract_common import check_threads, loadavg, pick, table, vm_kb

log = logging.getLogger("bench.extract")

GOAL_LONG_RATIO = 0.9  # long-file audio s per CPU s / short clips', at least
GAP_S = 0.5


def long_recording(clips, minutes: float, sample_rate_hz: int = 16_000) -> tuple[np.ndarray, list]:
    """``clips`` decoded and joined with ``GAP_S`` of silence, cut to ``minutes``; also the
    (start, end, gender) of each clip in samples (the truth a timeline can be scored on)."""
    from src.data.audio import load_audio

    parts, truth, n, want = [], [], 0, int(minutes * 60 * sample_rate_hz)
    gap = np.zeros(int(GAP_S * sample_rate_hz), np.float32)
    for c in clips:
        w = load_audio(c.path, sample_rate_hz)
        truth.append((n, n + len(w), c.gender))
        parts += [w, gap]
        n += len(w) + len(gap)
        if n >= want:
            break
    if n < want:
        raise SystemExit(f"(f): the clips give only {n / sample_rate_hz / 60:.1f} min; ask for less --long-min")
    return np.concatenate(parts)[:want], truth


def timeline_accuracy(result, truth, sample_rate_hz: int = 16_000) -> tuple[float, float]:
    """Share of the 0.5 s hops inside a clip whose timeline label is that clip's gender (among
    hops labelled female or male), and the share so labelled."""
    starts = np.array([t[0] for t in truth])
    right = labelled = total = 0
    for seg_t in np.arange(0.25, truth[-1][1] / sample_rate_hz, 0.5):
        i = int(np.searchsorted(starts, seg_t * sample_rate_hz, "right")) - 1
        if i < 0 or seg_t * sample_rate_hz >= truth[i][1]:
            continue
        total += 1
        seg = next((s for s in result.timeline if s.start_s <= seg_t < s.end_s), None)
        if seg is not None and seg.label in ("female", "male"):
            labelled += 1
            right += seg.label == truth[i][2]
    return right / max(labelled, 1), labelled / max(total, 1)


def bench_long(pipe, short_clips, long_clips, minutes: float, repeats: int, profile: bool) -> dict:
    """Short clips one by one vs one long recording, with and without the timeline."""
    from src.data.audio import SAMPLE_RATE_HZ, load_audio

    short = [load_audio(c.path, SAMPLE_RATE_HZ) for c in short_clips]
    short_s = sum(len(w) for w in short) / SAMPLE_RATE_HZ
    wave, truth = long_recording(long_clips, minutes)
    long_s = len(wave) / SAMPLE_RATE_HZ
    pipe.classify_wave(short[0], timeline=True)  # warm-up
    out: dict = {"short_clips": len(short), "short_audio_s": short_s, "long_audio_s": long_s,
                 "long_clips_joined": len(truth)}
    for timeline in (False, True):
        key = "timeline" if timeline else "whole"
        best: dict = {}
        for _ in range(repeats):
            t, c = time.perf_counter(), time.process_time()
            for w in short:
                pipe.classify_wave(w, timeline=timeline)
            s_wall, s_cpu = time.perf_counter() - t, time.process_time() - c
            try:
                Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM
                rss0 = vm_kb("VmRSS")
            except OSError:
                rss0 = None
            t, c = time.perf_counter(), time.process_time()
            result = pipe.classify_wave(wave, timeline=timeline)
            l_wall, l_cpu = time.perf_counter() - t, time.process_time() - c
            hwm = vm_kb("VmHWM")
            log.info("(f) %s: short %.1f s (cpu %.1f), long %.1f s (cpu %.1f)", key, s_wall, s_cpu, l_wall, l_cpu)
            if not best or s_cpu + l_cpu < best["short_cpu_s"] + best["long_cpu_s"]:
                best = {"short_wall_s": s_wall, "short_cpu_s": s_cpu, "long_wall_s": l_wall, "long_cpu_s": l_cpu,
                        "long_rss_growth_mb": (hwm - rss0) / 1024 if hwm and rss0 else None}
        best.update({
            "short_x_real_time": short_s / best["short_wall_s"], "long_x_real_time": long_s / best["long_wall_s"],
            "short_audio_s_per_cpu_s": short_s / best["short_cpu_s"],
            "long_audio_s_per_cpu_s": long_s / best["long_cpu_s"],
        })
        best["ratio_cpu"] = best["long_audio_s_per_cpu_s"] / best["short_audio_s_per_cpu_s"]
        best["ratio_wall"] = best["long_x_real_time"] / best["short_x_real_time"]
        if timeline:
            best["timeline_segments"] = len(result.timeline)
            best["timeline_right"], best["timeline_labelled"] = timeline_accuracy(result, truth)
        out[key] = best
    if profile:
        pr = cProfile.Profile()
        pr.enable()
        pipe.classify_wave(wave, timeline=True)
        pr.disable()
        buf = io.StringIO()
        pstats.Stats(pr, stream=buf).sort_stats("cumulative").print_stats(30)
        out["profile"] = buf.getvalue()
    return out


def print_long(r: dict, goal_rows: list) -> None:
    print(f"\n(f) long file: {r['long_audio_s'] / 60:.1f} min ({r['long_clips_joined']} dev clips joined with "
          f"{GAP_S} s gaps) vs {r['short_clips']} short clips one by one ({r['short_audio_s'] / 60:.1f} min); "
          f"GenderPipeline.classify_wave, decoded beforehand")
    for key in ("whole", "timeline"):
        x = r[key]
        growth = x["long_rss_growth_mb"]
        print(f"  {key:8s} short {x['short_x_real_time']:6.1f}x real time ({x['short_audio_s_per_cpu_s']:6.1f} audio-s "
              f"per CPU-s)  long {x['long_x_real_time']:6.1f}x ({x['long_audio_s_per_cpu_s']:6.1f} per CPU-s)  "
              f"long/short {x['ratio_cpu']:.2f} (wall {x['ratio_wall']:.2f})"
              + (f"  RSS +{growth:.0f} MB" if growth is not None else ""))
        goal_rows.append((f"long / short audio-s per CPU-s, {key}", f"{x['ratio_cpu']:.2f}",
                          f">= {GOAL_LONG_RATIO:g}", x["ratio_cpu"] >= GOAL_LONG_RATIO))
    t = r["timeline"]
    print(f"  long-file timeline: {t['timeline_segments']} segments; {t['timeline_labelled']:.1%} of the hops in "
          f"clips labelled female/male, {t['timeline_right']:.1%} of those right")
    if "profile" in r:
        print("\n  cProfile of the long file with the timeline:\n" + r["profile"])


def run_long(args, manifest: Path) -> dict:
    """Section (f) on the clips of ``manifest``: prints its own header and table; returns its figures."""
    from src.data.manifest import read_manifest
    from src.inference.pipeline import GenderPipeline
    from src.inference.run_folder import RunFolder

    clips = read_manifest(manifest)
    short = pick(clips, args.long_clips)
    rest = [c for c in clips if c not in short]
    pipe = GenderPipeline.from_run(RunFolder.resolve(args.long_run, "runs"))
    check_threads(args.threads, "(f) after loading the model")
    log.info("(f) long file: %g min vs %d short clips, model %s", args.long_min, len(short), pipe.model_name)
    out = {"loadavg_start": loadavg(), "model": pipe.model_name}
    out.update(bench_long(pipe, short, rest, args.long_min, args.repeats, args.profile))
    out["loadavg_end"] = loadavg()
    rows: list = []
    print(f"\n{os.cpu_count()} CPUs, torch {torch.get_num_threads()} thread(s); load average {out['loadavg_start']} "
          f"-> {out['loadavg_end']}; best of {args.repeats} run(s); model {out['model']}")
    print_long(out, rows)
    print("\n" + table(rows))
    return out
