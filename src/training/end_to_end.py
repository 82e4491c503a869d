"""End-to-end training from audio (``model=melcnn``, ``model=crnn``, any network with
``kind: end_to_end``; :mod:`src.models.end_to_end` has the protocol it keeps).

Each clip is decoded once and its Silero speech kept in memory for the run
(:func:`src.data.speech.decode_speech`); the split is the same speaker-disjoint one as for
embeddings. :class:`EndToEndTask` is what :func:`src.training.loop.fit` trains: random crops of
the speech with a random gain and noise (:mod:`src.data.speech`), the classes balanced by the
trainer's ``balance`` setting, the gender loss plus the weighted age-band loss; at the end of each
epoch the batch-norm statistics are recomputed on clean training crops (:func:`refresh_batch_norm`)
and val is scored clip by clip, whole. Temperature scaling of the gender logits is fitted on val.

Writes the run folder every run writes (:func:`src.training.outputs.finish_run`) plus
``age_predictions.csv`` when the age head is on (:mod:`src.training.age_bands`).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from src.data.audio import SAMPLE_RATE_HZ
from src.data.manifest import Clip
from src.data.speech import SpeechParams, SpeechSet, augment, decode_speech, random_crop
from src.embeddings.dataset import DatasetError, EmbeddingSet
from src.evaluation.calibration import fit_temperature
from src.labels import CLASSES, SPLITS, class_index
from src.models.checkpoint import softmax
from src.models.end_to_end import save_end_to_end
from src.training.age_bands import (
    AGE_PREDICTIONS_NAME,
    AgeLabelError,
    age_labels,
    age_metrics,
    band_ages_years,
    check_ages,
    clip_age_arrays,
    write_age_predictions,
)
from src.training.loop import EpochResult, class_weights, epoch_batches, fit, seed_everything
from src.training.outputs import finish_run, run_metrics, split_metrics
from src.training.params import TrainerParams
from src.training.splits import make_splits

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AgeHeadParams:
    """The age head of an end-to-end network (``model.age_loss_weight``, ``model.age_bands``)."""

    age_loss_weight: float = 0.5  # 0: no age head
    age_bands: str = "auto"  # auto | age_group | decades


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
    """Weighted cross-entropy over the rows with a label (``y >= 0``); NaN when there is none."""
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
    from one epoch to the next (val accuracy 0.75 -> 0.50 -> 0.75). A network without batch norm
    is left as it is."""
    from torch.optim.swa_utils import update_bn

    batches = (torch.from_numpy(np.stack([random_crop(speech[i], crop_n, rng) for i in rows[k:k + batch_size]]))
               for k in range(0, len(rows), batch_size))
    update_bn(batches, model)


