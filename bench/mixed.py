"""How often the answer is ``mixed`` on one voice (false) and on two voices (true).

    python bench/mixed.py [--run default] [--pairs 240] [--side-s 6] [--limit N] [--out mixed.npz]

Single voice: every clip of the single-speaker shared sets (../shared/data: dev, speechocean762-dev,
speechocean762-extra, emotional-dev), classified with the timeline on, as every surface does.
Two voices: ``--pairs`` files made by joining a woman's clips and a man's (two different speakers
of the same set, each side at least ``--side-s`` seconds of audio from one speaker's clips, 0.5 s
of silence between the sides, the order random; ``--seed``, 0 by default), the same number from
each set. With each two-voice file, a one-voice file as long: one speaker's clips joined the same
way (2 x ``--side-s``; CREMA-D's change emotion): the hard case for false ``mixed``, as a clip of a
few seconds can hardly hold two 2-s sides.

Each file goes through ``GenderPipeline.classify_wave(wave, timeline=True)`` (the real answer);
the evidence the rule looked at (each hop's smoothed p(male) and speaker embedding) is kept, so the
rates can also be printed for other settings of ``timeline_params`` (``min_voice_s``,
``min_voice_distance``) without classifying again: the sweep at the end. ``--out`` saves it.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from src.data.audio import SAMPLE_RATE_HZ, AudioError, load_audio  # noqa: E402
from src.inference.params import TimelineParams  # noqa: E402
from src.inference.pipeline import GenderPipeline, Voices  # noqa: E402
from src.inference.run_folder import RunFolder  # noqa: E402
from src.labels import MIXED  # noqa: E402

SETS = ("dev", "speechocean762-dev", "speechocean762-extra", "emotional-dev")
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
GAP_S = 0.5


def classify(pipe: GenderPipeline, wave: np.ndarray) -> tuple[str, Voices | None]:
    """The pipeline's answer (timeline on) and the evidence its two-voice rule saw."""
    seen: list[Voices] = []
    real = pipe._voices

    def keep(*args, gate=None, **kwargs):  # each side's p(male) whatever the gates, for the sweep;
        # the answer still uses the real rule (Voices.two_voices checks the pipeline's own gates)
        seen.append(real(*args, gate=TimelineParams(min_voice_s=0.0, min_voice_distance=0.0,
                                                    sure_voice_distance=0.0), **kwargs))
        return seen[-1]

    pipe._voices = keep
    try:
        r = pipe.classify_wave(wave, timeline=True)
    finally:
        del pipe._voices
    return r.label, (seen[0] if seen else None)


