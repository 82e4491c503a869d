"""End-to-end training from audio (``encoder=melcnn``): decode, VAD, crop, augment, train, calibrate.

Each clip is decoded once (:func:`~src.data.audio.load_audio`), its Silero speech kept in
memory for the run; the split is the same speaker-disjoint one as for embeddings
(:func:`~src.training.splits.assign_splits`). Training sees random crops of the speech
(a random time shift) with a random gain and Gaussian noise at a random SNR, and the
classes balanced by the trainer's ``balance`` setting; validation and test see each clip
whole. After each epoch the batch-norm statistics are recomputed on clean training crops
(:func:`refresh_batch_norm`); early stopping is on the val loss that is trained (gender, plus
the weighted age loss when there is an age head); temperature scaling of the gender logits is
fitted on val.

Optional age head: one label per clip from the manifest's ``age_group`` (child / teen /
adult) or decade bands of the numeric ``age``; clips without either are masked out of
the age loss. The age is predicted as a band; the MAE in years takes each band's median
training age (``decades`` without training ages in a band: its midpoint) as the prediction.

Writes the same run folder as :func:`src.training.run.train_run` (TensorBoard events,
``best.pt``, ``predictions.csv``, ``metrics.json`` last) plus ``age_predictions.csv`` when
the age head is on. ``best.pt`` holds the whole network; :func:`src.models.melcnn.load_end_to_end`
splits it into an encoder (the conv trunk) and a classifier (the gender head) for ``GenderPipeline``.
"""

from __future__ import annotations

import csv
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from src.data.audio import SAMPLE_RATE_HZ, AudioError, load_audio
from src.data.manifest import Clip
from src.labels import CLASSES, SPLITS, class_index
from src.models.checkpoint import CHECKPOINT_NAME, softmax
from src.training.calibration import fit_temperature
from src.training.dataset import DatasetError, EmbeddingSet
from src.training.loop import EarlyStopping, History, TrainerParams, _batches, class_weights, seed_everything
from src.training.metrics import core_metrics, full_metrics
from src.training.run import _log_to_tensorboard, write_json_atomic, write_predictions
from src.training.runs import METRICS_NAME, PREDICTIONS_NAME
from src.training.splits import make_splits
from src.vad.silero import SileroSegmenter

log = logging.getLogger(__name__)

AGE_PREDICTIONS_NAME = "age_predictions.csv"
AGE_GROUPS = ("child", "teen", "adult")  # in this order; other age_group values follow, sorted
AGE_GROUP_FROM_YEARS = ((13.0, "child"), (18.0, "teen"), (float("inf"), "adult"))  # upper bounds, exclusive
DECODE_CHUNK_CLIPS = 64


class AgeLabelError(DatasetError):
    """An age head asked for on a manifest without ages."""


@dataclass(frozen=True)
class AugmentParams:
    """On-the-fly augmentation of training crops (``encoder.augment``)."""

    noise_prob: float = 0.8
    snr_db_min: float = 5.0
    snr_db_max: float = 40.0
    gain_db_max: float = 6.0


@dataclass(frozen=True)
class EndToEndParams:
    """What the end-to-end run needs beside the optimiser settings."""

    crop_s: float = 2.0
    min_clip_s: float = 0.5
    min_speech_s: float = 0.25
    max_duration_s: float = 600.0
    age_loss_weight: float = 0.5
    age_bands: str = "auto"  # auto | age_group | decades


# ----------------------------------------------------------------------------------------- ages


@dataclass
class AgeLabels:
    """Per-clip age-band labels (``-1`` unknown), the band names and how they were made."""

    labels: np.ndarray
    bands: list[str]
    source: str  # age_group | decades

    @property
    def known(self) -> np.ndarray:
        return self.labels >= 0


def _group_from_years(age: float) -> str:
    return next(name for upper, name in AGE_GROUP_FROM_YEARS if age < upper)


