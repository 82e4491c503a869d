"""``python -m src.evaluate run=<run_dir> data=<source>``: apply a trained run to another
source's embeddings (a cross-corpus test).

    python -m src.extract encoder=resemblyzer data=speechocean762      # embeddings first
    python -m src.evaluate run=runs/resemblyzer-2026-11-21_12-00-00 data=speechocean762

Writes ``<run>/eval-<data.name>/metrics.json`` and ``predictions.csv``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
import numpy as np
from omegaconf import DictConfig

from src.embeddings.store import read_meta
from src.training.dataset import load_embedding_set
from src.training.metrics import full_metrics
from src.training.run import METRICS_NAME, PREDICTIONS_NAME, write_json_atomic, write_predictions
from src.training.runs import open_run, resolve_run

log = logging.getLogger(__name__)


def evaluate_run(run_dir: str | Path, embeddings_dir: str | Path, name: str) -> dict:
    """Score every usable clip of ``embeddings_dir`` with the run's classifier.

    Returns the metrics (also written to ``<run>/eval-<name>/``).
    """
    run = open_run(run_dir)
    clf = run.classifier()
    data = load_embedding_set(embeddings_dir, run.encoder, both_classes=False)  # a one-gender source is fine
    meta = read_meta(embeddings_dir, run.encoder)
    trained_on = clf.encoder.get("weights")
    if trained_on and meta.get("weights") != trained_on:
        raise ValueError(f"{embeddings_dir} was embedded with {meta.get('weights')!r} but the run was "
                         f"trained on {trained_on!r}: re-extract with the same encoder weights")
    if meta.get("config_hash") != clf.encoder.get("config_hash"):
        log.warning("embedding options differ from the run's (config hash %s vs %s)",
                    meta.get("config_hash"), clf.encoder.get("config_hash"))
    p_raw, p_cal = clf.predict_proba(data.x, calibrated=False), clf.predict_proba(data.x)
    metrics = {"run": str(run.dir), "encoder": run.encoder, "data": name, "embeddings_dir": str(embeddings_dir),
               "all": full_metrics(data.y, p_raw, p_cal, clf.threshold, data.speech_s, data.groups)}
    out = run.dir / f"eval-{name}"
    out.mkdir(exist_ok=True)
    write_predictions(out / PREDICTIONS_NAME, data, np.full(len(data), "eval"), p_raw[:, 1], p_cal[:, 1],
                      clf.threshold)
    write_json_atomic(metrics, out / METRICS_NAME)
    a = metrics["all"]
    log.info("%s on %s: accuracy %.4f, balanced accuracy %.4f, ECE %.4f; by group: %s", run.encoder, name,
             a["accuracy"], a["balanced_accuracy"] or float("nan"), a["ece"],
             {g: {k: round(v["accuracy"], 3) for k, v in d.items()} for g, d in a["accuracy_by_group"].items()})
    return metrics


@hydra.main(version_base="1.3", config_path="pkg://conf", config_name="evaluate")
def main(cfg: DictConfig) -> None:
    evaluate_run(resolve_run(cfg.run, cfg.paths.runs_dir), cfg.paths.embeddings_dir, cfg.data.name)


if __name__ == "__main__":
    main()
