"""``python -m src.study protocol=cv``: model selection by speaker-grouped cross-validation.

Three modes (``conf/study.yaml``, group ``cv``):

- ``cv.nested=true`` (default): the honest estimate of the whole selection procedure. Outer folds
  (speakers, or corpora with ``cv.outer=corpus``); inside each, an Optuna search over the space of
  ``conf/hparams_search/<name>.yaml`` for each ``name`` of ``cv.search`` (``cv.trials`` each) (one per model
  family, as the sweeps that pick the shipped model) on inner folds of the training speakers only, the winner
  calibrated from its inner out-of-fold answers, trained on all training speakers, tested once.
  Writes the tables (``post-analysis/study-<train_data>-cv-<tag>.md``/``.csv``/``.json``) and the
  recipe each outer fold chose. Resumes: finished folds are kept.
- ``cv.nested=false``: the one ``recipe`` is cross-validated over speaker folds, calibrated from its
  out-of-fold answers, and the declared objective is returned: what each trial of
  ``-m hparams_search=<name>`` (Hydra's Optuna sweeper) runs. Every trial is appended to
  ``runs/study-<train_data>-cv/trials.csv``; ``scripts/train_default_model.py`` takes the best.
- ``cv.nested=false cv.outer=corpus``: the recipe with each corpus left out in turn (inner
  calibration), the LOCO table.
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict
from importlib.resources import files
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

from src.data.files import atomic_write
from src.embeddings.dataset import read_exclusions
from src.embeddings.store import Source, source_files
from src.training.cv_data import BLOCK_ENCODERS, CvSource, load_cv_data
from src.training.cv_metrics import objective, summary
from src.training.cv_report import clean_table, emotion_table, markdown, stress_table
from src.training.selection import CvData, Recipe, cross_validate, nested_cv, recipe_from, speaker_folds

log = logging.getLogger(__name__)

ComposeTrain = Callable[[Sequence[str]], DictConfig]  # train overrides -> a composed train config
_DATA_CACHE: dict[str, CvData] = {}  # a sweep runs its trials in one process: the table is read once


def search_space(name: str) -> tuple[dict, dict, dict]:
    """``conf/hparams_search/<name>.yaml``'s Optuna space (distributions by ``recipe.<field>``), its
    fixed values and its sweeper settings: the one definition the Hydra sweep and the nested
    search share."""
    from hydra_plugins.hydra_optuna_sweeper._impl import create_params_from_overrides

    path = files("conf").joinpath("hparams_search", f"{name}.yaml")
    if not path.is_file():
        known = sorted(p.name.removesuffix(".yaml") for p in files("conf").joinpath("hparams_search").iterdir()
                       if p.name.endswith(".yaml"))
        raise ValueError(f"cv.search={name!r}: no conf/hparams_search/{name}.yaml (known: {', '.join(known)})")
    sweeper = OmegaConf.load(str(path)).hydra.sweeper
    params = OmegaConf.to_container(sweeper.params, resolve=True)
    space, fixed = create_params_from_overrides([f"{k}={v}" for k, v in params.items()])
    return space, fixed, OmegaConf.to_container(sweeper, resolve=True)


def cv_sources(cfg: DictConfig, compose_train: ComposeTrain) -> list[CvSource]:
    """``train_data``'s sources (or ``cv.sources``), each with its stressed copies where they were
    extracted with every block encoder (``python -m src.stress`` then extract ``data=stress``)."""
    from src.building import data_sources

    names = list(cfg.cv.sources) if cfg.cv.sources else None
    base = compose_train([f"data={cfg.train_data}"])
    sources: list[Source] = data_sources(base.data, base.paths)
    if names:
        configs = [compose_train([f"data={n}"]) for n in names]
        sources = [s for c in configs for s in data_sources(c.data, c.paths)]
    out = []
    for s in sources:
        stress_dir = None
        if cfg.cv.stress:
            st = compose_train(["data=stress", f"data.source={s.name}"])
            d = str(st.paths.embeddings_dir)
            if all(source_files(d, e) for e in BLOCK_ENCODERS):
                stress_dir = d
            else:
                log.warning("%s: no stressed copies extracted (python -m src.stress data=%s, then extract "
                            "data=stress data.source=%s with %s)", s.name, s.name, s.name, " and ".join(BLOCK_ENCODERS))
        out.append(CvSource(s, stress_dir))
    return out


def load_data(cfg: DictConfig, compose_train: ComposeTrain) -> CvData:
    sources = cv_sources(cfg, compose_train)
    key = json.dumps([[asdict(s.clean), s.stress_dir] for s in sources] + [cfg.cv.exclude_path])
    if key not in _DATA_CACHE:
        excluded = read_exclusions(cfg.cv.exclude_path) if cfg.cv.exclude_path else None
        data = load_cv_data(sources, excluded)
        log.info("cross-validation table: %d clean clips of %d speakers, %d stressed copies", int(data.clean.sum()),
                 len(set(data.speakers.tolist())), int((~data.clean).sum()))
        _DATA_CACHE[key] = data
    return _DATA_CACHE[key]


def outer_folds(data: CvData, how: str, seed: int, n_folds: int) -> np.ndarray:
    """(N,) outer fold per row: speaker-grouped folds, or one fold per corpus (``corpus``)."""
    if how == "speakers":
        return speaker_folds(data, n_folds, seed)
    if how == "corpus":
        corpora = sorted(set(data.corpus[data.clean].tolist()))
        return np.array([corpora.index(c) for c in data.corpus])
    raise ValueError(f"cv.outer={how!r}: speakers or corpus")


def run_cv(cfg: DictConfig, compose_train: ComposeTrain) -> Path | float:
    """Run the mode ``cfg.cv`` asks for (module docstring); the report's path, or a trial's objective."""
    data = load_data(cfg, compose_train)
    base = recipe_from(OmegaConf.to_container(cfg.recipe, resolve=True))
    out_dir = Path(cfg.cv.out_dir)
    if not cfg.cv.nested and cfg.cv.outer == "speakers":
        return run_trial(cfg, data, base, out_dir)
    if cfg.cv.nested:
        names = cfg.cv.search if OmegaConf.is_list(cfg.cv.search) else [cfg.cv.search]
        searches = [(*search_space(name)[:2], int(cfg.cv.trials)) for name in names]
        tag = f"nested-{'+'.join(names)}-{cfg.cv.outer}"
    else:  # the given recipe with each corpus left out: an empty search of one trial
        searches = [({}, {}, 1)]
        tag = f"loco-{_recipe_tag(base)}"
    reports = []
    for r in range(int(cfg.cv.repeats)):
        seed = int(cfg.cv.seed) + r
        outer = outer_folds(data, cfg.cv.outer, seed, int(cfg.cv.folds))
        pred, chosen = nested_cv(data, outer, searches, int(cfg.cv.inner_folds), seed, base,
                                 int(cfg.cv.n_jobs), out_dir / tag / f"repeat{r}")
        reports.append((summary(data, pred, ci=True), chosen, pred))
    return write_report(cfg, data, tag, reports)


def _recipe_tag(recipe: Recipe) -> str:
    c = f"{recipe.C:.3g}".replace(".", "p")  # no dot: the tag is part of file names with suffixes
    return f"{recipe.features}-{recipe.estimator}-{recipe.heads}-C{c}-{recipe.weighting}-{recipe.augment}"


def run_trial(cfg: DictConfig, data: CvData, recipe: Recipe, out_dir: Path) -> float:
    """Cross-validate one recipe over ``cv.repeats`` fold seeds; append the trial to ``trials.csv``;
    the mean objective."""
    values, metrics = [], []
    for r in range(int(cfg.cv.repeats)):
        folds = speaker_folds(data, int(cfg.cv.folds), int(cfg.cv.seed) + r)
        value, m, _, cal = cross_validate(recipe, data, folds, seed=int(cfg.cv.seed) + r)
        values.append(value)
        metrics.append(m)
    value = float(np.mean(values))

    def ba(m: dict, *path: str) -> float | None:
        for p in path:
            m = m.get(p, {})
        return m.get("balanced_accuracy") if isinstance(m, dict) else None

    worst = {c: np.mean([ba(metrics[0], "condition", c, g) or 0 for g in ("adult", "child")])
             for c in metrics[0]["condition"]}
    row = {"search": cfg.cv.search_name or _sweep_name(), **asdict(recipe), "objective": round(value, 5),
           "objective_sd": round(float(np.std(values)), 5), "repeats": len(values), "folds": int(cfg.cv.folds),
           "adult": ba(metrics[0], "clean", "adult"), "child": ba(metrics[0], "clean", "child"),
           "teen": ba(metrics[0], "clean", "teen"),
           "worst_condition": min(worst, key=worst.get) if worst else "",
           "worst_condition_ba": min(worst.values()) if worst else None,
           "cw_adult": metrics[0]["clean"].get("adult", {}).get("confident_wrong"),
           "cw_child": metrics[0]["clean"].get("child", {}).get("confident_wrong")}
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "trials.csv"
    new = not path.exists()
    with open(path, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(row))
        if new:
            w.writeheader()
        w.writerow(row)
    log.info("trial %s: objective %.4f (adult %.3f, child %.3f, worst condition %s %.3f)", _recipe_tag(recipe),
             value, row["adult"] or 0, row["child"] or 0, row["worst_condition"], row["worst_condition_ba"] or 0)
    return value


def _sweep_name() -> str:
    """The running Optuna sweep's study name ("" outside a sweep)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return ""
    return str(HydraConfig.get().sweeper.get("study_name") or "")


