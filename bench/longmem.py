"""Peak memory of ``python -m src.predict`` against the length of the file (issue 24).

    python bench/longmem.py                       # 10, 30, 60 min at 16 kHz mono, 30 min at 48 kHz stereo
    python bench/longmem.py --minutes 10 30 --stereo-min 0
    python bench/longmem.py --stages 30           # where the memory goes, stage by stage, on 30 min

Builds long FLACs from the shared dev clips (joined with 0.5 s of silence, tiled when the clips run
out; 16 kHz mono, and one 48 kHz stereo made from the same clips resampled, the right channel at
0.9x the left) under ``--tmp`` (not the repo), runs ``python -m src.predict input=<file> format=jsonl
output=<tmp>`` on each in a subprocess under ``/usr/bin/time -v`` and reports its maximum resident
set size, the growth over a short file (one sample clip: the models loaded), the least-squares slope
in GB per hour of audio over the 16 kHz mono files, and the load average before and after.

``--stages N``: in this process, the shipped model's pipeline on an N-minute 16 kHz file, stage by
stage (decode, VAD, join, whole-speech features per encoder, timeline windows, per-window features
per encoder), each stage's peak RSS growth over the RSS before it (``VmHWM`` reset through
``/proc/self/clear_refs``, Linux).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.extract_common import vm_kb  # noqa: E402

DEV = Path(os.environ.get("SHARED_DATA", ROOT.parent / "shared" / "data")) / "dev"  # ../shared beside the checkout
SAMPLE = ROOT / "data" / "sample"
TREE = ROOT  # the checkout whose ``src`` predict runs (--tree: e.g. an unpacked ``git archive`` of the commit before)
GAP_S = 0.5
SR = 16_000


def dev_clips() -> list[Path]:
    """The dev clips, in a fixed order that alternates the genders (speakers change at every clip)."""
    rows = list(csv.DictReader(open(DEV / "manifest.csv")))
    f = [DEV / r["path"] for r in rows if r["gender"] == "female"]
    m = [DEV / r["path"] for r in rows if r["gender"] == "male"]
    return [p for pair in zip(f, m) for p in pair]


def write_long(path: Path, minutes: float, rate_hz: int = SR, channels: int = 1) -> float:
    """A ``minutes`` long FLAC of dev clips joined with ``GAP_S`` gaps, written block by block
    (this process never holds the whole file); returns the seconds written."""
    import soundfile as sf
    import soxr

    from src.data.audio import load_audio

    want = int(minutes * 60 * SR)
    gap = np.zeros(int(GAP_S * SR), np.float32)
    n, clips = 0, dev_clips()
    with sf.SoundFile(str(path), "w", rate_hz, channels, subtype="PCM_16", format="FLAC") as f:
        while n < want:
            for c in clips:
                w = np.concatenate([load_audio(c), gap])[:want - n]
                n += len(w)
                if rate_hz != SR:
                    w = soxr.resample(w, SR, rate_hz)
                if channels == 2:
                    w = np.stack([w, 0.9 * w], axis=1)
                f.write(np.clip(w, -1, 1))
                if n >= want:
                    break
    return n / SR


def max_rss_kb(cmd: list[str]) -> tuple[int, float, str]:
    """``cmd`` under ``/usr/bin/time -v``: its maximum RSS in kB, wall seconds, and stderr's tail."""
    t = time.perf_counter()
    p = subprocess.run(["/usr/bin/time", "-v", *cmd], cwd=TREE, capture_output=True, text=True)
    wall = time.perf_counter() - t
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", p.stderr)
    if p.returncode != 0 or not m:
        raise SystemExit(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stderr[-3000:]}")
    return int(m.group(1)), wall, p.stderr


def predict_cmd(path: Path, out: Path, extra: list[str]) -> list[str]:
    return [sys.executable, "-m", "src.predict", f"input={path}", "format=jsonl", f"output={out}",
            "progress=false", *extra]


