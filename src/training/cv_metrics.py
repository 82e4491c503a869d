"""What cross-validation reports and what model selection optimises.

Intervals are over **speakers**, never clips: a 95 % percentile interval of a bootstrap that
resamples each gender's speakers (with all their clips) with replacement. Seven speakers give an
interval of about +-30 points, and the table shows it.

**The declared objective** (written before any search was run; README, "Choosing the model"):

    J = (BA_adult + BA_child + BA_worst) / 3 - 2 * sum over {adult, child} of max(0, CW_g - 0.02)

- ``BA_g``: balanced accuracy (mean recall of female and male, forced answers: p(male) >= 0.5)
  on the clean clips of age group ``g`` (true age group; routing mistakes count);
- ``BA_worst``: the lowest, over the stress conditions, of the mean of adult and child balanced
  accuracy on that condition's clips;
- ``CW_g``: the share of age group ``g``'s clean answers with top calibrated p >= 0.9 that are
  wrong (confident-wrong), over its 2 % cap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from src.training.selection import CvData, Predictions

CONFIDENT_P = 0.9  # an answer this sure (top calibrated probability) is "confident"
CW_CAP = 0.02  # the confident-wrong share allowed in every age group and condition
WRONG_COST = 1.5  # the unknown policy: a wrong answer costs 1.5 right ones, an ``unknown`` nothing
OBJECTIVE_GROUPS = ("adult", "child")
CW_PENALTY = 2.0
AGE_GROUPS = ("adult", "teen", "child")
N_BOOT = 2000


def confident_wrong(y: np.ndarray, proba: np.ndarray) -> float:
    """The share of rows whose top probability is >= :data:`CONFIDENT_P` and whose answer is wrong,
    among the rows that sure (0 when none is)."""
    sure = proba.max(1) >= CONFIDENT_P
    return float((proba[sure].argmax(1) != y[sure]).mean()) if sure.any() else 0.0


def balanced_accuracy(y: np.ndarray, pred: np.ndarray) -> float | None:
    """Mean recall over the classes present (plain accuracy when one class only); None when empty."""
    if not len(y):
        return None
    return float(np.mean([(pred[y == c] == c).mean() for c in np.unique(y)]))


def speaker_bootstrap(y: np.ndarray, right: np.ndarray, speakers: np.ndarray, n_boot: int = N_BOOT,
                      seed: int = 0) -> tuple[float, float]:
    """95 % percentile interval of the balanced accuracy when each class's speakers are resampled
    with replacement (all clips of a drawn speaker count)."""
    rng = np.random.default_rng(seed)
    recalls = []
    for c in np.unique(y):
        m = y == c
        spk, inv = np.unique(speakers[m], return_inverse=True)
        n = np.bincount(inv, minlength=len(spk)).astype(float)
        k = np.bincount(inv, weights=right[m].astype(float), minlength=len(spk))
        draw = rng.integers(0, len(spk), size=(n_boot, len(spk)))
        recalls.append(k[draw].sum(1) / n[draw].sum(1))
    ba = np.mean(recalls, axis=0)
    return float(np.percentile(ba, 2.5)), float(np.percentile(ba, 97.5))


def ece(y: np.ndarray, p_male: np.ndarray, n_bins: int = 15) -> float:
    """Expected calibration error of the top answer's probability."""
    from src.evaluation.metrics import expected_calibration_error

    return float(expected_calibration_error(y, np.stack([1 - p_male, p_male], 1), n_bins))


def group_metrics(y: np.ndarray, p_male: np.ndarray, answered: np.ndarray, speakers: np.ndarray,
                  ci: bool) -> dict:
    """Balanced accuracy (with its speaker interval when ``ci``), confident-wrong, coverage, the
    answered clips' accuracy and ECE of one set of clips."""
    if not len(y):
        return {}
    pred = (p_male >= 0.5).astype(int)
    right = pred == y
    proba = np.stack([1 - p_male, p_male], 1)
    out = {"clips": int(len(y)), "speakers": int(len(set(speakers.tolist()))),
           "balanced_accuracy": balanced_accuracy(y, pred), "confident_wrong": confident_wrong(y, proba),
           "n_confident": int((proba.max(1) >= CONFIDENT_P).sum()), "coverage": float(answered.mean()),
           "answered_accuracy": float(right[answered].mean()) if answered.any() else None, "ece": ece(y, p_male)}
    if ci:
        out["ci_low"], out["ci_high"] = speaker_bootstrap(y, right, speakers)
    return out


def summary(data: CvData, pred: Predictions, ci: bool = False) -> dict:
    """Metrics of out-of-fold answers: clean clips by age group and by corpus, each stress condition
    by age group, the emotional clips by emotion and gender, and the age router's confusion."""
    rows = pred.rows
    y, spk = data.y[rows], data.speakers[rows]
    age, cond = data.age_group[rows].astype(str), data.condition[rows].astype(str)
    clean = cond == "clean"

    def of(mask: np.ndarray) -> dict:
        return group_metrics(y[mask], pred.p_male[mask], pred.answered[mask], spk[mask], ci)

    out: dict = {"clean": {"all": of(clean)}, "corpus": {}, "condition": {}, "emotion": {}}
    for g in AGE_GROUPS:
        if (clean & (age == g)).any():
            out["clean"][g] = of(clean & (age == g))
    for c in sorted(set(data.corpus[rows][clean].astype(str).tolist())):
        out["corpus"][c] = of(clean & (data.corpus[rows] == c))
    for c in sorted(set(cond.tolist()) - {"clean"}):
        out["condition"][c] = {g: of((cond == c) & (age == g)) for g in AGE_GROUPS if ((cond == c) & (age == g)).any()}
        out["condition"][c]["all"] = of(cond == c)
    emo = data.emotion[rows].astype(str)
    for e in sorted(set(emo[clean].tolist()) - {""}):
        out["emotion"][e] = {g: of(clean & (emo == e) & (y == i)) for i, g in enumerate(("female", "male"))}
    known = clean & np.isin(age, AGE_GROUPS) & (pred.groups != "")
    out["router"] = {t: {p: int(((age == t) & (pred.groups == p) & known).sum()) for p in AGE_GROUPS}
                     for t in AGE_GROUPS}
    return out


def objective(metrics: dict) -> float:
    """The declared objective (module docstring) of a :func:`summary`."""
    clean = metrics["clean"]
    ba = [clean.get(g, {}).get("balanced_accuracy") for g in OBJECTIVE_GROUPS]
    ba = [b if b is not None else 0.0 for b in ba]
    worst = min((np.mean([m.get(g, {}).get("balanced_accuracy") or 0.0 for g in OBJECTIVE_GROUPS if g in m])
                 for m in metrics["condition"].values()), default=np.mean(ba))
    penalty = sum(max(0.0, clean.get(g, {}).get("confident_wrong", 0.0) - CW_CAP) for g in OBJECTIVE_GROUPS)
    return float((sum(ba) + worst) / 3 - CW_PENALTY * penalty)
