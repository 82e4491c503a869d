"""``python -m src.study``: every system of ``conf/study.yaml`` on the same splits and seeds; one
table, mean +- sd over seeds.

    python -m src.study                                          # dev -> speechocean762, 5 seeds
    python -m src.study 'only=[resemblyzer-fnn,acoustic-pitch]' 'seeds=[0,1]'
    python -m src.study protocol=loco train_data=mix             # leave one corpus out, each in turn
    python -m src.study protocol=cv train_data=mix               # nested speaker-grouped CV (model selection)
    python -m src.study protocol=cv -m hparams_search=linear     # Optuna sweep: each trial returns the CV objective

``protocol=cv`` (``src/training/cv_study.py``): every speaker of ``train_data``'s sources is
tested once per repeat; with ``cv.nested=true`` each outer fold chooses its recipe by an Optuna
search over inner folds of its training speakers (the spaces of ``conf/hparams_search/<name>``
for each name of ``cv.search``),
with ``cv.nested=false`` (what a sweep trial does) the one ``recipe`` is cross-validated and the
declared objective returned to the sweeper.

``protocol=cross``: each system is trained on ``train_data`` (held-out speakers are its test
split) and every run is applied as it is to each ``eval_data`` source. ``protocol=loco``: for
each corpus of ``loco_corpora``, each system is trained on the other corpora of ``train_data``
(a ``data=mix``) and tested on every clip of the corpus left out.

Writes run folders under ``runs/study-<train_data>/<system>/[<corpus>/]seed<k>/`` and the table to
``post-analysis/study-<train_data>[-loco].md`` and ``.csv``. Rerun to resume: finished steps are kept.
Each step is one of the verbs' functions (extract, train, evaluate) on a config composed like the
verb's own, so a study is the same as typing the commands; a system whose encoder cannot be
loaded here (hub weights without network access) gets a row that says why.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd
from hydra import compose
from omegaconf import DictConfig, OmegaConf

from src.building import model_kind
from src.cli import verb
from src.evaluate import evaluate_run
from src.extract import run_extract
from src.models.checkpoint import END_TO_END
from src.models.run_folder import METRICS_NAME
from src.runtime import set_threads
from src.train import run_train
from src.training.study import SystemResult, loco_table, study_table

log = logging.getLogger(__name__)

Compose = Callable[[str, Sequence[str]], DictConfig]  # (config name, overrides) -> config


def extract_for(result: SystemResult, overrides: Sequence[str], compose_: Compose, sources: Sequence[str]) -> bool:
    """Extract the system's embeddings of every source (none for an end-to-end encoder); False, with
    the reason in ``result``, when its encoder cannot be loaded here."""
    from src.encoders.base import EncoderLoadError

    cfg = compose_("train", [*overrides, f"data={sources[0]}"])
    if model_kind(cfg.model) == END_TO_END:  # trained from audio: nothing to extract
        if cfg.data.get("sources"):
            result.unavailable = f"an end-to-end system does not train on a data={cfg.data.name} of several sources yet"
            log.warning("%s: not run: %s", result.name, result.unavailable)
            return False
        return True
    encoder_overrides = [o for o in overrides if o.split("=", 1)[0].lstrip("+").startswith("encoder")]
    try:
        for data in dict.fromkeys(sources):
            run_extract(compose_("extract", [*encoder_overrides, f"data={data}", "progress=false"]))
    except EncoderLoadError as e:
        result.unavailable = re.split(r"[.;] ", str(e).splitlines()[0])[0]  # the reason; the how-to is in the log
        log.warning("%s: not run: %s", result.name, result.unavailable)
        return False
    return True


def run_system(name: str, overrides: Sequence[str], compose_: Compose, train_data: str,
               eval_data: Sequence[str], seeds: Sequence[int], out_dir: Path) -> SystemResult:
    """Extract, train one run per seed, evaluate each run on every ``eval_data`` source; skip what is done."""
    result = SystemResult(name)
    if not extract_for(result, overrides, compose_, [train_data, *eval_data]):
        return result
    for seed in seeds:
        run_dir = out_dir / name / f"seed{seed}"
        if not (run_dir / METRICS_NAME).exists():
            log.info("%s seed %d: training", name, seed)
            run_train(compose_("train", [*overrides, f"data={train_data}", f"seed={seed}"]), run_dir)
        for data in eval_data:
            if not (run_dir / f"eval-{data}" / METRICS_NAME).exists():
                data_cfg = compose_("train", [*overrides, f"data={data}"])
                evaluate_run(run_dir, data_cfg.paths.embeddings_dir, data, data_cfg.data)
        result.run_dirs.append(run_dir)
    return result


def run_loco(name: str, overrides: Sequence[str], compose_: Compose, train_data: str, corpora: Sequence[str],
             seeds: Sequence[int], out_dir: Path) -> dict[str, SystemResult]:
    """One result per left-out corpus: runs trained without it (one per seed), tested on all of it."""
    results = {c: SystemResult(name) for c in corpora}
    if not extract_for(results[corpora[0]], overrides, compose_, [train_data]):
        for r in results.values():
            r.unavailable = results[corpora[0]].unavailable
        return results
    for corpus in corpora:
        for seed in seeds:
            run_dir = out_dir / name / corpus / f"seed{seed}"
            if not (run_dir / METRICS_NAME).exists():
                log.info("%s without %s, seed %d: training", name, corpus, seed)
                run_train(compose_("train", [*overrides, f"data={train_data}", f"seed={seed}",
                                             f"holdout_corpus={corpus}"]), run_dir)
            results[corpus].run_dirs.append(run_dir)
    return results


def run_study(cfg: DictConfig) -> Path | float:
    """Run (or resume) every selected system; write the table; return the markdown file (a
    ``protocol=cv`` trial: the objective, for the sweeper)."""
    set_threads(cfg.num_threads)
    # each step gets the study's paths as written (embeddings_dir names ${data.name}) and threads
    shared = [f"paths.{k}='{v}'" for k, v in OmegaConf.to_container(cfg.paths, resolve=False).items()]
    shared.append(f"num_threads={cfg.num_threads}")
    systems = OmegaConf.to_container(cfg.systems, resolve=True)
    unknown = set(cfg.only or []) - set(systems)
    if unknown:
        raise ValueError(f"only={sorted(unknown)}: not in systems ({', '.join(systems)})")
    if cfg.protocol not in ("cross", "loco", "cv"):
        raise ValueError(f"protocol={cfg.protocol!r}: cross, loco or cv")
    if cfg.protocol == "cv":
        from src.training.cv_study import run_cv

        return run_cv(cfg, lambda overrides: compose("train", overrides=[*shared, *overrides]))
    chosen = {name: o for name, o in systems.items() if not cfg.only or name in cfg.only}
    train_only = list(cfg.train_overrides or [])

    def compose_(config: str, overrides: Sequence[str]) -> DictConfig:
        return compose(config, overrides=[*shared, *(train_only if config == "train" else []), *overrides])

    if cfg.protocol == "loco":
        corpora = list(cfg.loco_corpora)
        per_system = [run_loco(name, o, compose_, cfg.train_data, corpora, list(cfg.seeds), Path(cfg.out_dir))
                      for name, o in chosen.items()]
        table = loco_table({c: [r[c] for r in per_system] for c in corpora})
    else:
        eval_data = list(cfg.eval_data)
        results = [run_system(name, o, compose_, cfg.train_data, eval_data, list(cfg.seeds), Path(cfg.out_dir))
                   for name, o in chosen.items()]
        table = study_table(results, cfg.train_data, eval_data, OmegaConf.to_container(cfg.groups, resolve=True))
        # how far the test answers can be trusted, per age group (the same columns as the loco table)
        write_table(loco_table({"none (held-out speakers)": results}), Path(f"{cfg.table}-reliability"))
    return write_table(table, Path(cfg.table))


def write_table(table: pd.DataFrame, out: Path) -> Path:
    """``out.md`` and ``out.csv``; returns the markdown file."""
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out.with_suffix(".csv"), index=False)
    out.with_suffix(".md").write_text(table.to_markdown(index=False) + "\n")
    log.info("\n%s\n-> %s", table.to_markdown(index=False), out.with_suffix(".md"))
    return out.with_suffix(".md")


@verb("study")
def main(cfg: DictConfig) -> float | None:
    out = run_study(cfg)
    return out if isinstance(out, float) else None  # a sweep trial's objective goes back to the sweeper


if __name__ == "__main__":
    main()