def bench_files(args) -> list[dict]:
    tmp = Path(args.tmp)
    tmp.mkdir(parents=True, exist_ok=True)
    jobs = [(0.0, SR, 1)] + [(m, SR, 1) for m in args.minutes] + ([(args.stereo_min, 48_000, 2)]
                                                                 if args.stereo_min else [])
    rows = []
    for minutes, rate, ch in jobs:
        if minutes == 0:
            path = min((SAMPLE / "audio").rglob("*.flac"))
            seconds = float(len(__import__("soundfile").read(str(path))[0])) / SR
        else:
            path = tmp / f"long-{minutes:g}min-{rate // 1000}k-{'stereo' if ch == 2 else 'mono'}.flac"
            if not path.exists():
                write_long(path, minutes, rate, ch)
            import soundfile as sf

            seconds = sf.info(str(path)).duration
        load0 = os.getloadavg()[0]
        rss, wall, _ = max_rss_kb(predict_cmd(path, tmp / "x.jsonl", args.extra))
        result = json.loads((tmp / "x.jsonl").read_text().splitlines()[0])
        rows.append({"file": path.name, "rate_hz": rate, "channels": ch, "audio_s": seconds,
                     "max_rss_mb": rss / 1024, "wall_s": wall, "load_before": load0,
                     "load_after": os.getloadavg()[0], "label": result.get("label"),
                     "p_male": result.get("p_male"), "status": result.get("status"),
                     "reason": result.get("reason"), "segments": len(result.get("timeline") or [])})
        r = rows[-1]
        print(f"{r['file']:40s} {seconds / 60:6.1f} min  max RSS {r['max_rss_mb']:7.0f} MB  wall {wall:6.1f} s  "
              f"load {r['load_before']:.1f}->{r['load_after']:.1f}  {r['status']} {r['label']} p_male={r['p_male']}",
              flush=True)
    base = rows[0]["max_rss_mb"]
    mono = [r for r in rows[1:] if r["channels"] == 1 and r["status"] != "error"]
    print(f"\nshort file (models loaded): {base:.0f} MB")
    for r in rows[1:]:
        r["growth_mb"] = r["max_rss_mb"] - base
        print(f"  {r['file']:40s} +{r['growth_mb']:6.0f} MB  ({r['growth_mb'] / 1024 / (r['audio_s'] / 3600):.2f} GB/h "
              "over the short file)")
    if len(mono) >= 2:
        h = np.array([r["audio_s"] / 3600 for r in mono])
        gb = np.array([r["max_rss_mb"] / 1024 for r in mono])
        slope = float(np.polyfit(h, gb, 1)[0])
        print(f"slope over the 16 kHz mono files: {slope:.2f} GB per hour of audio (goal < 0.5)")
        rows.append({"slope_gb_per_h": slope})
    print(f"load average now: {os.getloadavg()}; CPUs: {os.cpu_count()}")
    return rows


class Stage:
    """``with Stage(name, table):`` records the peak RSS growth over the RSS at entry (VmHWM reset)."""

    def __init__(self, name: str, table: list):
        self.name, self.table = name, table

    def __enter__(self):
        Path("/proc/self/clear_refs").write_text("5")
        self.rss0, self.t = vm_kb("VmRSS"), time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.table.append((self.name, (vm_kb("VmHWM") - self.rss0) / 1024, (vm_kb("VmRSS") - self.rss0) / 1024,
                           time.perf_counter() - self.t))
        print(f"  {self.name:45s} peak +{self.table[-1][1]:7.0f} MB  kept +{self.table[-1][2]:7.0f} MB  "
              f"{self.table[-1][3]:6.1f} s", flush=True)


def bench_stages(args) -> None:
    import torch

    from src.data.audio import SAMPLE_RATE_HZ, decode_audio
    from src.encoders.base import embed_slices
    from src.inference.pipeline import GenderPipeline
    from src.vad.silero import join_segments

    torch.set_num_threads(1)
    path = Path(args.tmp) / f"long-{args.stages:g}min-16k-mono.flac"
    Path(args.tmp).mkdir(parents=True, exist_ok=True)
    if not path.exists():
        write_long(path, args.stages)
    pipe = GenderPipeline.from_pretrained("default")
    pipe(min((SAMPLE / "audio").rglob("*.flac")))  # warm-up
    print(f"stages on {path.name} (RSS with the models loaded: {vm_kb('VmRSS') / 1024:.0f} MB)")
    t: list = []
    with Stage("decode (16 kHz, quality meter)", t):
        wave = decode_audio(path, SAMPLE_RATE_HZ, pipe.max_duration_s, native=pipe.quality_meter).wave
    with Stage("VAD (Silero)", t):
        segments = pipe.segmenter.timestamps([wave])[0]
    with Stage("join speech", t):
        speech = join_segments(wave, segments)
    parts = getattr(pipe.encoder, "parts", [pipe.encoder])
    for p in parts:
        with Stage(f"whole speech: {p.name}", t):
            p.embed([speech])
    with Stage("classify_wave, whole (timeline off)", t):
        pipe.classify_wave(wave, timeline=False)
    with Stage("timeline_windows", t):
        scored, bounds, sp = pipe.timeline_windows(wave, segments)
    for p in parts:
        with Stage(f"windows ({len(bounds)}): {p.name}", t):
            embed_slices(p, sp, bounds)
    with Stage("classify_wave, timeline on", t):
        pipe.classify_wave(wave, timeline=True)
    print(f"load average: {os.getloadavg()}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, nargs="*", default=[10, 30, 60])
    ap.add_argument("--stereo-min", type=float, default=30, help="a 48 kHz stereo file this long (0: none)")
    ap.add_argument("--tmp", default=str(Path(tempfile.gettempdir()) / "longmem"))
    ap.add_argument("--stages", type=float, default=0, help="stage-by-stage RSS on an N-minute file instead")
    ap.add_argument("--json", help="write the rows here")
    ap.add_argument("--tree", help="run predict from this checkout instead (e.g. the code before a change)")
    ap.add_argument("extra", nargs="*", help="more predict overrides, e.g. timeline=false")
    args = ap.parse_args()
    print(f"load average at start: {os.getloadavg()}; CPUs: {os.cpu_count()}", flush=True)
    if args.tree:
        global TREE
        TREE = Path(args.tree).resolve()
    print(f"predict runs from {TREE}")
    if args.stages:
        bench_stages(args)
        return
    rows = bench_files(args)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