def side(rng: np.random.Generator, clips: pd.DataFrame, root: Path, side_s: float) -> np.ndarray:
    """One speaker's clips, in random order, joined (0.3 s apart) until ``side_s`` seconds."""
    out, total = [], 0.0
    for path in clips.path.sample(frac=1.0, random_state=int(rng.integers(1 << 31))):
        w = load_audio(root / path)
        out += [w, np.zeros(int(0.3 * SAMPLE_RATE_HZ), np.float32)]
        total += len(w) / SAMPLE_RATE_HZ
        if total >= side_s:
            break
    return np.concatenate(out[:-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", default="default", help="a run folder, or default (the shipped model)")
    ap.add_argument("--pairs", type=int, default=240, help="two-voice files, split evenly over the sets")
    ap.add_argument("--side-s", type=float, default=6.0, help="audio per voice in a two-voice file, at least")
    ap.add_argument("--limit", type=int, default=0, help="single-voice clips per set (0: all, -1: none)")
    ap.add_argument("--seed", type=int, default=0, help="which two-voice files (speakers, clips, order)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None, help="save the evidence (.npz) for later sweeps")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    pipe = (GenderPipeline.from_run(RunFolder.resolve(args.run, "runs")))
    tp = pipe.timeline_params
    print(f"model: {pipe.model_name}; rule: min_voice_s={tp.min_voice_s} min_voice_distance={tp.min_voice_distance}"
          f" (or sure_voice_distance={tp.sure_voice_distance} with sides answered >= {tp.sure_voice_p})"
          f" (sides answered by threshold {pipe.classifier.threshold:g}, unknown_below {pipe.unknown_below:g})",
          flush=True)
    rows: list[dict] = []
    t0 = time.time()
    for name in SETS:
        m = pd.read_csv(SHARED / name / "manifest.csv")
        if args.limit < 0:
            continue
        if args.limit:
            m = m.sample(min(args.limit, len(m)), random_state=0)
        for r in m.itertuples():
            try:
                wave = load_audio(SHARED / name / r.path)
            except AudioError as e:
                rows.append({"set": name, "kind": "one", "file": r.path, "label": f"error:{e.reason}"})
                continue
            label, v = classify(pipe, wave)
            rows.append({"set": name, "kind": "one", "file": r.path, "label": label, "voices": v,
                         "audio_s": len(wave) / SAMPLE_RATE_HZ})
        print(f"  {name}: {len(m)} single-voice clips ({time.time() - t0:.0f} s)", flush=True)
    rng = np.random.default_rng(args.seed)
    for k, name in enumerate(SETS):
        m = pd.read_csv(SHARED / name / "manifest.csv")
        by = {g: sorted(m[m.gender == g].speaker.unique()) for g in ("female", "male")}
        n = args.pairs // len(SETS) + (k < args.pairs % len(SETS))
        for _ in range(n):
            f, ma = rng.choice(by["female"]), rng.choice(by["male"])
            a = side(rng, m[m.speaker == f], SHARED / name, args.side_s)
            b = side(rng, m[m.speaker == ma], SHARED / name, args.side_s)
            a, b = (a, b) if rng.random() < 0.5 else (b, a)
            wave = np.concatenate([a, np.zeros(int(GAP_S * SAMPLE_RATE_HZ), np.float32), b])
            label, v = classify(pipe, wave)
            rows.append({"set": name, "kind": "two", "file": f"{f}+{ma}", "label": label, "voices": v,
                         "audio_s": len(wave) / SAMPLE_RATE_HZ})
            # and one voice as long: one speaker's clips joined (emotions and sentences vary, the voice does not)
            one = rng.choice(by["female"] + by["male"])
            wave = side(rng, m[m.speaker == one], SHARED / name, 2 * args.side_s)
            label, v = classify(pipe, wave)
            rows.append({"set": name, "kind": "one-joined", "file": str(one), "label": label, "voices": v,
                         "audio_s": len(wave) / SAMPLE_RATE_HZ})
        print(f"  {name}: {n} two-voice files and {n} one-voice files as long ({time.time() - t0:.0f} s)",
              flush=True)
    df = pd.DataFrame(rows)
    df["mixed"] = df.label == MIXED
    print(f"\n{len(df)} files in {time.time() - t0:.0f} s; answers with {pipe.model_name}:")
    table = df.groupby(["kind", "set"]).agg(files=("mixed", "size"), mixed=("mixed", "sum"))
    table["rate"] = (100 * table.mixed / table.files).round(2)
    print(table.to_string())
    for kind, what in (("one", "false-mixed, clips"), ("one-joined", "false-mixed, one voice joined"),
                       ("two", "true-mixed")):
        d = df[df.kind == kind]
        print(f"  {what}, all sets: {d.mixed.sum()}/{len(d)} = {100 * d.mixed.mean():.2f} %")
    if (df.kind != "two").any() and df[df.kind != "two"].mixed.any():
        print("single-voice files answered mixed:")
        for r in df[(df.kind != "two") & df.mixed].itertuples():
            print(f"  {r.set}/{r.file}: sides {r.voices.side_s()} s, distance {r.voices.distance:.3f}, "
                  f"p(male) {r.voices.p_voice}")
    missed = df[(df.kind == "two") & ~df.mixed]
    if len(missed):
        print("two-voice files not answered mixed:")
        for r in missed.itertuples():
            v = r.voices
            print(f"  {r.set}/{r.file}: {r.label}; sides {v.side_s() if v else None} s, distance "
                  f"{v.distance if v else float('nan'):.3f}, p(male) {v.p_voice if v else None}")
    print("\nsweep (the same evidence, other settings): false-mixed % (clips and joined) / true-mixed %")
    for min_s in (1.0, 1.5, 2.0, 3.0, 4.0):
        cells = []
        for dist in (0.0, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35):
            p = TimelineParams(min_voice_s=min_s, min_voice_distance=dist, sure_voice_distance=min(dist, 0.15))
            hit = df.voices.map(lambda v, p=p: bool(v is not None and v.two_voices(p)))
            cells.append(f"d>={dist:.2f}: {100 * hit[df.kind != 'two'].mean():5.2f}/"
                         f"{100 * hit[df.kind == 'two'].mean():5.1f}")
        print(f"  min_voice_s={min_s}: " + "  ".join(cells))
    if args.out:
        keep = df[df.voices.notna()]
        np.savez_compressed(args.out, kind=keep.kind.values, set=keep.set.values, files=keep.file.values,
                            label=keep.label.values, distance=np.array([v.distance for v in keep.voices]),
                            side_s=np.array([v.side_s() for v in keep.voices]),
                            p_voice=np.array([v.p_voice or (np.nan, np.nan) for v in keep.voices]))
        print(f"evidence saved to {args.out}")


if __name__ == "__main__":
    main()
