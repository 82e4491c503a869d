"""A study: every system trained on one source with the same speaker-disjoint splits and seeds,
then applied to other sources (cross-corpus), summarised as mean +- sd over seeds.

Each step is one of the verbs' functions (extract, train, evaluate) on a config composed like
the verb's own, so a study run is the same as typing the commands. Finished steps are
skipped on a rerun (embeddings resume, a run folder with ``metrics.json`` is kept, an
evaluation with its ``metrics.json`` too), so a killed study goes on where it stopped. A
system whose encoder cannot be loaded here (hub weights without network access) gets a row
that says why, and the study goes on.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig

from src.training.runs import METRICS_NAME

log = logging.getLogger(__name__)

Compose = Callable[[str, Sequence[str]], DictConfig]  # (config name, overrides) -> config


@dataclass
class SystemResult:
    """One system's runs (one per seed) and why it could not run, if it could not."""

    name: str
    run_dirs: list[Path] = field(default_factory=list)
    unavailable: str | None = None


def run_system(name: str, overrides: Sequence[str], compose: Compose, train_data: str, eval_data: Sequence[str],
               seeds: Sequence[int], out_dir: Path) -> SystemResult:
    """Extract (when the encoder has embeddings), train one run per seed, evaluate each run on
    every ``eval_data`` source; skip what is already done."""
    from src.encoders.base import EncoderLoadError
    from src.evaluate import evaluate_run
    from src.extract import run_extract
    from src.train import run_train

    result = SystemResult(name)
    end_to_end = bool(compose("train", [*overrides, f"data={train_data}"]).encoder.get("end_to_end"))
    encoder_overrides = [o for o in overrides if o.split("=", 1)[0].lstrip("+").startswith("encoder")]
    try:
        if not end_to_end:
            for data in dict.fromkeys([train_data, *eval_data]):
                run_extract(compose("extract", [*encoder_overrides, f"data={data}", "progress=false"]))
    except EncoderLoadError as e:
        result.unavailable = re.split(r"[.;] ", str(e).splitlines()[0])[0]  # the reason; the how-to is in the log
        log.warning("%s: not run: %s", name, result.unavailable)
        return result
    for seed in seeds:
        run_dir = out_dir / name / f"seed{seed}"
        cfg = compose("train", [*overrides, f"data={train_data}", f"seed={seed}"])
        if not (run_dir / METRICS_NAME).exists():
            log.info("%s seed %d: training", name, seed)
            run_train(cfg, run_dir)
        for data in eval_data:
            if not (run_dir / f"eval-{data}" / METRICS_NAME).exists():
                data_cfg = compose("train", [*overrides, f"data={data}"])
                evaluate_run(run_dir, data_cfg.paths.embeddings_dir, data, data_cfg.data)
        result.run_dirs.append(run_dir)
    return result


def _mean_sd(values: list[float | None], scale: float = 100.0) -> str:
    """``95.4 ± 4.7`` (fractions as percent by default) over the seeds that have the value; one
    value: no ``±``."""
    v = np.array([x for x in values if x is not None], float) * scale
    if not len(v):
        return ""
    return f"{v.mean():.1f}" + (f" ± {v.std(ddof=1):.1f}" if len(v) > 1 else "")


def _group_accuracy(metrics: dict, group: str, value: str) -> float | None:
    return metrics["accuracy_by_group"].get(group, {}).get(value, {}).get("accuracy")


def study_row(result: SystemResult, train_data: str, eval_data: Sequence[str],
              groups: dict[str, dict[str, list[str]]]) -> dict:
    """The table row of one system: test accuracy on the training source's held-out speakers
    (and per group value, e.g. ``test child``), the same on each other source, and the age head's
    test figures when the runs have one."""
    row: dict[str, str | int] = {"system": result.name, "seeds": len(result.run_dirs)}
    if result.unavailable:
        row["note"] = f"not run: {result.unavailable}"
        return row
    runs = [json.loads((d / METRICS_NAME).read_text()) for d in result.run_dirs]
    row["test accuracy"] = _mean_sd([m["test"]["accuracy"] for m in runs])
    row["test balanced acc."] = _mean_sd([m["test"]["balanced_accuracy"] for m in runs])
    for group, values in groups.get(train_data, {}).items():
        for value in values:
            row[f"test {value}"] = _mean_sd([_group_accuracy(m["test"], group, value) for m in runs])
    for data in eval_data:
        evals = [json.loads((d / f"eval-{data}" / METRICS_NAME).read_text())["all"] for d in result.run_dirs]
        row[f"{data} accuracy"] = _mean_sd([e["accuracy"] for e in evals])
        for group, values in groups.get(data, {}).items():
            for value in values:
                row[f"{data} {value}"] = _mean_sd([_group_accuracy(e, group, value) for e in evals])
    if all("age" in m for m in runs):
        ages = [m["age"]["test"] for m in runs]
        row["age test accuracy"] = _mean_sd([a["accuracy"] for a in ages])
        row["age test balanced acc."] = _mean_sd([a["balanced_accuracy"] for a in ages])
        row["age test MAE (years)"] = _mean_sd([a["mae_years"] for a in ages], scale=1.0)
    row["note"] = ""
    return row


def study_table(results: list[SystemResult], train_data: str, eval_data: Sequence[str],
                groups: dict[str, dict[str, list[str]]]) -> pd.DataFrame:
    """One row per system, in the order given; the note last; columns empty in every row dropped
    (e.g. a group value no test split holds)."""
    table = pd.DataFrame([study_row(r, train_data, eval_data, groups) for r in results]).fillna("")
    table = table[[c for c in table.columns if c != "note"] + ["note"]]
    return table.loc[:, (table != "").any()]
