"""A 2-D UMAP of the embeddings, coloured by gender, mistakes marked."""

from __future__ import annotations

import numpy as np

from src.evaluation.plots import plt, save
from src.labels import CLASSES, LABEL_COLOURS


def umap_2d(x: np.ndarray, n_neighbors: int = 15, min_dist: float = 0.1, seed: int = 0) -> np.ndarray:
    """(N, dim) -> (N, 2) with umap-learn (cosine metric, seeded)."""
    import umap

    reducer = umap.UMAP(n_neighbors=min(n_neighbors, len(x) - 1), min_dist=min_dist, metric="cosine",
                        random_state=seed)
    return reducer.fit_transform(x)


def umap_figure(xy: np.ndarray, y: np.ndarray, wrong: np.ndarray, title: str, path) -> None:
    """Scatter the 2-D points: one colour per class, a black ring around each mistake."""
    fig, ax = plt.subplots(figsize=(6, 5))
    for c, name in enumerate(CLASSES):
        m = y == c
        ax.scatter(xy[m, 0], xy[m, 1], s=10, alpha=0.7, color=LABEL_COLOURS[name], label=f"{name} ({m.sum()})")
    if wrong.any():
        ax.scatter(xy[wrong, 0], xy[wrong, 1], s=40, facecolors="none", edgecolors="k", linewidths=1,
                   label=f"misclassified ({wrong.sum()})")
    ax.set(title=title, xticks=[], yticks=[])
    ax.legend(fontsize=8)
    fig.tight_layout()
    save(fig, path)
