"""``python -m src.study``: every system of ``conf/study.yaml`` on the same source, speaker-disjoint
splits and seeds, each run also applied to other sources; one table, mean +- sd over seeds.

    python -m src.study                                          # dev -> speechocean762, 5 seeds
    python -m src.study 'only=[resemblyzer-fnn,acoustic-pitch]' 'seeds=[0,1]'

Writes run folders under ``runs/study-<train_data>/<system>/seed<k>/`` and the table to
``post-analysis/study-<train_data>.md`` and ``.csv``. Rerun to resume: finished steps are kept.
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
from hydra import compose
from omegaconf import DictConfig, OmegaConf

from src.building import set_threads
from src.training.study import run_system, study_table

log = logging.getLogger(__name__)

def run_study(cfg: DictConfig) -> Path:
    """Run (or resume) every selected system; write the table; return the markdown file."""
    set_threads(cfg.num_threads)
    # each step gets the study's paths as written (embeddings_dir names ${data.name}) and threads
    shared = [f"paths.{k}='{v}'" for k, v in OmegaConf.to_container(cfg.paths, resolve=False).items()]
    shared.append(f"num_threads={cfg.num_threads}")
    systems = OmegaConf.to_container(cfg.systems, resolve=True)
    unknown = set(cfg.only or []) - set(systems)
    if unknown:
        raise ValueError(f"only={sorted(unknown)}: not in systems ({', '.join(systems)})")
    eval_data = list(cfg.eval_data)
    results = [run_system(name, overrides, lambda config, o: compose(config, overrides=[*shared, *o]),
                          cfg.train_data, eval_data, list(cfg.seeds), Path(cfg.out_dir))
               for name, overrides in systems.items() if not cfg.only or name in cfg.only]
    table = study_table(results, cfg.train_data, eval_data, OmegaConf.to_container(cfg.groups, resolve=True))
    out = Path(cfg.table)
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out.with_suffix(".csv"), index=False)
    out.with_suffix(".md").write_text(table.to_markdown(index=False) + "\n")
    log.info("\n%s\n-> %s", table.to_markdown(index=False), out.with_suffix(".md"))
    return out.with_suffix(".md")


@hydra.main(version_base="1.3", config_path="pkg://conf", config_name="study")
def main(cfg: DictConfig) -> None:
    run_study(cfg)


if __name__ == "__main__":
    main()