class EndToEndTask:
    """The hooks :func:`~src.training.loop.fit` calls for an end-to-end network (see the module docstring).

    Args:
        age: (N,) band labels (``-1`` unknown) or ``None`` without an age head.
        train, val: boolean masks over the clips.
    """

    def __init__(self, model: nn.Module, speech: list[np.ndarray], y: np.ndarray, age: np.ndarray | None,
                 train: np.ndarray, val: np.ndarray, params: TrainerParams, sp: SpeechParams,
                 age_loss_weight: float, seed: int = 0):
        self.model, self.speech, self.y, self.age = model, speech, y, age
        self.batch_size, self.aug, self.age_loss_weight = params.batch_size, sp.augment, age_loss_weight
        self.rng = np.random.default_rng(seed)
        self.tr_idx, self.va_idx = np.flatnonzero(train), np.flatnonzero(val)
        w = class_weights(y[self.tr_idx], len(CLASSES))
        self.gender_loss = nn.CrossEntropyLoss(weight=torch.tensor(w, dtype=torch.float32)
                                               if params.balance == "weighted_loss" else None)
        self.sample_w = w[y[self.tr_idx]] if params.balance == "sampler" else None
        self.age_loss, self.age_w = None, None
        if age is not None:
            k = int(age.max()) + 1
            known = age[self.tr_idx][age[self.tr_idx] >= 0]
            # square root of the inverse-frequency weights: full balancing let a band of 2 speakers
            # (speechocean762's teens) take over the head
            self.age_w = np.sqrt(len(known) / (k * np.maximum(np.bincount(known, minlength=k), 1)))
            self.age_loss = nn.CrossEntropyLoss(weight=torch.tensor(self.age_w, dtype=torch.float32), ignore_index=-1)
        self.crop_n = int(round(sp.crop_s * SAMPLE_RATE_HZ))
        self.sums: Counter = Counter()

    def train_batches(self, gen: torch.Generator) -> list[torch.Tensor]:
        self.sums = Counter()
        return epoch_batches(len(self.tr_idx), self.batch_size, gen, self.sample_w)

    def compute_objectives(self, batch: torch.Tensor) -> torch.Tensor:
        """Forward pass of augmented crops; gender loss plus the weighted age loss."""
        rows = self.tr_idx[batch.numpy()]
        x = torch.from_numpy(np.stack([augment(random_crop(self.speech[i], self.crop_n, self.rng), self.aug, self.rng)
                                       for i in rows]))
        yt = torch.from_numpy(self.y[rows]).long()
        gl, al = self.model(x)
        loss = self.gender_loss(gl, yt)
        self.sums["gender"] += loss.item() * len(rows)
        self.sums["correct"] += int((gl.argmax(1) == yt).sum())
        self.sums["n"] += len(rows)
        if self.age_loss is not None and self.age_loss_weight > 0:
            at = torch.from_numpy(self.age[rows]).long()
            if (at >= 0).any():
                la = self.age_loss(al, at)
                self.sums["age"] += la.item() * int((at >= 0).sum())
                self.sums["age_n"] += int((at >= 0).sum())
                loss = loss + self.age_loss_weight * la
        return loss

    def on_stage_end(self, epoch: int) -> EpochResult:
        """Batch norm refreshed, val scored; early stopping watches gender + weight x age (where val has ages)."""
        sums, va_idx = self.sums, self.va_idx
        refresh_batch_norm(self.model, self.speech, self.tr_idx, self.crop_n, self.batch_size, self.rng)
        gv, av = predict_logits(self.model, [self.speech[i] for i in va_idx])
        tl, ta = sums["gender"] / max(sums["n"], 1), sums["correct"] / max(sums["n"], 1)
        vl = _weighted_ce(gv, self.y[va_idx], class_weights(self.y[va_idx], len(CLASSES)))
        va = float((gv.argmax(1) == self.y[va_idx]).mean())
        val_age_loss = _weighted_ce(av, self.age[va_idx], self.age_w) if av is not None else float("nan")
        stop_loss = vl + self.age_loss_weight * val_age_loss if np.isfinite(val_age_loss) else vl
        scalars = {}
        if av is not None:
            known = self.age[va_idx] >= 0
            if sums["age_n"]:
                scalars["age_loss/train"] = sums["age"] / sums["age_n"]
            if known.any():
                scalars["age_accuracy/val"] = float((av[known].argmax(1) == self.age[va_idx][known]).mean())
                scalars["age_loss/val"] = val_age_loss
                scalars["loss/val_total"] = stop_loss
        log.info("epoch %d: train loss %.4f acc %.3f, val loss %.4f acc %.3f%s", epoch, tl, ta, vl, va,
                 f", val age acc {scalars['age_accuracy/val']:.3f}" if "age_accuracy/val" in scalars else "")
        return EpochResult(tl, ta, vl, va, stop_loss, scalars)


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


