"""``python -m src.audit data=<source> encoder=<encoder>``: list the clips and speakers whose
gender label disagrees with out-of-fold predictions, with F0 and a link to the audio, so that a
person can check them by ear before training.

    python -m src.extract encoder=resemblyzer data=dev      # embeddings first
    python -m src.audit data=dev
    python -m src.audit data=mix encoder=egemaps            # several sources at once

Writes ``post-analysis/audit-<data>-<encoder>.md`` (the listed speakers), ``-speakers.csv`` (the
same, to review and pass to ``python -m src.train exclude_path=...``) and ``.csv`` (every clip).
"""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig

from src.analysis.audit import AuditParams, audit, f0_medians, write_audit
from src.building import data_sources
from src.cli import verb
from src.embeddings.dataset import load_sources
from src.runtime import set_threads
from src.settings import from_cfg

log = logging.getLogger(__name__)


def run_audit(cfg: DictConfig) -> Path:
    """Audit one data source (or a mix); returns the markdown report."""
    set_threads(cfg.num_threads)
    data = load_sources(data_sources(cfg.data, cfg.paths), cfg.encoder.name)
    clips, speakers = audit(data, from_cfg(AuditParams, cfg))
    speakers["f0_median_hz"] = f0_medians(list(speakers.example_path))
    out = write_audit(clips, speakers, Path(cfg.out), f"{cfg.data.name}, {cfg.encoder.name} embeddings")
    log.info("-> %s", out)
    return out


@verb("audit")
def main(cfg: DictConfig) -> None:
    run_audit(cfg)


if __name__ == "__main__":
    main()
