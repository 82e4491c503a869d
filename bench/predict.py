"""The predict command on one machine: ``num_workers=1`` against the default ``num_workers=auto``.

    python bench/predict.py [--clips 492] [--repeats 1] [--run default] [key=value ...]

Runs ``python -m src.predict input=<manifest of --clips dev clips> output=<tmp>.jsonl`` as a user
would (shipped model, timeline on, the default threads), timed from the command's start to its
exit: process start, model loads, decoding, VAD, the model, the shards' merge. Prints each
setting's x real time (audio seconds of the clips / wall seconds), the CPU seconds its processes
used (``RUSAGE_CHILDREN``), and the ratio auto / 1 (goal: >= 1.8x on 2 cores). The two settings
run alternately, ``--repeats`` times each, the fastest kept; the merged outputs of the two are
compared record by record (they must be identical). The load average is printed before and after:
measure on a quiet machine.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]


def manifest(n: int, folder: Path) -> tuple[Path, float]:
    shared = REPO.parent / "shared" / "data" / "dev"
    root = shared if (shared / "manifest.csv").exists() else REPO / "data" / "sample"
    m = pd.read_csv(root / "manifest.csv").sample(frac=1.0, random_state=0).head(n)
    paths = [str((root / p).resolve()) for p in m.path]
    audio_s = sum(sf.info(p).duration for p in paths)
    out = folder / "clips.csv"
    pd.DataFrame({"path": paths}).to_csv(out, index=False)
    return out, audio_s


def run(clips: Path, workers: str, run_name: str, out: Path, overrides: list[str]) -> dict:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    cmd = [sys.executable, "-m", "src.predict", f"input={clips}", f"output={out}", f"num_workers={workers}",
           f"run={run_name}", "progress=false", f"hydra.run.dir={out.parent}/log-{workers}", *overrides]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, cwd=REPO)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": wall, "cpu_s": cpu}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=492)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--run", default="default")
    ap.add_argument("overrides", nargs="*", help="more predict overrides, e.g. timeline=false")
    args = ap.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs "
          f"({len(os.sched_getaffinity(0))} usable)")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        clips, audio_s = manifest(args.clips, tmp)
        best: dict[str, dict] = {}
        for _ in range(args.repeats):
            for workers in ("1", "auto"):
                out = tmp / f"out-{workers}.jsonl"
                out.unlink(missing_ok=True)
                r = run(clips, workers, args.run, out, args.overrides)
                if workers not in best or r["wall_s"] < best[workers]["wall_s"]:
                    best[workers] = r
        same = (tmp / "out-1.jsonl").read_bytes() == (tmp / "out-auto.jsonl").read_bytes()
        n = sum(1 for _ in (tmp / "out-auto.jsonl").open())
    print(f"{n} clips answered, {audio_s:.0f} s of audio ({audio_s / 60:.1f} min); "
          f"overrides: {' '.join(args.overrides) or 'none (timeline on)'}")
    for workers, r in best.items():
        print(f"num_workers={workers}: {r['wall_s']:.1f} s, {audio_s / r['wall_s']:.1f}x real time, "
              f"{r['cpu_s']:.1f} CPU s ({audio_s / r['cpu_s']:.1f} audio s per CPU s)")
    print(f"ratio auto / 1 (wall): {best['1']['wall_s'] / best['auto']['wall_s']:.2f}x (goal >= 1.8x on 2 cores)")
    print(f"outputs byte-identical: {same}")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