def end_to_end_run(clips: list[Clip], segmenter, run_dir: str | Path,
                   make_model: Callable[[int], tuple[nn.Module, str, dict]], params: TrainerParams,
                   sp: SpeechParams, age: AgeHeadParams, seed: int = 0, val_frac: float = 0.15,
                   test_frac: float = 0.15, threshold: float = 0.5, source: str = "the manifest",
                   encoder_meta: dict | None = None, info: dict | None = None) -> dict:
    """Decode, split, train, calibrate and evaluate; returns the metrics written to ``metrics.json``.

    Args:
        segmenter: the VAD (:class:`src.vad.silero.SileroSegmenter`).
        make_model: ``n_age_bands -> (network, import path of its class, its kwargs)``.
        source: names the manifest in error messages.

    Raises:
        AgeLabelError: ``age_loss_weight > 0`` and no clip has an age or an age group.
        DatasetError: no usable clip, or a split without both classes.
    """
    from torch.utils.tensorboard import SummaryWriter

    check_ages(clips, age.age_loss_weight, age.age_bands, source)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    ss = decode_speech(clips, segmenter, sp.min_clip_s, sp.min_speech_s, sp.max_duration_s)
    if not ss.clips:
        raise DatasetError(f"{source}: no usable clip among {len(clips)} ({ss.skipped})")
    data = speech_set_arrays(ss)
    splits, counts = make_splits(data, val_frac, test_frac, seed)
    tr, va = splits == "train", splits == "val"
    ages = age_labels(*clip_age_arrays(ss.clips), age.age_bands) if age.age_loss_weight > 0 else None
    if ages is not None and not (ages.known & tr).any():
        raise AgeLabelError(f"age_loss_weight>0 but no training clip of {source} has an age or age_group; "
                            f"set model.age_loss_weight=0")
    seed_everything(seed)
    model, target, kwargs = make_model(len(ages.bands) if ages else 0)
    encoder_meta = {**(encoder_meta or {}), "dim": int(model.gender_head.in_features)}  # the trunk's features
    writer = SummaryWriter(log_dir=str(run_dir))
    seed_everything(seed)
    task = EndToEndTask(model, ss.speech, data.y, ages.labels if ages else None, tr, va, params, sp,
                        age.age_loss_weight, seed)
    hist = fit(task, params, seed, writer)
    g_logits, a_logits = predict_logits(model, ss.speech)
    temperature = fit_temperature(g_logits[va], data.y[va])
    p_raw, p_cal = softmax(g_logits), softmax(g_logits / temperature)
    metrics: dict[str, Any] = run_metrics(info, encoder_meta, seed, counts, params, data.y[tr], hist, temperature,
                                          threshold, p_cal[tr], left_out=ss.skipped, augment=asdict(sp.augment),
                                          end_to_end={**asdict(sp), **asdict(age)})
    split_metrics(metrics, data, splits, p_raw, p_cal, threshold)
    log_extra = ""
    if ages is not None:
        band_age = band_ages_years(ages, data.age, tr)
        a_pred = a_logits.argmax(1)
        metrics["age"] = {
            "bands": ages.bands, "source": ages.source, "loss_weight": age.age_loss_weight,
            "band_age_years": band_age,
            "mae_method": "the predicted band's median training age (decades with none: the band midpoint) "
                          "against the clip's age; clips with a numeric age only",
            **{s: age_metrics(ages.labels[splits == s], a_pred[splits == s], data.age[splits == s], ages.bands,
                              band_age) for s in SPLITS}}
        for s in ("val", "test"):
            if metrics["age"][s]["accuracy"] is not None:
                writer.add_scalar(f"final/age_accuracy_{s}", metrics["age"][s]["accuracy"], max(hist.epochs, 1))
        write_age_predictions(run_dir / AGE_PREDICTIONS_NAME, data, splits, ages, a_pred, softmax(a_logits))
        log_extra = f"; age accuracy {metrics['age']['test']['accuracy']}, MAE {metrics['age']['test']['mae_years']} y"
    return finish_run(run_dir, writer, data, splits, p_raw, p_cal, metrics, hist.epochs,
                      lambda path: save_end_to_end(path, model, target, kwargs, temperature, threshold, list(CLASSES),
                                                   ages.bands if ages else [], encoder_meta or {}, hist.__dict__),
                      log_extra=log_extra)
