"""What a model's feature set costs: two models side by side on the same clips, in one run.

    python bench/models.py [--runs default /path/to/other/run] [--clips 60] [--threads 1]

Each model's ``GenderPipeline`` (from ``run=``: ``default``, a run folder, ``latest``) answers the
same ``--clips`` dev clips (../shared/data/dev, or the bundled sample without it), decoded
beforehand, timeline on as every surface does, one after the other in alternating order (two
passes, the faster kept). It prints, per model: x real time (audio s / wall s), audio s per CPU s
of this process, and the answers' agreement with the clips' labels (on training clips when the
model trained on them: a sanity check, not an accuracy). The machine's load average is printed
first: measure on a quiet machine.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from src.data.audio import SAMPLE_RATE_HZ, load_audio  # noqa: E402
from src.inference.pipeline import GenderPipeline  # noqa: E402
from src.inference.run_folder import RunFolder  # noqa: E402
from src.runtime import set_threads  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def clips(n: int) -> list[tuple[np.ndarray, str]]:
    shared = REPO.parent / "shared" / "data" / "dev"
    root = shared if (shared / "manifest.csv").exists() else REPO / "data" / "sample"
    m = pd.read_csv(root / "manifest.csv").sample(frac=1.0, random_state=0).head(n)
    return [(load_audio(root / p), g) for p, g in zip(m.path, m.gender, strict=True)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", nargs=2, default=["default", "default"])
    ap.add_argument("--clips", type=int, default=60)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs; threads {args.threads}")
    set_threads(args.threads)
    data = clips(args.clips)
    audio_s = sum(len(w) for w, _ in data) / SAMPLE_RATE_HZ
    pipes = [GenderPipeline.from_run(RunFolder.resolve(r, "runs")) for r in args.runs]
    for p in pipes:
        p.classify_wave(data[0][0], timeline=True)  # warm up
    best = [(np.inf, np.inf)] * 2
    labels = [[], []]
    for order in ((0, 1), (1, 0)):
        for i in order:
            w0, c0 = time.perf_counter(), time.process_time()
            answers = [pipes[i].classify_wave(w, timeline=True).label for w, _ in data]
            wall, cpu = time.perf_counter() - w0, time.process_time() - c0
            best[i] = (min(best[i][0], wall), min(best[i][1], cpu))
            labels[i] = answers
    print(f"{len(data)} clips, {audio_s:.0f} s of audio")
    for i, run in enumerate(args.runs):
        wall, cpu = best[i]
        agree = np.mean([a == g for a, (_, g) in zip(labels[i], data, strict=True)])
        print(f"{run}: {audio_s / wall:.1f}x real time, {audio_s / cpu:.1f} audio s per CPU s, "
              f"label = manifest on {100 * agree:.1f} % of clips")
    print(f"ratio (second / first), audio s per CPU s: {best[0][1] / best[1][1]:.2f}")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