def best_trial(out_dir: Path, search: str | None = None) -> tuple[dict, dict]:
    """The highest-objective row of ``trials.csv`` (of one search, if named): its recipe fields
    (typed) and the whole row."""
    import pandas as pd

    path = Path(out_dir) / "trials.csv"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no trials yet (python -m src.study protocol=cv -m hparams_search=...)")
    t = pd.read_csv(path, keep_default_na=False)
    if search:
        t = t[t.search == search]
    row = t.sort_values("objective", ascending=False).iloc[0].to_dict()
    fields = Recipe.__dataclass_fields__
    return {k: type(getattr(Recipe(), k))(row[k]) for k in fields}, row


def write_report(cfg: DictConfig, data: CvData, tag: str, reports: list) -> Path:
    """The tables of the first repeat (intervals over speakers), the spread over repeats, the recipes
    chosen, the out-of-fold predictions: ``<table>-<tag>.md|.csv|.json`` and ``-predictions.csv``."""
    import pandas as pd

    out = Path(f"{cfg.table}-{tag}")
    out.parent.mkdir(parents=True, exist_ok=True)
    metrics, chosen, pred = reports[0]
    spread = ""
    if len(reports) > 1:
        keys = [("clean", "adult"), ("clean", "child"), ("clean", "teen"), ("clean", "all")]
        lines = []
        for a, b in keys:
            v = [100 * r[0][a][b]["balanced_accuracy"] for r in reports if b in r[0][a]]
            if v:
                lines.append(f"- {b}: {np.mean(v):.1f} ± {np.std(v, ddof=1):.1f} % over {len(v)} repeats")
        spread = "Balanced accuracy, mean ± sd over repeats (other fold seeds):\n\n" + "\n".join(lines) + "\n"
    recipes = pd.DataFrame([{k: v for k, v in c.items() if k != "calibration"} for c in chosen])
    notes = (f"Protocol: {tag}; {len(set(data.speakers.tolist()))} speakers, {int(data.clean.sum())} clean clips, "
             f"{int((~data.clean).sum())} stressed copies; objective {objective(metrics):.4f} "
             f"(src/training/cv_metrics.py). Intervals: 95 % speaker bootstrap.\n\n{spread}\n"
             f"## Recipe chosen by each outer fold\n\n{recipes.to_markdown(index=False)}\n")
    text = markdown(metrics, f"Cross-validation: {cfg.train_data}, {tag}", notes)
    with atomic_write(out.with_suffix(".md")) as f:
        f.write(text)
    tables = pd.concat([clean_table(metrics).assign(table="clean"), stress_table(metrics).assign(table="stress"),
                        emotion_table(metrics).assign(table="emotion")])
    with atomic_write(out.with_suffix(".csv"), newline="") as f:
        tables.to_csv(f, index=False)
    with atomic_write(out.with_suffix(".json")) as f:
        json.dump({"objective": objective(metrics), "metrics": metrics, "chosen": chosen,
                   "repeats": [r[0] for r in reports[1:]]}, f, default=str, indent=1)
    rows = pred.rows
    p = pd.DataFrame({"id": data.ids[rows], "speaker": data.speakers[rows], "gender": data.y[rows],
                      "age_group": data.age_group[rows], "corpus": data.corpus[rows],
                      "condition": data.condition[rows], "emotion": data.emotion[rows], "fold": pred.fold,
                      "predicted_age_group": pred.groups, "p_male": np.round(pred.p_male, 6),
                      "answered": pred.answered.astype(int)})
    with atomic_write(Path(f"{out}-predictions.csv"), newline="") as f:
        p.to_csv(f, index=False)
    log.info("\n%s\n-> %s", clean_table(metrics).to_markdown(index=False), out.with_suffix(".md"))
    return out.with_suffix(".md")
