"""A study: every system trained on one source with the same speaker-disjoint splits and seeds,
then applied to other sources (cross-corpus), summarised as mean +- sd over seeds.

The steps are run by the ``python -m src.study`` verb; this module holds what they produce:
the result of a system and the tables (the cross-corpus one and the leave-one-corpus-out one).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from src.models.run_folder import METRICS_NAME

log = logging.getLogger(__name__)

@dataclass
class SystemResult:
    """One system's runs (one per seed) and why it could not run, if it could not."""

    name: str
    run_dirs: list[Path] = field(default_factory=list)
    unavailable: str | None = None


def _mean_sd(values: list[float | None], scale: float = 100.0, digits: int = 1) -> str:
    """``95.4 ± 4.7`` (fractions as percent by default) over the seeds that have the value; one
    value: no ``±``."""
    v = np.array([x for x in values if x is not None], float) * scale
    if not len(v):
        return ""
    return f"{v.mean():.{digits}f}" + (f" ± {v.std(ddof=1):.{digits}f}" if len(v) > 1 else "")


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


LOCO_AGE_GROUPS = ("adult", "child", "teen")


def _selective(metrics: dict, group: str | None, value: str | None) -> dict:
    if group is None:
        return metrics["selective"]
    return metrics.get("selective_by_group", {}).get(group, {}).get(value) or {}


def loco_rows(result: SystemResult, corpus: str) -> list[dict]:
    """The rows of one system with one corpus left out: every clip of the corpus, then each age
    group apart; mean ± sd over seeds of the forced answers' balanced accuracy (accuracy where the
    group holds one gender), ECE, the share answered (coverage), the accuracy of the answered
    clips and the share of confident answers (top p >= 0.9) that are wrong."""
    runs = [json.loads((d / METRICS_NAME).read_text())["test"] for d in result.run_dirs]
    rows = []
    for label, group, value in [("all", None, None), *[(g, "age_group", g) for g in LOCO_AGE_GROUPS]]:
        sel = [_selective(m, group, value) for m in runs]
        if not any(sel):
            continue
        balanced = [s.get("balanced_accuracy") for s in sel]
        use_balanced = all(b is not None for b in balanced)
        rows.append({
            "system": result.name, "left out": corpus, "clips": f"{label} ({sel[0].get('n', 0)})",
            "balanced acc.": _mean_sd(balanced if use_balanced else [s.get("accuracy") for s in sel])
            + ("" if use_balanced else " (acc.)"),
            "ECE": _mean_sd([s.get("ece") for s in sel], scale=1.0, digits=3),
            "coverage": _mean_sd([s.get("coverage") for s in sel]),
            "answered acc.": _mean_sd([s.get("answered_accuracy") for s in sel]),
            "confident wrong": _mean_sd([s.get("confident_wrong") for s in sel]),
            "confident answers": f"{np.mean([s.get('n_confident', 0) for s in sel]):.0f}"})
    return rows


def loco_table(results: dict[str, list[SystemResult]]) -> pd.DataFrame:
    """One block of rows per (left-out corpus, system): see :func:`loco_rows`; a system that could
    not run gets one row saying why."""
    rows = []
    for corpus, per_system in results.items():
        for r in per_system:
            if r.unavailable:
                rows.append({"system": r.name, "left out": corpus, "note": f"not run: {r.unavailable}"})
            elif r.run_dirs:
                rows.extend(loco_rows(r, corpus))
    return pd.DataFrame(rows).fillna("")
