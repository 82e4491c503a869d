"""Tables of cross-validated metrics (:func:`src.training.cv_metrics.summary`): clean clips by age
group and corpus, each stress condition, the emotional clips, the age router; balanced accuracy
with its 95 % speaker-bootstrap interval."""

from __future__ import annotations

import pandas as pd

from src.training.cv_metrics import AGE_GROUPS


def _pct(v: float | None) -> str:
    return "" if v is None else f"{100 * v:.1f}"


def _row(label: str, m: dict) -> dict:
    if not m:
        return {}
    ci = f" [{_pct(m['ci_low'])}, {_pct(m['ci_high'])}]" if "ci_low" in m else ""
    return {"set": label, "speakers": m["speakers"], "clips": m["clips"],
            "balanced acc. % [95 % CI over speakers]": _pct(m["balanced_accuracy"]) + ci,
            "confident wrong %": _pct(m["confident_wrong"]), "confident answers": m["n_confident"],
            "coverage %": _pct(m["coverage"]), "answered acc. %": _pct(m["answered_accuracy"]),
            "ECE": f"{m['ece']:.3f}"}


def clean_table(metrics: dict) -> pd.DataFrame:
    """Clean clips: all, each age group, each corpus."""
    rows = [_row("all clean clips", metrics["clean"]["all"])]
    rows += [_row(f"age group: {g}", metrics["clean"][g]) for g in AGE_GROUPS if g in metrics["clean"]]
    rows += [_row(f"corpus: {c}", m) for c, m in metrics["corpus"].items()]
    return pd.DataFrame([r for r in rows if r])


def stress_table(metrics: dict) -> pd.DataFrame:
    """Each stress condition: all its clips, adults and children apart."""
    rows = []
    for c, by in metrics["condition"].items():
        rows += [_row(f"{c}: {g}", by[g]) for g in ("all", "adult", "child") if g in by]
    return pd.DataFrame([r for r in rows if r])


def emotion_table(metrics: dict) -> pd.DataFrame:
    """The emotional clips (CREMA-D) by emotion, women and men apart (accuracy: one class each)."""
    rows = []
    for e, by in metrics["emotion"].items():
        rows += [_row(f"{e}: {g}", m) for g, m in by.items() if m]
    return pd.DataFrame(rows).rename(columns={"balanced acc. % [95 % CI over speakers]":
                                              "accuracy % [95 % CI over speakers]"})


def router_table(metrics: dict) -> pd.DataFrame:
    """The age head's routing of clean clips: true age group (rows) x predicted (columns)."""
    return pd.DataFrame(metrics["router"]).T.rename_axis("true \\ predicted").reset_index()


def markdown(metrics: dict, title: str, notes: str = "") -> str:
    """All the tables as one markdown document."""
    parts = [f"# {title}\n", notes, "## Clean clips\n", clean_table(metrics).to_markdown(index=False),
             "\n## Stress conditions (held-out speakers' clips, transformed)\n",
             stress_table(metrics).to_markdown(index=False)]
    if metrics["emotion"]:
        parts += ["\n## Acted emotions (CREMA-D)\n", emotion_table(metrics).to_markdown(index=False)]
    parts += ["\n## Age router (clean clips)\n", router_table(metrics).to_markdown(index=False), ""]
    return "\n".join(p for p in parts if p is not None)
