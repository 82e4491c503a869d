"""How the classifier answers on real speech made bad, with and without the quality checks.

    python bench/quality.py --run runs/<a dev run> [--clips 60] [--split test]

For each clip of the run's ``--split`` (balanced by gender, real speech of ../shared/data/dev)
and each degradation (hard clipping, the first 1 or 2 s, white noise at 20/10/5/0 dB SNR,
a telephone band), it prints the accuracy of the raw answer, the share of confident wrong
answers (wrong with p >= 0.9), what the checks measured (medians), and with the checks: the
share answered ``unknown`` and the accuracy of the rest. No timing: a table of ratios.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from src.data.audio import load_audio  # noqa: E402
from src.data.degrade import first_seconds, hard_clip, telephone, with_noise  # noqa: E402
from src.inference.pipeline import GenderPipeline  # noqa: E402
from src.inference.quality import assess  # noqa: E402
from src.vad.silero import join_segments  # noqa: E402

DEGRADATIONS = {
    "clean": lambda w, s: w,
    "hard-clipped x8": lambda w, s: hard_clip(w, 8.0),
    "hard-clipped x2": lambda w, s: hard_clip(w, 2.0),
    "first 1 s": lambda w, s: first_seconds(w, 1.0),
    "first 2 s": lambda w, s: first_seconds(w, 2.0),
    "first 3 s": lambda w, s: first_seconds(w, 3.0),
    "noise 20 dB": lambda w, s: with_noise(w, 20.0, speech=s),
    "noise 10 dB": lambda w, s: with_noise(w, 10.0, speech=s),
    "noise 5 dB": lambda w, s: with_noise(w, 5.0, speech=s),
    "noise 0 dB": lambda w, s: with_noise(w, 0.0, speech=s),
    "telephone 300-3400 Hz": lambda w, s: telephone(w),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True, help="a training run on dev (its predictions.csv names the split)")
    ap.add_argument("--clips", type=int, default=60, help="clips per degradation, half female, half male")
    ap.add_argument("--split", default="test")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    pipe = GenderPipeline.from_run(args.run)
    df = pd.read_csv(Path(args.run) / "predictions.csv", keep_default_na=False)
    df = df[df.split == args.split]
    per = args.clips // 2
    picked = pd.concat([df[df.gender == g].sample(min(per, (df.gender == g).sum()), random_state=0)
                        for g in ("female", "male")])
    rows = []
    for path, gender in zip(picked.path, picked.gender):
        wave = load_audio(path)
        speech = join_segments(wave, pipe.segmenter.timestamps([wave])[0])
        for name, make in DEGRADATIONS.items():
            bad = make(wave, speech)
            segs = pipe.segmenter.timestamps([bad])[0]
            sp = join_segments(bad, segs)
            if len(sp) < 0.25 * 16000:
                rows.append(dict(kind=name, gender=gender, p=np.nan, ok=False, sure_wrong=False, unknown=True,
                                 gated_ok=False, clipped=np.nan, snr=np.nan, high=np.nan, speech_s=len(sp) / 16000,
                                 notes="no_speech"))
                continue
            p = float(pipe.p_male([sp])[0])
            q = assess(bad, sp)
            label = pipe.label_for(p)
            gated = pipe.label_for(q.shrink(p))
            p_true = p if gender == "male" else 1 - p
            rows.append(dict(kind=name, gender=gender, p=p_true, ok=label == gender,
                             sure_wrong=p_true <= 0.1, unknown=gated == "unknown", gated_ok=gated == gender,
                             clipped=q.clipped_ratio, snr=q.snr_db, high=q.high_band_db, speech_s=q.speech_s,
                             notes=",".join(q.notes)))
    res = pd.DataFrame(rows)
    out = res.groupby("kind", sort=False).agg(
        n=("ok", "size"), accuracy=("ok", "mean"), confident_wrong=("sure_wrong", "mean"),
        clipped_ratio=("clipped", "median"), snr_db=("snr", "median"), high_band_db=("high", "median"),
        speech_s=("speech_s", "median"), unknown_with_checks=("unknown", "mean"))
    answered = res[~res.unknown].groupby("kind", sort=False).gated_ok.mean().rename("accuracy_of_answered")
    out = out.join(answered)
    pd.set_option("display.width", 200)
    print(out.round(3).to_string())
    print("\nnotes per kind:")
    print(res.groupby("kind", sort=False).notes.value_counts().to_string())


if __name__ == "__main__":
    main()
