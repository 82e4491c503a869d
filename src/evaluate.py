"""``python -m src.evaluate run=<run_dir> data=<source>``: apply a trained run to another
source's embeddings (a cross-corpus test); an end-to-end run (``model=melcnn``, ``crnn``) to its audio.

    python -m src.extract encoder=resemblyzer data=speechocean762      # embeddings first
    python -m src.evaluate run=runs/resemblyzer-2026-11-21_12-00-00 data=speechocean762

Writes ``<run>/eval-<data.name>/metrics.json`` and ``predictions.csv``. ``run=default`` (the
shipped model; its encoder's embeddings extracted first) writes them under
``<paths.runs_dir>/shipped-default/eval-<data.name>/`` instead: never into ``models/``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from src.cli import verb
from src.data.files import write_json_atomic
from src.embeddings.dataset import EmbeddingSet, load_embedding_set
from src.embeddings.store import read_meta
from src.evaluation.metrics import full_metrics
from src.evaluation.predictions import answer_columns, write_predictions
from src.inference.run_folder import RunFolder
from src.models.checkpoint import TrainedClassifier
from src.models.run_folder import METRICS_NAME, PREDICTIONS_NAME

log = logging.getLogger(__name__)


def evaluate_run(run: RunFolder | str | Path, embeddings_dir: str | Path, name: str,
                 data_cfg: DictConfig | None = None) -> dict:
    """Score every usable clip of ``embeddings_dir`` with the run's classifier; a run that reads
    audio (an end-to-end network) scores ``data_cfg``'s audio instead (decoded and cut as in its training).

    Returns the metrics (also written to ``<run>/eval-<name>/``; a shipped model's: under its
    :attr:`RunFolder.out_dir`).
    """
    run = RunFolder.open(run)
    log.info("model: %s (%s)", run.name, run.dir)
    clf, data, source = run_inputs(run, data_cfg, embeddings_dir, name)
    p_raw, p_cal = clf.predict_proba(data.x, calibrated=False), clf.predict_proba(data.x)
    answers = answer_columns(clf, data.x, p_cal)
    metrics = {"run": str(run.dir), "encoder": run.key, "data": name, "source": source,
               "all": full_metrics(data.y, p_raw, p_cal, clf.threshold, data.speech_s, data.groups,
                                   answers["answered"].astype(bool))}
    out = run.out_dir / f"eval-{name}"
    out.mkdir(parents=True, exist_ok=True)
    write_predictions(out / PREDICTIONS_NAME, data, np.full(len(data), "eval"), p_raw[:, 1], p_cal[:, 1],
                      clf.threshold, answers)
    write_json_atomic(out / METRICS_NAME, metrics)
    a = metrics["all"]
    log.info("%s on %s: accuracy %.4f, balanced accuracy %.4f, ECE %.4f; by group: %s", run.key, name,
             a["accuracy"], a["balanced_accuracy"] or float("nan"), a["ece"],
             {g: {k: round(v["accuracy"], 3) for k, v in d.items()} for g, d in a["accuracy_by_group"].items()})
    return metrics


def run_inputs(run: RunFolder, data_cfg: DictConfig | None, embeddings_dir: str | Path | None = None,
               name: str | None = None) -> tuple[TrainedClassifier, EmbeddingSet, str]:
    """The run's classifier, the source's clips as its inputs, and where they came from: stored
    embeddings checked to come from the run's encoder, or (a run that reads audio) ``data_cfg``'s
    audio decoded, VAD-cut and left out by the run's own rules, through the run's trunk."""
    rm = run.load(with_encoder=False)
    if not rm.reads_audio:
        return rm.classifier, _stored_inputs(run, rm.classifier, embeddings_dir), str(embeddings_dir)
    if data_cfg is None or not data_cfg.get("manifest_path"):
        raise ValueError(f"{run.dir} is an end-to-end run: it is evaluated on audio, and data={name} has none")
    from src.building import load_clips
    from src.data.speech import SpeechParams, decode_speech
    from src.training.end_to_end import speech_set_arrays

    saved = run.metrics.get("end_to_end", {})
    sp = SpeechParams(**{k: saved[k] for k in ("min_clip_s", "min_speech_s", "max_duration_s") if k in saved})
    ss = decode_speech(load_clips(data_cfg), rm.segmenter(), sp.min_clip_s, sp.min_speech_s, sp.max_duration_s)
    if not ss.clips:
        raise ValueError(f"{data_cfg.manifest_path}: no usable clip ({ss.skipped})")
    data = speech_set_arrays(ss)
    data.x = rm.encoder.embed(ss.speech)
    return rm.classifier, data, str(data_cfg.manifest_path)


def _stored_inputs(run: RunFolder, clf: TrainedClassifier, embeddings_dir: str | Path) -> EmbeddingSet:
    """The source's stored embeddings, checked to come from the run's encoder."""
    data = load_embedding_set(embeddings_dir, run.key, both_classes=False)  # a one-gender source is fine
    meta = read_meta(embeddings_dir, run.key)
    trained_on = clf.encoder.get("weights")
    if trained_on and meta.get("weights") != trained_on:
        raise ValueError(f"{embeddings_dir} was embedded with {meta.get('weights')!r} but the run was "
                         f"trained on {trained_on!r}: re-extract with the same encoder weights")
    if meta.get("config_hash") != clf.encoder.get("config_hash"):
        log.warning("embedding options differ from the run's (config hash %s vs %s)",
                    meta.get("config_hash"), clf.encoder.get("config_hash"))
    return data


@verb("evaluate")
def main(cfg: DictConfig) -> None:
    evaluate_run(RunFolder.resolve(cfg.run, cfg.paths.runs_dir), cfg.paths.embeddings_dir, cfg.data.name, cfg.data)


if __name__ == "__main__":
    main()
