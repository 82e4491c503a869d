"""Figures for TensorBoard and the run folder (matplotlib, headless)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from sklearn.calibration import calibration_curve  # noqa: E402
from sklearn.metrics import ConfusionMatrixDisplay  # noqa: E402

from src.labels import CLASSES  # noqa: E402


def confusion_figure(cm: list[list[int]], title: str) -> Figure:
    """The confusion matrix (rows: true, columns: predicted)."""
    fig, ax = plt.subplots(figsize=(3.6, 3.2))
    ConfusionMatrixDisplay(np.asarray(cm), display_labels=list(CLASSES)).plot(ax=ax, colorbar=False)
    ax.set_title(title)
    fig.tight_layout()
    return fig


def reliability_figure(y: np.ndarray, p_male_raw: np.ndarray, p_male_cal: np.ndarray, title: str,
                       n_bins: int = 10) -> Figure:
    """Reliability diagram of p(male): before and after temperature scaling."""
    fig, ax = plt.subplots(figsize=(4.2, 4.0))
    ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=1, label="perfect")
    for p, name in ((p_male_raw, "uncalibrated"), (p_male_cal, "temperature-scaled")):
        frac, mean = calibration_curve(y, p, n_bins=n_bins, strategy="uniform")
        ax.plot(mean, frac, marker="o", label=name)
    ax.set(xlabel="predicted p(male)", ylabel="observed share of male", title=title, xlim=(0, 1), ylim=(0, 1))
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    return fig


def duration_figure(by_split: dict[str, dict[str, dict]], title: str) -> Figure:
    """Accuracy per speech-duration bucket, one line per split, counts annotated."""
    fig, ax = plt.subplots(figsize=(5, 3.4))
    for split, buckets in by_split.items():
        names = list(buckets)
        acc = [buckets[b]["accuracy"] if buckets[b]["accuracy"] is not None else np.nan for b in names]
        ax.plot(names, acc, marker="o", label=split)
        for x, (a, b) in enumerate(zip(acc, names)):
            if not np.isnan(a):
                ax.annotate(f"n={buckets[b]['n']}", (x, a), fontsize=7, xytext=(2, -10), textcoords="offset points")
    ax.set(xlabel="speech duration", ylabel="accuracy", title=title, ylim=(0, 1.05))
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def save(fig: Figure, path) -> None:
    """Write ``fig`` as PNG and free it."""
    fig.savefig(path, dpi=120)
    plt.close(fig)
