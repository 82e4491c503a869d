"""How the classifier answers on real speech made bad, with and without the quality checks.

    python bench/quality.py [--run default] [--speakers 20]

The actors of ../shared/data/emotional-dev (CREMA-D), ``--speakers`` of each gender (the model
shipped since the model-selection stop trains on CREMA-D: with it these are training speakers, so
read the figures as the checks' behaviour, not as accuracy on unseen voices; give ``--run`` a model
trained without CREMA-D for that), each one's two neutral clips joined (about 5 s). Each
recording is degraded (clipping at 48 kHz, also through MP3; noise; an 8 kHz telephone band; an
an octave up three ways; the first second; quiet) and goes through what the pipeline does: decoded at its own rate,
:func:`~src.inference.quality.assess` there, resampled to 16 kHz, the VAD, the model and its shift
gate. It prints,
per condition: the accuracy of the raw answer, the share confidently wrong (p <= 0.1 for the
truth), the share the checks flag, the share they turn ``unknown``, the accuracy of the answers
left and how many of those are confidently wrong; then the share of the children of
speechocean762-dev (clean) flagged ``pitch_shifted`` (the model and its shift gate were trained
on them). No timing.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
import soxr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from src.data.audio import SAMPLE_RATE_HZ, load_audio, resample  # noqa: E402
from src.data.degrade import hard_clip, telephone, with_noise  # noqa: E402
from src.data.stress import OCTAVE_UP  # noqa: E402
from src.inference.pipeline import GenderPipeline  # noqa: E402
from src.inference.quality import assess  # noqa: E402
from src.inference.run_folder import RunFolder  # noqa: E402
from src.vad.silero import join_segments  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
SR = SAMPLE_RATE_HZ


def mp3(wave: np.ndarray, rate: int) -> np.ndarray:
    """Through an MP3 encoder and back (libsndfile's LAME, constant rate, about 64 kbit/s at 48 kHz)."""
    buf = io.BytesIO()
    sf.write(buf, np.clip(wave, -1, 1), rate, format="MP3", compression_level=0.9, bitrate_mode="CONSTANT")
    buf.seek(0)
    return sf.read(buf, dtype="float32")[0]


def up48(w: np.ndarray) -> np.ndarray:
    return soxr.resample(w, SR, 48_000).astype(np.float32)


def at_level(w: np.ndarray, db: float) -> np.ndarray:
    """``w`` scaled so that its 99.9th percentile of |sample| is at ``db`` dBFS (as assess() measures a voice)."""
    return (w * (10 ** (db / 20) / np.percentile(np.abs(w), 99.9))).astype(np.float32)


CONDITIONS = {  # name -> (16 kHz clean wave -> (wave, its rate))
    "clean": lambda w: (w, SR),
    "clean, 48 kHz MP3": lambda w: (mp3(up48(w) * 0.5 / np.abs(w).max(), 48_000), 48_000),
    "clipped x2 at 48 kHz": lambda w: (hard_clip(up48(w), 2.0), 48_000),
    "clipped x8 at 48 kHz": lambda w: (hard_clip(up48(w), 8.0), 48_000),
    "clipped x8 at 48 kHz, MP3": lambda w: (mp3(hard_clip(up48(w), 8.0), 48_000), 48_000),
    "clipped x2 at 48 kHz, MP3": lambda w: (mp3(hard_clip(up48(w), 2.0), 48_000), 48_000),
    "noise 20 dB": lambda w: (with_noise(w, 20.0), SR),
    "noise 10 dB": lambda w: (with_noise(w, 10.0), SR),
    "noise 5 dB": lambda w: (with_noise(w, 5.0), SR),
    "noise 0 dB": lambda w: (with_noise(w, 0.0), SR),
    "telephone, 8 kHz file": lambda w: (soxr.resample(telephone(w), SR, 8000).astype(np.float32), 8000),
    "octave up (2x speed)": lambda w: (OCTAVE_UP["speed"](w), SR),
    "octave up (phase vocoder)": lambda w: (OCTAVE_UP["vocoder"](w), SR),
    "octave up (PSOLA, formants kept)": lambda w: (OCTAVE_UP["psola"](w), SR),
    "first 1 s": lambda w: (w[:SR].copy(), SR),
    "quiet, voice at -40 dBFS": lambda w: (at_level(w, -40.0), SR),
    "quiet, voice at -50 dBFS": lambda w: (at_level(w, -50.0), SR),
    "quiet, voice at -55 dBFS": lambda w: (at_level(w, -55.0), SR),
    "quiet, voice at -60 dBFS": lambda w: (at_level(w, -60.0), SR),
}


def answer(pipe: GenderPipeline, wave: np.ndarray, rate: int) -> dict:
    """What the pipeline does with a recording, keeping the raw probability too."""
    q = assess(wave, rate, pipe.quality_params)
    w16 = resample(wave, rate) if rate != SR else wave
    speech = join_segments(w16, pipe.segmenter.timestamps([w16], retry_below_s=pipe.min_speech_s)[0])
    if len(speech) < pipe.min_speech_s * SR:
        return {"p": np.nan, "notes": "no_speech", "p_gated": np.nan, "q": q}
    q = q.with_speech(len(speech) / SR, pipe.quality_params)
    x = pipe.features([speech])
    if pipe.classifier.shifted(x)[0]:  # the model's shift gate, as the pipeline applies it
        q = q.with_note("pitch_shifted", pipe.quality_params.pitch_shifted_cap)
    p = float(pipe.classifier.predict_proba(x)[0, 1])
    return {"p": p, "p_gated": q.shrink(p), "notes": ";".join(q.notes), "q": q}


def truth(p_male: float, gender: str) -> float:
    """The probability given to the true gender."""
    return p_male if gender == "male" else 1.0 - p_male


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", default="default", help="a run folder, or `default` (the shipped model)")
    ap.add_argument("--speakers", type=int, default=20, help="speakers of each gender")
    ap.add_argument("--children", type=int, default=20, help="speechocean762-dev children (clean)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    pipe = (GenderPipeline.from_run(RunFolder.resolve(args.run, "runs")))
    root = SHARED / "emotional-dev"
    m = pd.read_csv(root / "manifest.csv")
    neutral = m[m.path.str.contains("_NEU_")]
    speakers = neutral.groupby("speaker").gender.first().reset_index()
    picked = pd.concat([speakers[speakers.gender == g].sample(args.speakers, random_state=0)
                        for g in ("female", "male")])
    rows = []
    for speaker, gender in zip(picked.speaker, picked.gender):
        clean = np.concatenate([load_audio(root / p) for p in neutral[neutral.speaker == speaker].path])
        for name, make in CONDITIONS.items():
            a = answer(pipe, *make(clean))
            label = pipe.label_for(a["p_gated"]) if np.isfinite(a["p_gated"]) else "unknown"
            q = a["q"]
            rows.append(dict(condition=name, ok=truth(a["p"], gender) > 0.5, sure_wrong=truth(a["p"], gender) <= 0.1,
                             flagged=bool(a["notes"]), unknown=label == "unknown", gated_ok=label == gender,
                             gated_sure_wrong=truth(a["p_gated"], gender) <= 0.1, clip=q.clip_score, snr=q.snr_db,
                             high=q.high_band_db, f0=q.f0_hz, centroid=q.voice_centroid_hz, notes=a["notes"]))
        print(".", end="", flush=True, file=sys.stderr)
    df = pd.DataFrame(rows)
    order = list(CONDITIONS)
    table = df.groupby("condition", sort=False).apply(lambda d: pd.Series({
        "n": len(d), "accuracy": d.ok.mean(), "confident wrong": d.sure_wrong.mean(), "flagged": d.flagged.mean(),
        "unknown with checks": d.unknown.mean(),
        "accuracy of the rest": d.gated_ok.sum() / max(1, (~d.unknown).sum()),
        "confident wrong with checks": d.gated_sure_wrong.mean(),
        "notes": ", ".join(f"{k} {v}" for k, v in d.notes.str.split(";").explode().value_counts().items() if k)}),
        include_groups=False).loc[order]
    medians = df.groupby("condition", sort=False)[["clip", "snr", "high", "f0", "centroid"]].median().loc[order]
    pd.set_option("display.width", 250)
    pd.set_option("display.max_colwidth", 80)
    print(f"\nrun: {args.run}; emotional-dev (CREMA-D) neutral, {args.speakers} female + {args.speakers} male speakers")
    print(table.to_string(float_format=lambda v: f"{100 * v:.1f} %" if v <= 1 else f"{v:g}"))
    print("\nmedians of what assess() measured:")
    print(medians.round(3).to_string())
    so = SHARED / "speechocean762-dev"
    meta = pd.read_csv(so / "metadata.csv")
    kids = meta[meta.age_group == "child"].drop_duplicates("path").head(args.children)
    flags = [answer(pipe, load_audio(so / path), SR)["notes"].split(";") for path in kids.path]
    print(f"\nspeechocean762-dev children, clean: {len(flags)} clips, "
          f"flagged pitch_shifted {np.mean(['pitch_shifted' in f for f in flags]):.0%}, any note "
          f"{np.mean([f != [''] for f in flags]):.0%}")


if __name__ == "__main__":
    main()
