"""``python -m src.report input=<predictions.jsonl|.csv>``: speaking time of women and men.

    python -m src.report input=all.jsonl                                   # per file, folder, age group, total
    python -m src.report input=all.jsonl manifest=archive.csv by=year      # + per year, with a plot
    python -m src.report input=all.csv manifest=archive.csv bootstrap_unit=speakers

Reads what ``predict`` wrote (format=jsonl or csv); writes ``files.csv``, ``folders.csv``,
``age_groups.csv``, ``total.csv``/``total.json`` and ``by_<column>.csv`` + ``.png`` into ``output_dir``,
and prints the total in one line. Shares carry bootstrap intervals over speakers (a ``speaker``
column) or files.
"""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig

from src.analysis.speaking_time import (
    BootstrapParams,
    ReportError,
    SpeakingTimeReport,
    join_manifest,
    read_predictions,
    speaking_time_report,
    summary_line,
    write_report,
)
from src.cli import UsageError, verb
from src.data.manifest import ManifestError, read_table
from src.settings import from_cfg

log = logging.getLogger(__name__)


def run_report(cfg: DictConfig) -> SpeakingTimeReport:
    """Read the predictions (and the manifest), build the tables, write them; returns the report."""
    try:
        params = from_cfg(BootstrapParams, cfg, unit=str(cfg.bootstrap_unit))
        pred = read_predictions(cfg.input)
        if cfg.manifest:
            pred = join_manifest(pred, read_table(cfg.manifest))
        report = speaking_time_report(pred, params, by=cfg.by or None, progress=bool(cfg.progress))
    except (ReportError, ManifestError) as e:
        raise UsageError(str(e)) from None
    out_dir = Path(cfg.output_dir) if cfg.output_dir else Path(cfg.input).with_suffix(".report")
    written = write_report(report, out_dir, params.confidence)
    print(summary_line(report, params.confidence))
    log.info("%d file(s) written to %s/", len(written), out_dir)
    return report


@verb("report", positional="input")
def main(cfg: DictConfig) -> None:
    run_report(cfg)


if __name__ == "__main__":
    main()