def age_labels(age_group: np.ndarray, age: np.ndarray, mode: str = "auto") -> AgeLabels | None:
    """Band labels from ``age_group`` strings (empty = unknown) and ages in years (NaN = unknown).

    ``auto`` uses ``age_group`` when any clip has one (a clip with an age but no group gets
    the group of its age), else decade bands of ``age``. Returns ``None`` when no clip has either.
    """
    has_group, has_age = age_group != "", np.isfinite(age)
    if mode == "auto":
        mode = "age_group" if has_group.any() else "decades"
    if mode not in ("age_group", "decades"):
        raise ValueError(f"age_bands={mode!r}: auto, age_group or decades")
    if mode == "age_group":
        names = np.where(has_group, age_group, [(_group_from_years(a) if np.isfinite(a) else "") for a in age])
        present = set(names.tolist()) - {""}
        bands = [g for g in AGE_GROUPS if g in present] + sorted(present - set(AGE_GROUPS))
    else:
        names = np.array([f"{int(a // 10) * 10}-{int(a // 10) * 10 + 9}" if np.isfinite(a) else "" for a in age])
        bands = sorted(set(names.tolist()) - {""}, key=lambda b: int(b.split("-")[0]))
    if not bands:
        return None
    index = {b: i for i, b in enumerate(bands)}
    return AgeLabels(np.array([index.get(n, -1) for n in names.tolist()], int), bands, mode)


def band_ages_years(ages: AgeLabels, age: np.ndarray, train: np.ndarray) -> list[float | None]:
    """The age in years each band stands for: the median training age in it; for a decade
    band with no training age its midpoint; else ``None`` (no MAE for clips predicted there)."""
    out: list[float | None] = []
    for b, name in enumerate(ages.bands):
        a = age[train & (ages.labels == b) & np.isfinite(age)]
        if len(a):
            out.append(float(np.median(a)))
        elif ages.source == "decades":
            out.append(float(name.split("-")[0]) + 4.5)
        else:
            out.append(None)
    return out


def age_metrics(true: np.ndarray, pred: np.ndarray, age: np.ndarray, bands: list[str],
                band_age: list[float | None]) -> dict:
    """Accuracy overall and per band (recall), confusion matrix, and the MAE in years of the
    predicted band's age where a numeric age is known."""
    m = true >= 0
    t, p = true[m], pred[m]
    out: dict[str, Any] = {"n": int(m.sum()), "accuracy": float((t == p).mean()) if m.any() else None}
    out["per_band"] = {b: {"n": int((t == i).sum()),
                           "accuracy": float((p[t == i] == i).mean()) if (t == i).any() else None}
                       for i, b in enumerate(bands)}
    recalls = [v["accuracy"] for v in out["per_band"].values() if v["accuracy"] is not None]
    out["balanced_accuracy"] = float(np.mean(recalls)) if recalls else None
    out["confusion_matrix"] = [[int(((t == i) & (p == j)).sum()) for j in range(len(bands))]
                               for i in range(len(bands))]
    pred_age = np.array([band_age[j] if band_age[j] is not None else np.nan for j in pred], float)
    has = np.isfinite(age) & np.isfinite(pred_age)
    out["n_with_age"] = int(has.sum())
    out["mae_years"] = float(np.abs(pred_age[has] - age[has]).mean()) if has.any() else None
    return out


# ----------------------------------------------------------------------------------- audio


@dataclass
class SpeechSet:
    """The usable clips' speech (16 kHz mono float32), row-aligned with ``clips``."""

    clips: list[Clip]
    speech: list[np.ndarray]
    skipped: dict[str, int]


