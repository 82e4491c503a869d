"""``python -m src.compare``: one table over the latest finished run of each (encoder, model).

Writes ``<paths.analysis_dir>/comparison.md`` and ``comparison.csv``: epochs, best
validation loss, test accuracy, balanced accuracy, log loss, ECE, early stopping, the
extraction throughput of the embeddings the run was trained on, and the accuracy (overall
and per group value) of each ``python -m src.evaluate`` of the run. For mean +- sd over
seeds and splits, see ``python -m src.study``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd
from omegaconf import DictConfig

from src.cli import verb
from src.embeddings.store import stats_path
from src.inference.run_folder import RunFolder
from src.models.run_folder import METRICS_NAME

log = logging.getLogger(__name__)


def extraction_rate(run: RunFolder) -> float | None:
    """Audio seconds per wall second of the extraction that made the run's embeddings, if recorded."""
    p = stats_path(run.metrics.get("embeddings_dir", ""), run.key)
    if not p.exists():
        return None
    s = json.loads(p.read_text())
    return s["audio_s"] / s["wall_s"] if s.get("wall_s") else None


def comparison_row(run: RunFolder) -> dict:
    """The table row of one run."""
    m, t = run.metrics, run.metrics["test"]
    rate = extraction_rate(run)
    data = m.get("data", "") + (f" ({m['protocol']})" if m.get("protocol") else "")
    return {"encoder": run.key, "model": m.get("model", ""), "data": data,
            "epochs": m["epochs"], "best_val_loss": round(m["best_val_loss"], 4),
            "test_accuracy": round(t["accuracy"], 4), "test_balanced_accuracy": round(t["balanced_accuracy"], 4),
            "test_log_loss": round(t["log_loss"], 4), "test_ece": round(t["ece"], 4),
            "early_stopped": (f"yes (best epoch {m['best_epoch']})" if m["stopped_early"]
                              else "no" if m["epochs"] else "n/a"),  # n/a: fitted in one go (scikit-learn)
            "extract_x_realtime": round(rate, 1) if rate else None, **cross_corpus_columns(run), "run": run.dir.name}


def cross_corpus_columns(run: RunFolder) -> dict[str, float]:
    """``<source>_accuracy`` and ``<source>_<group value>`` (e.g. ``speechocean762_child``) for each
    ``python -m src.evaluate`` of the run (its ``eval-<source>/`` folders)."""
    out = {}
    for path in sorted(run.dir.glob(f"eval-*/{METRICS_NAME}")):
        source, scores = path.parent.name[len("eval-"):], json.loads(path.read_text())["all"]
        out[f"{source}_accuracy"] = round(scores["accuracy"], 4)
        for values in scores["accuracy_by_group"].values():
            out.update({f"{source}_{value}": round(v["accuracy"], 4) for value, v in values.items()})
    return out


def compare_runs(runs_dir: str | Path, out_dir: str | Path) -> pd.DataFrame:
    """Build the table, write it as markdown and CSV, return it."""
    runs = RunFolder.latest_by_model(runs_dir)
    if not runs:
        raise ValueError(f"no finished run under {runs_dir}: run `python -m src.train` first")
    table = pd.DataFrame([comparison_row(r) for r in runs.values()]).sort_values("test_balanced_accuracy",
                                                                               ascending=False)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    table.to_csv(out_dir / "comparison.csv", index=False)
    (out_dir / "comparison.md").write_text(table.to_markdown(index=False) + "\n")
    log.info("\n%s", table.to_markdown(index=False))
    return table


@verb("compare")
def main(cfg: DictConfig) -> None:
    compare_runs(cfg.paths.runs_dir, cfg.paths.analysis_dir)


if __name__ == "__main__":
    main()
