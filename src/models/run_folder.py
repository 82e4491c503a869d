"""Reading finished run folders back: config, checkpoint, metrics, predictions."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from src.models.checkpoint import CHECKPOINT_NAME, END_TO_END, TrainedClassifier
from src.models.loading import LoadedModel, load_model

METRICS_NAME = "metrics.json"  # written last: a run folder without it is not finished
PREDICTIONS_NAME = "predictions.csv"


class RunError(ValueError):
    """A run folder that is missing, unfinished or unreadable."""


@dataclass
class Run:
    """A finished training run."""

    dir: Path
    config: DictConfig
    metrics: dict

    @property
    def encoder(self) -> str:
        """The key the run is named and found by: its encoder's, or an end-to-end model's name
        (the ``run_key`` of ``conf/train.yaml``)."""
        model = self.config.get("model") or {}
        if model.get("kind") == END_TO_END:
            return str(model.get("name"))
        return str(self.config.encoder.name)

    @property
    def model(self) -> str:
        """The ``model=`` key it was trained with (older runs: the class name, or empty)."""
        return str(self.metrics.get("model", ""))

    def model_files(self) -> LoadedModel:
        """The checkpoint, loaded whatever its kind."""
        return load_model(self.dir / CHECKPOINT_NAME)

    def classifier(self) -> TrainedClassifier:
        """The trained classifier (an end-to-end run's: its calibrated gender head)."""
        return self.model_files().classifier

    def predictions(self) -> "pd.DataFrame":  # noqa: F821 (pandas is imported here only, on use)
        import pandas as pd

        return pd.read_csv(self.dir / PREDICTIONS_NAME, keep_default_na=False)


def open_run(run_dir: str | Path) -> Run:
    """Open a run folder; an unfinished one (no ``metrics.json``) is an error."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunError(f"no run folder {run_dir}")
    if not (run_dir / METRICS_NAME).exists() or not (run_dir / CHECKPOINT_NAME).exists():
        raise RunError(f"{run_dir} is not a finished run (no {METRICS_NAME} or {CHECKPOINT_NAME}); "
                       f"it may have crashed or still be training")
    return Run(run_dir, OmegaConf.load(run_dir / "config.yaml"), json.loads((run_dir / METRICS_NAME).read_text()))


def _finished_runs(runs_dir: str | Path) -> list[Run]:
    """Every finished run under ``runs_dir`` named ``<encoder>-<YYYY-MM-DD_HH-MM-SS>``, oldest first."""
    runs = []
    for d in Path(runs_dir).glob("*-????-??-??_??-??-??"):
        try:
            runs.append(open_run(d))
        except RunError:
            continue
    return sorted(runs, key=lambda r: r.dir.name[len(r.encoder) + 1:])


def latest_runs(runs_dir: str | Path) -> dict[str, Run]:
    """The newest finished run of each encoder under ``runs_dir``."""
    return {r.encoder: r for r in _finished_runs(runs_dir)}


def latest_runs_by_model(runs_dir: str | Path) -> dict[tuple[str, str], Run]:
    """The newest finished run of each (encoder, model) pair under ``runs_dir``."""
    return {(r.encoder, r.model): r for r in _finished_runs(runs_dir)}


def resolve_run(run: str | Path, runs_dir: str | Path) -> Path:
    """A run folder from ``run``: a path, ``latest`` (newest finished run of any encoder) or
    ``latest:<encoder>``."""
    text = str(run)
    if text != "latest" and not text.startswith("latest:"):  # a folder may be called latest-something
        return Path(text)
    encoder = text.split(":", 1)[1] if ":" in text else None
    runs = latest_runs(runs_dir)
    if encoder is not None:
        runs = {k: v for k, v in runs.items() if k == encoder}
    if not runs:
        raise RunError(f"no finished run{' of ' + encoder if encoder else ''} under {runs_dir}: "
                       f"train one with `python -m src.train`")
    return max(runs.values(), key=lambda r: r.dir.name[len(r.encoder) + 1:]).dir