def decode_speech(clips: list[Clip], segmenter: SileroSegmenter, min_clip_s: float, min_speech_s: float,
                  max_duration_s: float) -> SpeechSet:
    """Decode every clip once and keep its Silero speech; bad files are counted, not fatal."""
    kept: list[Clip] = []
    speech: list[np.ndarray] = []
    skipped: Counter = Counter()
    for start in range(0, len(clips), DECODE_CHUNK_CLIPS):
        chunk, waves = [], []
        for c in clips[start:start + DECODE_CHUNK_CLIPS]:
            try:
                w = load_audio(c.path, SAMPLE_RATE_HZ, max_duration_s)
            except AudioError as e:
                skipped[e.reason] += 1
                continue
            if len(w) < min_clip_s * SAMPLE_RATE_HZ:
                skipped["too_short"] += 1
                continue
            chunk.append(c)
            waves.append(w - np.float32(w.mean(dtype=np.float64)))
        for c, s in zip(chunk, segmenter.speech_only(waves)):
            if len(s) < min_speech_s * SAMPLE_RATE_HZ:
                skipped["no_speech"] += 1
                continue
            kept.append(c)
            speech.append(np.ascontiguousarray(s, np.float32))
    if skipped:
        log.info("left out %s", dict(skipped))
    return SpeechSet(kept, speech, dict(skipped))


