"""Figures for TensorBoard and the run folder (matplotlib, headless)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from src.labels import CLASSES  # noqa: E402

CONFIDENCE = 0.95  # of the Wilson intervals drawn around each bin's share


def wilson_interval(k: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Wilson score interval of a proportion ``k / n`` (scipy's ``binomtest``); (nan, nan) for n = 0."""
    from scipy.stats import binomtest

    if n <= 0:
        return float("nan"), float("nan")
    ci = binomtest(int(k), int(n)).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


def reliability_bins(y: np.ndarray, p: np.ndarray, n_bins: int = 10) -> list[dict]:
    """Uniform bins of predicted p(male): mean prediction, observed share of male with its Wilson
    interval, and the count; empty bins are left out."""
    y, p = np.asarray(y), np.asarray(p, float)
    idx = np.clip((p * n_bins).astype(int), 0, n_bins - 1)
    out = []
    for b in range(n_bins):
        m = idx == b
        n = int(m.sum())
        if n:
            k = int(y[m].sum())
            lo, hi = wilson_interval(k, n)
            out.append({"mean_p": float(p[m].mean()), "share": k / n, "low": lo, "high": hi, "n": n})
    return out


def confusion_figure(cm: list[list[int]], title: str, labels: list[str] | None = None) -> Figure:
    """The confusion matrix (rows: true, columns: predicted): counts and each row's share, large type."""
    cm = np.asarray(cm)
    labels = list(labels or CLASSES)
    share = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(4.4, 4.0))
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, f"{cm[i, j]}\n{share[i, j]:.0%}", ha="center", va="center", fontsize=13,
                    color="white" if share[i, j] > 0.6 else "black")
    ax.set(xticks=range(len(labels)), yticks=range(len(labels)), xticklabels=labels, yticklabels=labels,
           xlabel="predicted", ylabel="true", title=f"{title} (n = {int(cm.sum())})")
    fig.tight_layout()
    return fig


def reliability_figure(y: np.ndarray, p_male_raw: np.ndarray, p_male_cal: np.ndarray, title: str,
                       n_bins: int = 10) -> Figure:
    """Reliability diagram of p(male), before and after temperature scaling: each bin's observed share
    of male with its 95 % Wilson interval and its count (no line drawn through bins of two clips)."""
    fig, ax = plt.subplots(figsize=(4.8, 4.4))
    ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=1, label="perfect")
    for (p, name, colour), dx in zip(((p_male_raw, "uncalibrated", "#9e9e9e"),
                                       (p_male_cal, "temperature-scaled", "#1f4e9c")), (-0.008, 0.008)):
        bins = reliability_bins(y, p, n_bins)
        x = np.array([b["mean_p"] for b in bins]) + dx
        share = np.array([b["share"] for b in bins])
        err = np.array([[b["share"] - b["low"] for b in bins], [b["high"] - b["share"] for b in bins]])
        ax.errorbar(x, share, yerr=err, fmt="o", ms=4, capsize=2, color=colour, label=f"{name} (95 % CI)")
        if name == "temperature-scaled":
            for xi, b in zip(x, bins):
                ax.annotate(f"{b['n']}", (xi, b["high"]), fontsize=7, xytext=(0, 3), textcoords="offset points",
                            ha="center")
    ax.set(xlabel="predicted p(male)", ylabel="observed share of male (n per bin above)", title=title,
           xlim=(0, 1), ylim=(0, 1.08))
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    return fig


def duration_figure(by_split: dict[str, dict[str, dict]], title: str) -> Figure:
    """Accuracy per speech-duration bucket and split, with 95 % Wilson intervals and counts."""
    fig, ax = plt.subplots(figsize=(5.6, 3.6))
    names = list(next(iter(by_split.values()), {}))
    width = 0.8 / max(len(by_split), 1)
    for s, (split, buckets) in enumerate(by_split.items()):
        for x, b in enumerate(names):
            acc, n = buckets.get(b, {}).get("accuracy"), int(buckets.get(b, {}).get("n") or 0)
            if acc is None or not n:
                continue
            lo, hi = wilson_interval(round(acc * n), n)
            xs = x - 0.4 + width * (s + 0.5)
            ax.errorbar([xs], [acc], yerr=[[acc - lo], [hi - acc]], fmt="o", ms=4, capsize=2, color=f"C{s}",
                        label=split if x == next(i for i, nm in enumerate(names) if buckets.get(nm, {}).get("n"))
                        else None)
            ax.annotate(f"{n}", (xs, lo), fontsize=7, xytext=(0, -9), textcoords="offset points", ha="center")
    ax.set(xticks=range(len(names)), xticklabels=names, xlabel="speech duration (n per bucket under each point)",
           ylabel="accuracy (95 % CI)", title=title, ylim=(0, 1.05))
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def save(fig: Figure, path) -> None:
    """Write ``fig`` as PNG and free it."""
    fig.savefig(path, dpi=120)
    plt.close(fig)
