"""Choosing a model the way it will be judged: on speakers it has never heard and speaking styles
it was not trained on.

- :class:`Recipe`: everything that makes a gender model from embeddings (which feature blocks,
  which estimator, pooled or per-age-group heads, regularisation, weighting, augmentation).
- :func:`fit_recipe`: one :class:`~src.models.checkpoint.TrainedClassifier` from training clips
  (the object inference loads; uncalibrated until :func:`apply_calibration`).
- :func:`cross_validate`: out-of-fold predictions over speaker-grouped folds, calibrated from those
  out-of-fold predictions (:func:`fit_calibration`), scored by the declared objective
  (:func:`src.training.cv_metrics.objective`).
- :func:`nested_cv`: the honest estimate of the whole procedure: in each outer fold, the recipe is
  chosen by an Optuna search over the inner folds of the training speakers only, calibrated from
  that search's out-of-fold predictions, then tested once on the outer fold's speakers.

Rows of a :class:`CvData` are clean clips (``condition == "clean"``) and stressed copies of them
(``src/data/stress.py``), which share their speaker: a copy is only ever scored by a model whose
training speakers exclude its speaker, and may be trained on (``Recipe.augment``) when its speaker
is a training speaker.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from src.evaluation.calibration import fit_temperature
from src.labels import CLASSES
from src.models.checkpoint import TrainedClassifier, most_cautious, softmax
from src.training.cv_metrics import CW_CAP, WRONG_COST, confident_wrong, objective
from src.training.heads import balanced_weights, fit_age_head

log = logging.getLogger(__name__)

# the columns of each feature block in a CvData's x, in the fusion encoders' order
FEATURE_BLOCKS = {"resemblyzer": (0, 256), "egemaps": (256, 344), "acoustic": (344, 566)}
F0_COLUMNS = {"egemaps": (0, 4), "acoustic": (208, 210)}  # within the block: the F0 summary columns
CLEAN = "clean"
AUGMENT_SETS = {"none": (), "pitch": ("pitch",), "style": ("pitch", "fast", "slow", "crop"),
                "all": ("pitch", "fast", "slow", "crop", "telephone", "opus", "amr", "noise", "babble", "reverb")}
MIN_GROUP_HEAD_SPEAKERS = 4  # training speakers per class an age group needs for a gender head of its own
MIN_CALIBRATION_CLIPS = 20  # out-of-fold clips (both classes) a predicted age group needs for its own temperature


@dataclass(frozen=True)
class Recipe:
    """How a gender model is made from embeddings; every field is a ``recipe.<name>`` setting.

    Attributes:
        features: the encoder key, made of :data:`FEATURE_BLOCKS` names joined by ``_`` in that
            order (``resemblyzer_egemaps``, ``egemaps_acoustic``, ...).
        estimator: ``logreg`` (one L2 logistic regression), ``blocks`` (one per feature block and
            one on F0 alone, probabilities averaged) or ``fnn`` (2-layer network, ``src/models/fnn.py``).
        heads: ``pooled`` (one gender head for every age) or ``age_groups`` (one per age group with
            the speakers for it, mixed by the age head's probabilities).
        C: inverse L2 strength of the logistic regressions (smaller: stronger).
        weighting: ``none`` (classes balanced overall), ``age_group`` (classes balanced inside each
            age group) or ``corpus_age_group`` (inside each corpus x age group).
        augment: which stressed copies of the training speakers are trained on (:data:`AUGMENT_SETS`).
        hidden_dim, dropout, weight_decay, epochs, lr: the FNN's.
    """

    features: str = "resemblyzer_egemaps"
    estimator: str = "logreg"
    heads: str = "pooled"
    C: float = 0.01
    weighting: str = "age_group"
    augment: str = "none"
    hidden_dim: int = 64
    dropout: float = 0.3
    weight_decay: float = 1e-2
    epochs: int = 30
    lr: float = 1e-3

    def __post_init__(self):
        parts = self.features.split("_")
        if not parts or any(p not in FEATURE_BLOCKS for p in parts) or len(set(parts)) != len(parts):
            raise ValueError(f"recipe.features={self.features!r}: {', '.join(FEATURE_BLOCKS)} joined by _")
        checks = {"estimator": ("logreg", "blocks", "fnn"), "heads": ("pooled", "age_groups"),
                  "weighting": ("none", "age_group", "corpus_age_group"), "augment": tuple(AUGMENT_SETS)}
        for name, allowed in checks.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"recipe.{name}={getattr(self, name)!r}: one of {', '.join(allowed)}")
        if not self.C > 0:
            raise ValueError(f"recipe.C={self.C}: must be > 0")

    @property
    def parts(self) -> list[str]:
        return [p for p in FEATURE_BLOCKS if p in self.features.split("_")]

    def columns(self) -> np.ndarray:
        """The columns of a CvData's x this recipe reads, in the encoder's order."""
        return np.concatenate([np.arange(*FEATURE_BLOCKS[p]) for p in self.parts])

    def blocks(self) -> list[list[int]]:
        """``estimator=blocks``: each part's columns, then the F0 columns alone, in the recipe's input."""
        out, start, f0 = [], 0, None
        for p in self.parts:
            a, b = FEATURE_BLOCKS[p]
            out.append([start, start + b - a])
            if p in F0_COLUMNS and f0 is None:
                f0 = [start + F0_COLUMNS[p][0], start + F0_COLUMNS[p][1]]
            start += b - a
        return out + ([f0] if f0 else [])


@dataclass
class CvData:
    """Clips of every source in one table (row-aligned arrays), clean and stressed.

    Attributes:
        x: (N, 566) float32: the Resemblyzer, eGeMAPS and acoustic blocks (:data:`FEATURE_BLOCKS`).
        y: (N,) class indices; ``speakers`` (N,) ``<source>/<speaker>``; ``ids`` (N,) clip ids.
        age_group, corpus, condition (``clean`` or a stress condition), emotion (``""`` where none),
        base_id: (N,) the clean clip a stressed copy was made from (its own id when clean).
    """

    x: np.ndarray
    y: np.ndarray
    speakers: np.ndarray
    ids: np.ndarray
    age_group: np.ndarray
    corpus: np.ndarray
    condition: np.ndarray
    emotion: np.ndarray
    base_id: np.ndarray

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, mask: np.ndarray) -> CvData:
        return CvData(**{k: v[mask] for k, v in self.__dict__.items()})

    @property
    def clean(self) -> np.ndarray:
        return self.condition == CLEAN


def speaker_folds(data: CvData, n_folds: int, seed: int, within: np.ndarray | None = None) -> np.ndarray:
    """(N,) the fold of every row: speaker-grouped (a speaker's clips, stressed copies included, in
    one fold), stratified by corpus x gender x age group (scikit-learn's StratifiedGroupKFold);
    ``within`` (N,) bool: only those rows are dealt (the rest get -1)."""
    from sklearn.model_selection import StratifiedGroupKFold

    rows = np.flatnonzero(data.clean if within is None else (data.clean & within))
    strata = np.char.add(np.char.add(data.corpus[rows].astype(str), "|"),
                         np.char.add(data.age_group[rows].astype(str), data.y[rows].astype(str)))
    folds_of_speaker = {}
    cv = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    for k, (_, test) in enumerate(cv.split(rows, np.unique(strata, return_inverse=True)[1], data.speakers[rows])):
        folds_of_speaker.update({s: k for s in data.speakers[rows[test]]})
    return np.array([folds_of_speaker.get(s, -1) for s in data.speakers])


def training_rows(data: CvData, speakers_in: np.ndarray, recipe: Recipe) -> np.ndarray:
    """(N,) bool: the clean clips of the training speakers and, with ``recipe.augment``, their
    stressed copies of those conditions."""
    conditions = (CLEAN, *AUGMENT_SETS[recipe.augment])
    return speakers_in & np.isin(data.condition, conditions)


def _weights(data: CvData, rows: np.ndarray, weighting: str) -> np.ndarray:
    y = data.y[rows]
    if weighting == "none":
        return balanced_weights(y, None)
    within = data.age_group[rows].astype(str)
    if weighting == "corpus_age_group":
        within = np.char.add(np.char.add(data.corpus[rows].astype(str), "|"), within)
    return balanced_weights(y, within)


def _estimator(recipe: Recipe, in_dim: int, seed: int):
    from src.models.blocks import BlockEnsemble

    if recipe.estimator == "blocks":
        est = BlockEnsemble(recipe.blocks(), C=recipe.C, max_iter=3000)
        return est, "src.models.blocks.BlockEnsemble", {"blocks": recipe.blocks(), "C": recipe.C, "max_iter": 3000}
    if recipe.estimator == "fnn":
        import torch

        from src.models.fnn import GenderFNN
        torch.manual_seed(seed)
        kwargs = {"in_dim": in_dim, "hidden_dim": int(recipe.hidden_dim), "dropout": float(recipe.dropout)}
        return GenderFNN(**kwargs), "src.models.fnn.GenderFNN", kwargs
    from sklearn.linear_model import LogisticRegression

    est = LogisticRegression(C=recipe.C, max_iter=3000)
    return est, "sklearn.linear_model.LogisticRegression", est.get_params()


def _fit_fnn(model, z: np.ndarray, y: np.ndarray, w: np.ndarray, recipe: Recipe, seed: int) -> None:
    """Full-data mini-batch AdamW for ``recipe.epochs`` epochs, loss weighted per clip (no early
    stopping: the epochs and the weight decay are the regularisation the search tunes)."""
    import torch

    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    zt, yt, wt = torch.from_numpy(z), torch.from_numpy(y.astype(np.int64)), torch.from_numpy(w.astype(np.float32))
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    model.train()
    for _ in range(int(recipe.epochs)):
        for idx in torch.randperm(len(yt), generator=gen).split(64):
            loss = (torch.nn.functional.cross_entropy(model(zt[idx]), yt[idx], reduction="none") * wt[idx]).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()


def _fit_one(recipe: Recipe, z: np.ndarray, y: np.ndarray, w: np.ndarray, seed: int):
    model, target, kwargs = _estimator(recipe, z.shape[1], seed)
    if recipe.estimator == "fnn":
        _fit_fnn(model, z, y, w / w.mean(), recipe, seed)
    else:
        model.fit(z, y, sample_weight=w / w.mean())
    return model, target, kwargs


def fit_recipe(recipe: Recipe, data: CvData, rows: np.ndarray, seed: int = 0,
               encoder_meta: dict | None = None) -> TrainedClassifier:
    """A gender model (with its age head) trained by ``recipe`` on ``data[rows]``; uncalibrated
    (temperatures 1) until :func:`apply_calibration`."""
    from src.training.embedding_head import input_normalisation

    cols = recipe.columns()
    x, y = data.x[rows][:, cols], data.y[rows]
    mean, std = input_normalisation(x[data.clean[rows]])
    z = ((x - mean) / std).astype(np.float32)
    w = _weights(data, rows, recipe.weighting)
    model, target, kwargs = _fit_one(recipe, z, y, w, seed)
    clf = TrainedClassifier(model=model, model_target=target, model_kwargs=kwargs, mean=mean, std=std,
                            classes=CLASSES, encoder=encoder_meta or {})
    ages = data.age_group[rows].astype(str)
    clean = data.clean[rows]
    clf.age_head = fit_age_head(x[clean], ages[clean], data.speakers[rows][clean], x[:0], ages[:0], mean, std, seed)
    if recipe.heads == "age_groups" and clf.age_head is not None:
        for g in clf.age_head.classes:
            m = ages == g
            spk = [len(set(data.speakers[rows][m & (y == c)].tolist())) for c in range(len(CLASSES))]
            if min(spk) < MIN_GROUP_HEAD_SPEAKERS:
                continue
            head_model, t, kw = _fit_one(recipe, z[m], y[m], balanced_weights(y[m], None), seed)
            clf.group_heads[g] = TrainedClassifier(model=head_model, model_target=t, model_kwargs=kw, mean=mean,
                                                   std=std, classes=CLASSES, encoder=clf.encoder)
    return clf


@dataclass
class Calibration:
    """What out-of-fold predictions say about a recipe's answers: a temperature and an ``unknown``
    threshold per predicted age group (``"*"``: the fallback for groups with too few clips)."""

    temperatures: dict[str, float] = field(default_factory=dict)
    unknown_below: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def mixture_logits(clf: TrainedClassifier, xr: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(N, 2) log of the uncalibrated answer (the pooled head, or the age-group heads mixed by
    p(age group)), (N,) the predicted age group and (N,) the plausible age groups (``"adult|child"``)
    for recipe-column inputs ``xr``."""
    p = clf.predict_proba(xr, calibrated=clf.age_head is not None and bool(clf.group_heads))  # temperatures are 1
    groups = np.array(clf.age_head.classes_of(xr)) if clf.age_head is not None else np.full(len(xr), "")
    return np.log(np.clip(p, 1e-7, 1.0)), groups, np.array(clf.plausible_age_groups(xr))


def fit_calibration(logits: np.ndarray, y: np.ndarray, groups: np.ndarray,
                    clean: np.ndarray | None = None) -> Calibration:
    """Temperatures and ``unknown`` thresholds per predicted age group from out-of-fold predictions
    (``clean``: which rows are clean clips; the others are stressed copies; all clean when None).

    Each group's temperature minimises the log loss on its clean clips, then grows (x1.15 a step, up
    to 20) until at most :data:`CW_CAP` of its answers with top p >= :data:`CONFIDENT_P` are wrong,
    on the clean clips and on the stressed copies alike (a voice on the phone or in a noisy room is
    no reason to be sure and wrong). Its ``unknown`` threshold is the one of 0.5, 0.55, ..., 0.9
    that maximises the clean clips' out-of-fold gain of answering (right answers minus
    :data:`WRONG_COST` x wrong ones; ``unknown`` gains nothing), the lowest such on ties: the best
    coverage at that price of a mistake. (With calibrated probabilities the rule is p >= 0.6;
    fitting it per group keeps it honest where a group's calibration is not.)"""
    clean = np.ones(len(y), bool) if clean is None else clean
    cal = Calibration()

    def fit(m: np.ndarray) -> tuple[float, float]:
        c = m & clean
        t = _cap_confident_wrong(logits[m], y[m], clean[m], fit_temperature(logits[c], y[c]))
        return t, _threshold_for(logits[c] / t, y[c])

    cal.temperatures["*"], cal.unknown_below["*"] = fit(np.ones(len(y), bool))
    for g in sorted(set(groups.tolist()) - {""}):
        m = groups == g
        if (m & clean).sum() < MIN_CALIBRATION_CLIPS or len(set(y[m & clean].tolist())) < len(CLASSES):
            continue
        cal.temperatures[g], cal.unknown_below[g] = fit(m)
    return cal


def _cap_confident_wrong(logits: np.ndarray, y: np.ndarray, clean: np.ndarray, t: float) -> float:
    parts = [m for m in (clean, ~clean) if m.any()]
    while t < 20.0 and max(confident_wrong(y[m], softmax(logits[m] / t)) for m in parts) > CW_CAP:
        t *= 1.15
    return float(t)


def _threshold_for(logits: np.ndarray, y: np.ndarray) -> float:
    p = softmax(logits)
    top, right = p.max(1), p.argmax(1) == y
    grid = np.round(np.arange(0.5, 0.9001, 0.05), 2)
    gain = [float(np.sum(np.where(right, 1.0, -WRONG_COST)[top >= t])) for t in grid]
    return float(grid[int(np.argmax(gain))])


def apply_calibration(clf: TrainedClassifier, cal: Calibration) -> TrainedClassifier:
    """Put ``cal`` into the model: temperatures on its output per predicted age group, and the
    ``unknown`` thresholds."""
    clf.output_temperatures = dict(cal.temperatures)
    clf.group_unknown_below = dict(cal.unknown_below)
    clf.unknown_below = cal.unknown_below.get("*", clf.unknown_below)
    return clf


def calibrated(logits: np.ndarray, plausible: np.ndarray, cal: Calibration) -> tuple[np.ndarray, np.ndarray]:
    """(N,) calibrated p(male) and (N,) bool answered (top p at or over the threshold), each row with
    the most cautious temperature and threshold of its plausible age groups (as the shipped model)."""
    t = most_cautious(cal.temperatures, plausible, 1.0)
    p = softmax(logits / t[:, None])
    below = most_cautious(cal.unknown_below, plausible, 0.5)
    return p[:, 1], p.max(1) >= below


@dataclass
class Predictions:
    """Out-of-fold answers for rows of a CvData: raw log-answers, predicted and plausible age groups
    (:func:`mixture_logits`), fold."""

    rows: np.ndarray
    logits: np.ndarray
    groups: np.ndarray
    plausible: np.ndarray
    fold: np.ndarray
    p_male: np.ndarray | None = None
    answered: np.ndarray | None = None


def cross_validate(recipe: Recipe, data: CvData, folds: np.ndarray, seed: int = 0,
                   progress: Callable[[int], None] | None = None) -> tuple[float, dict, Predictions, Calibration]:
    """Train on all folds but one, answer the held-out fold's clips and their stressed copies, for
    each fold; calibrate from all those out-of-fold answers; return the objective, its metrics,
    the predictions and the calibration."""
    from src.training.cv_metrics import summary

    n_folds = int(folds.max()) + 1
    rows_all, logits_all, groups_all, plausible_all, fold_all = [], [], [], [], []
    for k in range(n_folds):
        train = training_rows(data, (folds >= 0) & (folds != k), recipe)
        test = np.flatnonzero(folds == k)
        clf = fit_recipe(recipe, data, train, seed)
        lg, gr, pl = mixture_logits(clf, data.x[test][:, recipe.columns()])
        rows_all.append(test)
        logits_all.append(lg)
        groups_all.append(gr)
        plausible_all.append(pl)
        fold_all.append(np.full(len(test), k))
        if progress:
            progress(1)
    pred = Predictions(*map(np.concatenate, (rows_all, logits_all, groups_all, plausible_all, fold_all)))
    clean = data.clean[pred.rows]
    cal = fit_calibration(pred.logits, data.y[pred.rows], pred.groups, clean)
    pred.p_male, pred.answered = calibrated(pred.logits, pred.plausible, cal)
    metrics = summary(data, pred)
    return objective(metrics), metrics, pred, cal


SearchSpace = dict  # parameter name (recipe.<field>) -> an optuna distribution


def search_recipe(space: SearchSpace, fixed: dict, data: CvData, folds: np.ndarray, n_trials: int, seed: int,
                  base: Recipe = Recipe()) -> tuple[Recipe, Calibration, list[dict]]:
    """Optuna (TPE, seeded) over ``space`` on ``data``'s ``folds``: the best recipe by the objective,
    the calibration from its out-of-fold answers and every trial's (params, objective)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    trials, best = [], (-np.inf, None, None)
    for _ in range(n_trials):
        trial = study.ask(space)
        recipe = recipe_from({**fixed, **trial.params}, base)
        value, _, _, cal = cross_validate(recipe, data, folds, seed)
        study.tell(trial, value)
        trials.append({**{k.removeprefix("recipe."): v for k, v in trial.params.items()}, "objective": value})
        if value > best[0]:
            best = (value, recipe, cal)
    return best[1], best[2], trials


def recipe_from(params: dict, base: Recipe = Recipe()) -> Recipe:
    """A recipe from ``recipe.<field>`` (or ``<field>``) values over ``base``."""
    fields_ = {k.removeprefix("recipe."): v for k, v in params.items()}
    return replace(base, **fields_)


Search = tuple[SearchSpace, dict, int]  # an Optuna space, its fixed values, its number of trials


def nested_cv(data: CvData, outer: np.ndarray, searches: Sequence[Search], n_inner: int,
              seed: int = 0, base: Recipe = Recipe(), n_jobs: int = 1,
              cache_dir: Path | None = None) -> tuple[Predictions, list[dict]]:
    """For each outer fold (``outer``: (N,) fold per row, -1 for rows never tested), the recipe chosen
    by :func:`search_recipe` over inner speaker folds of the training rows only (the best of every
    search in ``searches``: one per model family, as the sweeps that pick the shipped model),
    calibrated from its inner out-of-fold answers, trained on all training speakers and tested once
    on the outer fold. With one empty search of one trial it cross-validates ``base`` (leave one
    corpus out: ``outer`` = the corpus index). Each finished fold is kept in ``cache_dir`` and not
    redone. Returns the outer predictions (calibrated) and, per fold, the chosen recipe."""
    from joblib import Parallel, delayed

    folds = sorted(set(outer.tolist()) - {-1})
    todo = [k for k in folds if cache_dir is None or not _fold_file(cache_dir, k).exists()]
    ran = Parallel(n_jobs=min(n_jobs, max(1, len(todo))))(
        delayed(_outer_fold)(data, outer, k, searches, n_inner, seed, base, cache_dir) for k in todo)
    jobs = [_read_fold(cache_dir, k) for k in folds] if cache_dir is not None else ran
    pred = Predictions(*(np.concatenate([j[0][i] for j in jobs]) for i in range(5)))
    pred.p_male = np.concatenate([j[0][5] for j in jobs])
    pred.answered = np.concatenate([j[0][6] for j in jobs]).astype(bool)
    return pred, [j[1] for j in jobs]


def _fold_file(cache_dir: Path, k: int) -> Path:
    return Path(cache_dir) / f"fold{k}.npz"


def _read_fold(cache_dir: Path, k: int):
    import json

    z = np.load(_fold_file(cache_dir, k), allow_pickle=False)
    chosen = json.loads(_fold_file(cache_dir, k).with_suffix(".json").read_text())
    return (z["rows"], z["logits"], z["groups"], z["plausible"], z["fold"], z["p_male"], z["answered"]), chosen


def _outer_fold(data: CvData, outer: np.ndarray, k: int, searches: Sequence[Search], n_inner: int,
                seed: int, base: Recipe, cache_dir: Path | None):
    import json

    from src.data.files import atomic_write
    from src.runtime import set_threads

    set_threads(1)
    inside = (outer >= 0) & (outer != k)
    inner = speaker_folds(data, n_inner, seed + 1000 + k, within=inside)
    best, trials = None, []
    for space, fixed, n_trials in searches:
        recipe, cal, tried = search_recipe(space, fixed, data, inner, n_trials, seed + k, base)
        value = max(t["objective"] for t in tried)
        if best is None or value > best[0]:
            best = (value, recipe, cal)
        trials += tried
    _, recipe, cal = best
    clf = fit_recipe(recipe, data, training_rows(data, inside, recipe), seed)
    test = np.flatnonzero(outer == k)
    lg, gr, pl = mixture_logits(clf, data.x[test][:, recipe.columns()])
    p, answered = calibrated(lg, pl, cal)
    chosen = {"fold": k, **asdict(recipe), "inner_objective": best[0],
              "trials": len(trials), "calibration": cal.to_dict()}
    log.info("outer fold %d: %s (inner objective %.4f)", k, recipe, chosen["inner_objective"])
    result = (test, lg, gr, pl, np.full(len(test), k), p, answered)
    if cache_dir is not None:
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
        _fold_file(cache_dir, k).with_suffix(".json").write_text(json.dumps(chosen, default=str))
        with atomic_write(_fold_file(cache_dir, k), "wb") as f:  # last: its presence marks the fold done
            np.savez(f, rows=test, logits=lg, groups=gr.astype(str), plausible=pl.astype(str), fold=result[4],
                     p_male=p, answered=answered)
    return result, chosen


def recipes_table(chosen: Sequence[dict]) -> list[dict]:
    """The per-outer-fold choices without the calibration dicts (for a CSV)."""
    return [{k: v for k, v in c.items() if k != "calibration"} for c in chosen]


def final_model(recipe: Recipe, data: CvData, n_folds: int = 10, seed: int = 0,
                encoder_meta: dict | None = None) -> tuple[TrainedClassifier, Calibration, dict]:
    """The model to ship: ``recipe`` trained on every speaker, calibrated from its own
    ``n_folds``-fold out-of-fold answers (temperatures and ``unknown`` thresholds per predicted age
    group); with those answers' metrics (a selection-biased figure when ``recipe`` was chosen on
    the same folds: report the nested CV beside it)."""
    from src.training.cv_metrics import summary

    folds = speaker_folds(data, n_folds, seed)
    _, _, pred, cal = cross_validate(recipe, data, folds, seed)
    clf = fit_recipe(recipe, data, training_rows(data, np.ones(len(data), bool), recipe), seed, encoder_meta)
    return apply_calibration(clf, cal), cal, summary(data, pred, ci=True)