def tile_to(wave: np.ndarray, n: int) -> np.ndarray:
    """Repeat ``wave`` until it has at least ``n`` samples."""
    return wave if len(wave) >= n else np.tile(wave, -(-n // len(wave)))


def random_crop(wave: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` samples from a random offset (shorter speech is tiled from a random phase first)."""
    if len(wave) < n:
        wave = np.roll(tile_to(wave, n + len(wave)), -int(rng.integers(len(wave))))
    start = int(rng.integers(len(wave) - n + 1))
    return wave[start:start + n]


def augment(crop: np.ndarray, p: AugmentParams, rng: np.random.Generator) -> np.ndarray:
    """Random gain (uniform dB), then white Gaussian noise at a uniform random SNR (with ``noise_prob``)."""
    out = crop * np.float32(10 ** (rng.uniform(-p.gain_db_max, p.gain_db_max) / 20))
    if rng.random() < p.noise_prob:
        snr_db = rng.uniform(p.snr_db_min, p.snr_db_max)
        power = float(np.mean(out.astype(np.float64) ** 2)) + 1e-12
        out = out + rng.standard_normal(len(out)).astype(np.float32) * np.float32(np.sqrt(power / 10 ** (snr_db / 10)))
    return out.astype(np.float32, copy=False)


# -------------------------------------------------------------------------------- training


@torch.inference_mode()
def predict_logits(model: nn.Module, speech: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
    """Gender (N, 2) and age-band (N, K) logits, each clip whole (one per forward pass)."""
    model.eval()
    g, a = [], []
    for s in speech:
        gl, al = model(torch.from_numpy(s)[None])
        g.append(gl[0].numpy())
        if al is not None:
            a.append(al[0].numpy())
    return np.stack(g), (np.stack(a) if a else None)


def _weighted_ce(logits: np.ndarray, y: np.ndarray, weights: np.ndarray) -> float:
    """Weighted cross-entropy over the rows with a label (``y >= 0``); NaN when there is none.
    The val losses of the end-to-end trainer (as the embeddings loop computes its own)."""
    known = y >= 0
    if not known.any():
        return float("nan")
    t = y[known]
    lp = np.log(np.clip(softmax(logits[known]), 1e-12, 1.0))[np.arange(len(t)), t]
    return float(-(weights[t] * lp).sum() / weights[t].sum())


@torch.no_grad()
def refresh_batch_norm(model: nn.Module, speech: list[np.ndarray], rows: np.ndarray, crop_n: int, batch_size: int,
                       rng: np.random.Generator) -> None:
    """Recompute the batch-norm statistics with the epoch's final weights on clean (not augmented)
    training crops, before evaluating. The running averages of training lagged behind weights that
    move fast on a few hundred clips and came from noisy crops: val predictions flipped wholesale
    from one epoch to the next (val accuracy 0.75 -> 0.50 -> 0.75)."""
    from torch.optim.swa_utils import update_bn

    batches = (torch.from_numpy(np.stack([random_crop(speech[i], crop_n, rng) for i in rows[k:k + batch_size]]))
               for k in range(0, len(rows), batch_size))
    update_bn(batches, model)


def train_network(model: nn.Module, speech: list[np.ndarray], y: np.ndarray, age: np.ndarray | None,
                  train: np.ndarray, val: np.ndarray, params: TrainerParams, e2e: EndToEndParams,
                  aug: AugmentParams, seed: int = 0, writer=None) -> History:
    """Train in place; at the end ``model`` holds the weights of the best val loss.

    Args:
        age: (N,) band labels (``-1`` unknown) or ``None`` without an age head.
        train, val: boolean masks over the clips.
    """
    from src.training.loop import _make_optimizer

    seed_everything(seed)
    gen, rng = torch.Generator().manual_seed(seed), np.random.default_rng(seed)
    tr_idx, va_idx = np.flatnonzero(train), np.flatnonzero(val)
    w = class_weights(y[tr_idx], len(CLASSES))
    gender_loss = nn.CrossEntropyLoss(weight=torch.tensor(w, dtype=torch.float32)
                                      if params.balance == "weighted_loss" else None)
    sample_w = w[y[tr_idx]] if params.balance == "sampler" else None
    age_loss, aw = None, None
    if age is not None:
        k = int(age.max()) + 1
        known = age[tr_idx][age[tr_idx] >= 0]
        # square root of the inverse-frequency weights: full balancing let a band of 2 speakers
        # (speechocean762's teens) take over the head
        aw = np.sqrt(len(known) / (k * np.maximum(np.bincount(known, minlength=k), 1)))
        age_loss = nn.CrossEntropyLoss(weight=torch.tensor(aw, dtype=torch.float32), ignore_index=-1)
    crop_n = int(round(e2e.crop_s * SAMPLE_RATE_HZ))
    opt = _make_optimizer(model, params)
    hist = History()
    stopper = EarlyStopping(model, hist, params.patience, params.min_delta)
    for epoch in range(1, params.max_epochs + 1):
        model.train()
        sums = Counter()
        for batch in _batches(len(tr_idx), params.batch_size, gen, sample_w):
            rows = tr_idx[batch.numpy()]
            x = torch.from_numpy(np.stack([augment(random_crop(speech[i], crop_n, rng), aug, rng) for i in rows]))
            yt = torch.from_numpy(y[rows]).long()
            opt.zero_grad()
            gl, al = model(x)
            loss = gender_loss(gl, yt)
            sums["gender"] += loss.item() * len(rows)
            sums["correct"] += int((gl.argmax(1) == yt).sum())
            sums["n"] += len(rows)
            if age_loss is not None and e2e.age_loss_weight > 0:
                at = torch.from_numpy(age[rows]).long()
                if (at >= 0).any():
                    la = age_loss(al, at)
                    sums["age"] += la.item() * int((at >= 0).sum())
                    sums["age_n"] += int((at >= 0).sum())
                    loss = loss + e2e.age_loss_weight * la
            loss.backward()
            opt.step()
        refresh_batch_norm(model, speech, tr_idx, crop_n, params.batch_size, rng)
        gv, av = predict_logits(model, [speech[i] for i in va_idx])
        tl, ta = sums["gender"] / max(sums["n"], 1), sums["correct"] / max(sums["n"], 1)
        vl = _weighted_ce(gv, y[va_idx], class_weights(y[va_idx], len(CLASSES)))
        va = float((gv.argmax(1) == y[va_idx]).mean())
        val_age_loss = _weighted_ce(av, age[va_idx], aw) if av is not None else float("nan")
        # early stopping watches the loss being trained: gender + weight x age (where val has ages)
        stop_loss = vl + e2e.age_loss_weight * val_age_loss if np.isfinite(val_age_loss) else vl
        for name, v in (("train_loss", tl), ("val_loss", vl), ("train_acc", ta), ("val_acc", va)):
            getattr(hist, name).append(v)
        scalars = {"loss/train": tl, "loss/val": vl, "accuracy/train": ta, "accuracy/val": va,
                   "lr": opt.param_groups[0]["lr"]}
        if av is not None:
            known = age[va_idx] >= 0
            if sums["age_n"]:
                scalars["age_loss/train"] = sums["age"] / sums["age_n"]
            if known.any():
                scalars["age_accuracy/val"] = float((av[known].argmax(1) == age[va_idx][known]).mean())
                scalars["age_loss/val"] = val_age_loss
                scalars["loss/val_total"] = stop_loss
        if writer is not None:
            for name, v in scalars.items():
                writer.add_scalar(name, v, epoch)
        log.info("epoch %d: train loss %.4f acc %.3f, val loss %.4f acc %.3f%s", epoch, tl, ta, vl, va,
                 f", val age acc {scalars['age_accuracy/val']:.3f}" if "age_accuracy/val" in scalars else "")
        if stopper.update(stop_loss, epoch):
            break
    stopper.restore_best()
    return hist


def speech_set_arrays(ss: SpeechSet) -> EmbeddingSet:
    """The clips as an :class:`EmbeddingSet` without vectors (``x`` is (N, 0)), for splits and outputs."""
    c = ss.clips
    groups = sorted({g for clip in c for g in clip.groups})
    return EmbeddingSet(
        x=np.zeros((len(c), 0), np.float32), y=np.array([class_index(x.gender) for x in c], int),
        ids=np.array([x.id for x in c]), paths=np.array([str(x.path) for x in c]),
        speakers=np.array([x.speaker for x in c]),
        speech_s=np.array([len(s) / SAMPLE_RATE_HZ for s in ss.speech]),
        split=np.array([x.split or "" for x in c]),
        age=np.array([x.age if x.age is not None else np.nan for x in c], float),
        groups={g: np.array([x.groups.get(g, "") for x in c]) for g in groups})


def _clip_age_arrays(clips: list[Clip]) -> tuple[np.ndarray, np.ndarray]:
    return (np.array([(c.groups.get("age_group") or "").strip() for c in clips]),
            np.array([c.age if c.age is not None else np.nan for c in clips], float))


def check_ages(clips: list[Clip], e2e: EndToEndParams, source: str) -> None:
    """Fail early (before any decoding) when the age head is asked for and no clip has an age."""
    if e2e.age_loss_weight > 0 and age_labels(*_clip_age_arrays(clips), e2e.age_bands) is None:
        raise AgeLabelError(f"age_loss_weight>0 but {source} has no age or age_group values; "
                            f"set model.age_loss_weight=0")


def write_age_predictions(path: Path, data: EmbeddingSet, splits: np.ndarray, ages: AgeLabels,
                          pred: np.ndarray, proba: np.ndarray) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "split", "age", "age_band", "predicted_band", "p_predicted_band"])
        for i in range(len(data)):
            w.writerow([data.ids[i], splits[i], "" if np.isnan(data.age[i]) else f"{data.age[i]:g}",
                        ages.bands[ages.labels[i]] if ages.labels[i] >= 0 else "", ages.bands[pred[i]],
                        f"{proba[i, pred[i]]:.6f}"])


def end_to_end_run(clips: list[Clip], segmenter: SileroSegmenter, run_dir: str | Path,
                   make_model: Callable[[int], tuple[nn.Module, str, dict]], params: TrainerParams,
                   e2e: EndToEndParams, aug: AugmentParams, seed: int = 0, val_frac: float = 0.15,
                   test_frac: float = 0.15, threshold: float = 0.5, source: str = "the manifest",
                   encoder_meta: dict | None = None, info: dict | None = None) -> dict:
    """Decode, split, train, calibrate and evaluate; returns the metrics written to ``metrics.json``.

    Args:
        make_model: ``n_age_bands -> (network, import path of its class, its kwargs)``.
        source: names the manifest in error messages.

    Raises:
        AgeLabelError: ``age_loss_weight > 0`` and no clip has an age or an age group.
        DatasetError: no usable clip, or a split without both classes.
    """
    from torch.utils.tensorboard import SummaryWriter

    check_ages(clips, e2e, source)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    ss = decode_speech(clips, segmenter, e2e.min_clip_s, e2e.min_speech_s, e2e.max_duration_s)
    if not ss.clips:
        raise DatasetError(f"{source}: no usable clip among {len(clips)} ({ss.skipped})")
    data = speech_set_arrays(ss)
    splits, counts = make_splits(data, val_frac, test_frac, seed)
    tr, va = splits == "train", splits == "val"
    ages = age_labels(*_clip_age_arrays(ss.clips), e2e.age_bands) if e2e.age_loss_weight > 0 else None
    if ages is not None and not (ages.known & tr).any():
        raise AgeLabelError(f"age_loss_weight>0 but no training clip of {source} has an age or age_group; "
                            f"set model.age_loss_weight=0")
    seed_everything(seed)
    model, target, kwargs = make_model(len(ages.bands) if ages else 0)
    writer = SummaryWriter(log_dir=str(run_dir))
    hist = train_network(model, ss.speech, data.y, ages.labels if ages else None, tr, va, params, e2e, aug,
                         seed=seed, writer=writer)
    g_logits, a_logits = predict_logits(model, ss.speech)
    temperature = fit_temperature(g_logits[va], data.y[va])
    p_raw, p_cal = softmax(g_logits), softmax(g_logits / temperature)
    metrics: dict[str, Any] = {
        **(info or {}), "encoder": encoder_meta or {}, "seed": seed, "splits": counts, "left_out": ss.skipped,
        "balance": params.balance, "class_weights": class_weights(data.y[tr], len(CLASSES)).tolist(),
        "epochs": hist.epochs, "best_epoch": hist.best_epoch, "best_val_loss": hist.best_val_loss,
        "stopped_early": hist.stopped_early, "temperature": temperature, "threshold": threshold,
        "augment": asdict(aug), "end_to_end": asdict(e2e),
        "train": core_metrics(data.y[tr], p_cal[tr], threshold)}
    for s in ("val", "test"):
        m = splits == s
        metrics[s] = full_metrics(data.y[m], p_raw[m], p_cal[m], threshold, data.speech_s[m],
                                  {g: v[m] for g, v in data.groups.items()})
    if ages is not None:
        band_age = band_ages_years(ages, data.age, tr)
        a_pred = a_logits.argmax(1)
        metrics["age"] = {
            "bands": ages.bands, "source": ages.source, "loss_weight": e2e.age_loss_weight,
            "band_age_years": band_age,
            "mae_method": "the predicted band's median training age (decades with none: the band midpoint) "
                          "against the clip's age; clips with a numeric age only",
            **{s: age_metrics(ages.labels[splits == s], a_pred[splits == s], data.age[splits == s], ages.bands,
                              band_age) for s in SPLITS}}
        for s in ("val", "test"):
            if metrics["age"][s]["accuracy"] is not None:
                writer.add_scalar(f"final/age_accuracy_{s}", metrics["age"][s]["accuracy"], max(hist.epochs, 1))
        write_age_predictions(run_dir / AGE_PREDICTIONS_NAME, data, splits, ages, a_pred, softmax(a_logits))
    _log_to_tensorboard(writer, data, splits, p_cal[:, 1], metrics, max(hist.epochs, 1))
    writer.close()
    blob = {"kind": "end_to_end", "model_target": target, "model_kwargs": kwargs,
            "state_dict": model.state_dict(), "classes": list(CLASSES), "temperature": temperature,
            "threshold": threshold, "encoder": encoder_meta or {},
            "age_bands": ages.bands if ages else [], "history": hist.__dict__}
    tmp = run_dir / (CHECKPOINT_NAME + ".tmp")
    torch.save(blob, tmp)
    tmp.replace(run_dir / CHECKPOINT_NAME)
    write_predictions(run_dir / PREDICTIONS_NAME, data, splits, p_raw[:, 1], p_cal[:, 1], threshold)
    write_json_atomic(metrics, run_dir / METRICS_NAME)
    log.info("test: accuracy %.4f, balanced accuracy %s, ECE %.4f -> %.4f after T=%.2f (%d epochs)%s",
             metrics["test"]["accuracy"], metrics["test"]["balanced_accuracy"],
             metrics["test"]["ece_before_calibration"], metrics["test"]["ece"], temperature, hist.epochs,
             f"; age accuracy {metrics['age']['test']['accuracy']}, MAE {metrics['age']['test']['mae_years']} y"
             if ages is not None else "")
    return metrics
