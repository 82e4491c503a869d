"""Fit, measure and ship the shipped model's shift gate: a flag for voices pitched up an octave.

    python scripts/train_shift_gate.py [--model models/default] [--data ../shared/data] [--dry-run]

A man raised an octave is a voice the model was never shown; it called most of them female with
confidence (the hostile-input probe: ``female 0.96``). The gate is a logistic regression on the
model's own normalised features (so it costs nothing at inference), fitted on

- natural clips: one clip per speaker of every shared set (``dev``, both ``speechocean762`` sets
  with their children, CREMA-D's acted emotions), its first 8 s, plus another clip of the same
  speaker through one random stress condition (telephone, codecs, noise, babble, reverb, tempo, a
  man raised 2-6 semitones: natural channels and styles are not "shifted"), against
- the men's clips raised an octave three ways (:data:`src.data.stress.OCTAVE_UP`: PSOLA with the
  formants kept, a phase vocoder, twice the speed), each at the clip's own level.

It is measured by speaker-grouped 5-fold cross-validation with the threshold set inside each
training fold (the ``1 - --natural-flagged`` quantile of the training speakers' own out-of-fold
natural scores), so no number below was chosen on the speakers it is reported on; and once per
method left out of training (does it catch a shifting tool it never saw?). The gate fitted on all
speakers, with its threshold from their out-of-fold scores, goes into ``<model>/best.pt``; the table
into ``metrics.json`` (``shift_gate``) and the model card. The features are cached under
``--cache`` (resumable: a killed run keeps what it computed).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd

REPO_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_DIR))

from src.data.audio import SAMPLE_RATE_HZ, load_audio  # noqa: E402
from src.data.stress import CONDITIONS, OCTAVE_UP, stress  # noqa: E402
from src.inference.pipeline import GenderPipeline, joined_speech  # noqa: E402
from src.labels import CLASSES  # noqa: E402
from src.models.checkpoint import ShiftGate, TrainedClassifier  # noqa: E402
from src.vad.silero import speech_samples  # noqa: E402

SETS = ("dev", "speechocean762-dev", "speechocean762-extra", "emotional-dev")
CLIP_S = 8.0
MIN_SPEECH_S = 0.5
CARD_BEGIN, CARD_END = "<!-- shift-gate -->", "<!-- /shift-gate -->"


def speakers(data: Path) -> pd.DataFrame:
    """Two clips per speaker (one natural, one degraded; the same one when a speaker has one), with
    set, gender and age group (speechocean762's metadata; the other sets are adults)."""
    rows = []
    for name in SETS:
        m = pd.read_csv(data / name / "manifest.csv")
        meta = data / name / "metadata.csv"
        age = {}
        if meta.exists():
            md = pd.read_csv(meta)
            if "age_group" in md:
                age = dict(zip(md.path, md.age_group))
        for spk, g in m.groupby("speaker", sort=True):
            pick = g.sample(min(2, len(g)), random_state=0)
            rows.append({"set": name, "speaker": spk, "gender": g.gender.iloc[0], "age_group": age.get(
                pick.path.iloc[0], "adult"), "path": pick.path.iloc[0], "path2": pick.path.iloc[-1]})
    return pd.DataFrame(rows)


def level_like(v: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``v`` at ``w``'s peak level (under 0.9), so a shift never adds clipping."""
    peak = float(np.max(np.abs(v))) if len(v) else 0.0
    return (v * (min(0.9, float(np.max(np.abs(w)))) / peak) if peak > 0 else v).astype(np.float32)


def features(pipe: GenderPipeline, spk: pd.DataFrame, data: Path, cache: Path) -> pd.DataFrame:
    """One row per (speaker, kind) with the model's feature vector ``x``; cached per speaker."""
    from tqdm import tqdm

    cache.mkdir(parents=True, exist_ok=True)
    conditions = sorted(CONDITIONS)
    out = []
    for i, r in enumerate(tqdm(list(spk.itertuples()), desc="clips", unit="speaker")):
        path = cache / f"{r.speaker}.npz"
        if not path.exists():
            rng = np.random.default_rng(i)
            w = load_audio(data / r.set / r.path)[: int(CLIP_S * SAMPLE_RATE_HZ)]
            w2 = load_audio(data / r.set / r.path2)[: int(CLIP_S * SAMPLE_RATE_HZ)]
            cond = conditions[int(rng.integers(len(conditions)))]
            waves = {"natural": w, f"degraded:{cond}": stress(w2, cond, rng, r.gender, others=[w])}
            if r.gender == "male":
                waves.update({f"octave:{k}": level_like(f(w), w) for k, f in OCTAVE_UP.items()})
            kinds, xs = [], []
            for kind, v in waves.items():
                seg = pipe.segmenter.timestamps([v])[0]
                if speech_samples(seg) >= MIN_SPEECH_S * SAMPLE_RATE_HZ:
                    kinds.append(kind)
                    xs.append(pipe.encoder.embed([joined_speech(v, seg)])[0])
            tmp = path.with_suffix(".part.npz")
            np.savez(tmp, kinds=np.array(kinds), x=np.array(xs, np.float32).reshape(len(xs), -1))
            tmp.replace(path)
        z = np.load(path)
        for kind, x in zip(z["kinds"], z["x"]):
            out.append({"set": r.set, "speaker": r.speaker, "gender": r.gender, "age_group": r.age_group,
                        "kind": str(kind), "x": x})
    return pd.DataFrame(out)


def fit(z: np.ndarray, y: np.ndarray, c: float):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=c, max_iter=5000, class_weight="balanced").fit(z, y)


def cross_scores(z, y, groups, c: float, folds: int = 5) -> np.ndarray:
    """Out-of-fold decision values, speaker-grouped."""
    from sklearn.model_selection import GroupKFold

    s = np.full(len(z), np.nan)
    for tr, te in GroupKFold(folds).split(z, groups=groups):
        s[te] = fit(z[tr], y[tr], c).decision_function(z[te])
    return s


def nested_flags(z, y, natural, train_mask, groups, c: float, rate: float, folds: int = 5) -> np.ndarray:
    """Flags of every row from a gate fitted on the other speakers (rows in ``train_mask`` only),
    its threshold the ``1 - rate`` quantile of those speakers' own out-of-fold natural scores."""
    from sklearn.model_selection import GroupKFold

    flags = np.zeros(len(z), bool)
    for tr, te in GroupKFold(folds).split(z, groups=groups):
        tr = tr[train_mask[tr]]
        inner = cross_scores(z[tr], y[tr], groups[tr], c, folds)
        threshold = np.quantile(inner[natural[tr]], 1.0 - rate)
        flags[te] = fit(z[tr], y[tr], c).decision_function(z[te]) > threshold
    return flags


def who(df: pd.DataFrame) -> pd.Series:
    corpus = df.set.map({"dev": "dev", "emotional-dev": "CREMA-D"}).fillna("speechocean762")
    return df.age_group + " " + df.gender + np.where(df.age_group == "adult", " (" + corpus + ")", "")


def measure(df: pd.DataFrame, z: np.ndarray, p_male: np.ndarray, c: float, rate: float) -> tuple[pd.DataFrame, dict]:
    """The table (rows of voices: clips, % flagged, % the model alone called female) and, per
    shifting method left out of training, the % of its men flagged."""
    y = df.kind.str.startswith("octave:").to_numpy()
    natural = ~y
    groups = df.speaker.to_numpy()
    flags = nested_flags(z, y, natural, np.ones(len(df), bool), groups, c, rate)
    d = df.assign(flagged=flags, female=p_male < 0.5, who=who(df),
                  kind_group=df.kind.str.replace(r"^degraded:.*", "degraded", regex=True))
    rows = []
    for kind, g in d[d.kind.str.startswith("octave:")].groupby("kind"):
        rows.append({"voices": f"men raised an octave, {kind.split(':')[1]}", "clips": len(g),
                     "flagged %": round(100 * g.flagged.mean(), 1),
                     "called female without the gate %": round(100 * g.female.mean(), 1)})
    for (kg, w), g in d[~y].groupby(["kind_group", "who"]):
        rows.append({"voices": f"{kg} {w}", "clips": len(g), "flagged %": round(100 * g.flagged.mean(), 1)})
    nat = d[~y]
    rows.append({"voices": "all natural clips (clean and degraded)", "clips": len(nat),
                 "flagged %": round(100 * nat.flagged.mean(), 1)})
    held = {}
    for method in OCTAVE_UP:  # a shifting tool the gate never saw
        keep = ~df.kind.eq(f"octave:{method}").to_numpy()
        f = nested_flags(z, y, natural, keep, groups, c, rate)
        held[method] = round(100 * float(f[df.kind.eq(f"octave:{method}").to_numpy()].mean()), 1)
    return pd.DataFrame(rows), held


def card_section(table: pd.DataFrame, held: dict, c: float, rate: float, n_speakers: int) -> str:
    lines = ["| voices | clips | flagged | called female without the gate |", "|---|---:|---:|---:|"]
    lines += [f"| {r.voices} | {r.clips} | {r._3:.1f} % | {'' if pd.isna(r._4) else f'{r._4:.1f} %'} |"
              for r in table.itertuples()]
    flagged = float(table["flagged %"].iloc[-1])
    return "\n".join([
        CARD_BEGIN,
        "## Voices pitched up an octave (the shift gate)",
        "",
        "A man raised an octave is answered `unknown` with `quality: [\"pitch_shifted\"]`: the model",
        "calls most such voices female. The gate is a logistic regression (C = "
        f"{c:g}) on the model's own features, fitted on {n_speakers} speakers' natural clips (clean and",
        "through one random stress condition each) against their men raised an octave three ways;",
        f"its threshold flags {100 * rate:g} % of the training speakers' natural clips out of fold.",
        "Measured by speaker-grouped 5-fold cross-validation, the threshold set inside each training fold",
        "(`python scripts/train_shift_gate.py`):",
        "",
        *lines,
        "",
        "A shifting method left out of training altogether (the gate fitted on the other two): " + ", ".join(
            f"{k} {v:.1f} %" for k, v in held.items()) + " of those men flagged: a tool unlike all three,",
        "above all one that keeps the formants as PSOLA does, may pass. The speed and vocoder rows have",
        "fewer clips: the VAD finds no speech in some of those men's clips (answered `no_speech`). Men raised",
        "less than an octave and women raised were not fitted for and are not measured here; a flagged natural",
        f"voice is answered `unknown` ({flagged:.1f} % of the natural clips above).",
        CARD_END,
    ])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=REPO_DIR / "models" / "default")
    ap.add_argument("--data", type=Path, default=REPO_DIR.parent / "shared" / "data")
    ap.add_argument("--cache", type=Path, default=REPO_DIR / "models-embeddings" / "shift-gate")
    ap.add_argument("--c", type=float, default=0.03, help="inverse regularisation strength")
    ap.add_argument("--natural-flagged", type=float, default=0.01, help="share of natural clips flagged")
    ap.add_argument("--dry-run", action="store_true", help="measure only; leave the model as it is")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    if not (args.data / "dev" / "manifest.csv").exists():
        sys.exit(f"error: no shared data at {args.data} (--data)")
    pipe = GenderPipeline.from_run(args.model)
    spk = speakers(args.data)
    df = features(pipe, spk, args.data, args.cache / pipe.model_name)
    clf: TrainedClassifier = pipe.classifier
    z = clf.normalise(np.stack(df.x.to_numpy()))
    p_male = clf.predict_proba(np.stack(df.x.to_numpy()))[:, CLASSES.index("male")]
    table, held = measure(df, z, p_male, args.c, args.natural_flagged)
    print(table.to_string(index=False))
    print("method left out of training, flagged %:", held)
    y = df.kind.str.startswith("octave:").to_numpy()
    scores = cross_scores(z, y, df.speaker.to_numpy(), args.c)
    threshold = float(np.quantile(scores[~y], 1.0 - args.natural_flagged))
    final = fit(z, y, args.c)
    gate = ShiftGate(final.coef_[0].astype(np.float64), float(final.intercept_[0]), threshold,
                     float(np.mean(scores[~y] > threshold)))
    if args.dry_run:
        return
    from src.models.checkpoint import read_checkpoint

    extra = read_checkpoint(args.model / "best.pt").get("extra", {})
    clf.shift = gate
    clf.save(args.model / "best.pt", extra=extra)
    metrics_path = args.model / "metrics.json"
    metrics = json.loads(metrics_path.read_text())
    metrics["shift_gate"] = {"c": args.c, "natural_flagged": args.natural_flagged, "threshold": threshold,
                             "table": table.to_dict(orient="records"), "method_left_out_flagged_pct": held}
    metrics_path.write_text(json.dumps(metrics, indent=1) + "\n")
    card = args.model / "MODEL_CARD.md"
    text = card.read_text()
    section = card_section(table, held, args.c, args.natural_flagged, df.speaker.nunique())
    if CARD_BEGIN in text:
        text = re.sub(re.escape(CARD_BEGIN) + ".*?" + re.escape(CARD_END), lambda _: section, text, flags=re.S)
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    card.write_text(text)
    print(f"gate written to {args.model / 'best.pt'} (threshold {threshold:.3f}); card and metrics updated")


if __name__ == "__main__":
    main()
