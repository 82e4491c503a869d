"""What a run folder holds and when it is finished: the names training writes and
:class:`src.inference.run_folder.RunFolder` reads back, the one "finished" rule, and the run key.

A run folder is finished when it holds all of :data:`FINISHED_FILES`: the checkpoint, the config it
was trained with, and ``metrics.json`` (written last). The shipped models under ``models/`` hold
the same three.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from src.models.checkpoint import CHECKPOINT_NAME
from src.settings import run_key as settings_run_key

CONFIG_NAME = "config.yaml"
METRICS_NAME = "metrics.json"  # written last: a run folder without it is not finished
PREDICTIONS_NAME = "predictions.csv"
FINISHED_FILES = (CHECKPOINT_NAME, CONFIG_NAME, METRICS_NAME)
RUN_NAME_GLOB = "*-????-??-??_??-??-??"  # <key>-<YYYY-MM-DD_HH-MM-SS>, as `python -m src.train` names it


class RunError(ValueError):
    """A run folder that is missing, unfinished or unreadable."""


def check_finished(run_dir: str | Path) -> Path:
    """``run_dir`` as a path, checked to be a finished run folder.

    Raises:
        RunError: no such folder, or one that lacks any of :data:`FINISHED_FILES`.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunError(f"no run folder {run_dir}")
    missing = [name for name in FINISHED_FILES if not (run_dir / name).is_file()]
    if missing:
        raise RunError(f"{run_dir} is not a finished run (no {' or '.join(missing)}); it may have crashed "
                       f"or still be training")
    return run_dir


def is_finished(run_dir: str | Path) -> bool:
    """True when ``run_dir`` holds every one of :data:`FINISHED_FILES`."""
    return all((Path(run_dir) / name).is_file() for name in FINISHED_FILES)


def run_key(config: Mapping) -> str:
    """The key a run with this saved ``config.yaml`` is named and found by: :func:`src.settings.run_key`
    (the rule the ``${run_key:...}`` resolver of ``conf/train.yaml`` names the folder with)."""
    model = config.get("model") or {}
    encoder = (config.get("encoder") or {}).get("name")
    return str(settings_run_key(str(model.get("kind") or ""), str(model.get("name")), str(encoder)))
