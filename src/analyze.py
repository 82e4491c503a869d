"""``python -m src.analyze run=<run_dir>``: listen to the mistakes and look at the embeddings.

Writes
* ``post-analysis/<encoder>/{train,val,test}/``: a copy of every misclassified clip named
  ``<true>_as_<predicted>_p<confidence>_<file>`` and ``index.csv`` (most confident first);
* ``<embeddings_dir>/<encoder>-embeddings.png``: UMAP coloured by gender, mistakes ringed (an
  end-to-end run: ``<run>/<model>-embeddings.png``, of its trained trunk's features);
* ``<run>/reliability.png`` and ``<run>/accuracy_by_duration.png``.

``run=default`` (the shipped model has no predictions of its own) analyses each ``python -m
src.evaluate run=default data=<source>`` instead: ``post-analysis/default/eval-<source>/`` and the
two plots in ``<paths.runs_dir>/shipped-default/eval-<source>/``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig

from src.analysis.mistakes import dump_mistakes
from src.analysis.umap_plot import umap_2d, umap_figure
from src.cli import verb
from src.embeddings.dataset import load_embedding_set
from src.evaluate import run_inputs
from src.evaluation.plots import duration_figure, reliability_figure, save
from src.inference.run_folder import RunFolder
from src.labels import class_index
from src.models.run_folder import METRICS_NAME, PREDICTIONS_NAME, RunError

log = logging.getLogger(__name__)


def analyze_run(run: RunFolder | str | Path, analysis_dir: str | Path, copy_audio: bool = True, umap: bool = True,
                umap_neighbors: int = 15, seed: int = 0) -> dict[str, Path]:
    """Dump mistakes and draw the plots for one finished run; returns what was written. A model with no
    predictions of its own (a shipped model) is analysed on its evaluations (:func:`analyze_evaluations`)."""
    run = RunFolder.open(run)
    log.info("model: %s (%s)", run.name, run.dir)
    if not run.has_predictions():
        return analyze_evaluations(run, analysis_dir, copy_audio)
    preds = run.predictions()
    written = {"mistakes": Path(analysis_dir) / run.key}
    dump_mistakes(preds, written["mistakes"], copy_audio)
    test = preds[preds["split"] == "test"]
    y = np.array([class_index(g) for g in test["gender"]])
    written["reliability"] = run.dir / "reliability.png"
    save(reliability_figure(y, test["p_male_uncalibrated"].to_numpy(float), test["p_male"].to_numpy(float),
                            f"{run.key}: test reliability (T={run.metrics['temperature']:.2f})"),
         written["reliability"])
    written["duration"] = run.dir / "accuracy_by_duration.png"
    save(duration_figure({s: run.metrics[s]["accuracy_by_duration"] for s in ("val", "test")},
                         f"{run.key}: accuracy by speech duration"), written["duration"])
    if umap:
        if run.metrics.get("embeddings_dir"):
            emb_dir = Path(run.metrics["embeddings_dir"])
            data = load_embedding_set(emb_dir, run.key)
            written["umap"] = emb_dir / f"{run.key}-embeddings.png"
        else:  # a run that reads audio (end to end): its trunk's features of its own clips
            data = run_inputs(run, run.config.data, name=run.metrics["data"])[1]
            written["umap"] = run.dir / f"{run.key}-embeddings.png"
        wrong_ids = set(preds.loc[preds["correct"].astype(int) == 0, "id"])
        umap_figure(umap_2d(data.x, umap_neighbors, seed=seed), data.y, np.isin(data.ids, list(wrong_ids)),
                    f"{run.key} embeddings ({run.metrics['data']}), UMAP", written["umap"])
    for k, v in written.items():
        log.info("%s: %s", k, v)
    return written


def analyze_evaluations(run: RunFolder, analysis_dir: str | Path, copy_audio: bool = True) -> dict[str, Path]:
    """The mistakes, reliability and accuracy by duration of each ``python -m src.evaluate`` of ``run``
    (its ``eval-<source>/`` folders): what there is to analyse of a model that has no predictions of its
    own (a shipped model, fitted in cross-validation: its card has the figures). Mistakes go to
    ``<analysis_dir>/<model>/eval-<source>/``, the plots beside the evaluation's predictions.

    Raises:
        RunError: no evaluation of the model yet.
    """
    evals = sorted(p.parent for p in run.out_dir.glob(f"eval-*/{PREDICTIONS_NAME}"))
    if not evals:
        named = run.name if run.is_shipped else str(run.dir)
        raise RunError(f"{run.name} has no {PREDICTIONS_NAME} of its own and no evaluation under {run.out_dir}: "
                       f"run `python -m src.evaluate run={named} data=<source>` first")
    written = {}
    for d in evals:
        source = d.name[len("eval-"):]
        preds = pd.read_csv(d / PREDICTIONS_NAME, keep_default_na=False)
        scores = json.loads((d / METRICS_NAME).read_text())["all"]
        written[f"mistakes-{source}"] = Path(analysis_dir) / run.name / d.name
        dump_mistakes(preds, written[f"mistakes-{source}"], copy_audio)
        y = np.array([class_index(g) for g in preds["gender"]])
        written[f"reliability-{source}"] = d / "reliability.png"
        save(reliability_figure(y, preds["p_male_uncalibrated"].to_numpy(float), preds["p_male"].to_numpy(float),
                                f"{run.name} on {source}: reliability"), written[f"reliability-{source}"])
        written[f"duration-{source}"] = d / "accuracy_by_duration.png"
        save(duration_figure({source: scores["accuracy_by_duration"]},
                             f"{run.name} on {source}: accuracy by speech duration"), written[f"duration-{source}"])
    for k, v in written.items():
        log.info("%s: %s", k, v)
    return written


@verb("analyze")
def main(cfg: DictConfig) -> None:
    analyze_run(RunFolder.resolve(cfg.run, cfg.paths.runs_dir), cfg.paths.analysis_dir, cfg.copy_audio, cfg.umap,
                cfg.umap_neighbors, cfg.seed)


if __name__ == "__main__":
    main()
