"""The analysis plots: Wilson intervals, per-bin counts, one colour per label (fast, no model)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from matplotlib.colors import to_hex

from src.evaluation.plots import (
    confusion_figure,
    duration_figure,
    reliability_bins,
    reliability_figure,
    wilson_interval,
)
from src.labels import CLASSES, LABEL_COLOURS, MIXED, UNKNOWN


def wilson_by_hand(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


@pytest.mark.parametrize("k, n", [(0, 2), (2, 2), (7, 10), (1, 40)])
def test_wilson_interval_matches_the_formula(k, n):
    assert wilson_interval(k, n) == pytest.approx(wilson_by_hand(k, n), abs=1e-5)
    lo, hi = wilson_interval(k, n)
    assert 0.0 <= lo <= k / n <= hi <= 1.0


def test_reliability_bins_count_every_clip_and_skip_empty_bins():
    rng = np.random.default_rng(0)
    p = np.concatenate([rng.uniform(0.0, 0.1, 30), rng.uniform(0.9, 1.0, 30), [0.55, 0.52]])
    y = (rng.uniform(size=len(p)) < p).astype(int)
    bins = reliability_bins(y, p, 10)
    assert sum(b["n"] for b in bins) == len(p) and len(bins) == 3
    two = next(b for b in bins if b["n"] == 2)
    assert two["high"] - two["low"] > 0.6  # two clips say little: a wide interval, not a point on a line


def test_figures_draw_intervals_and_counts():
    rng = np.random.default_rng(1)
    p = rng.uniform(size=200)
    y = (rng.uniform(size=200) < p).astype(int)
    fig = reliability_figure(y, p ** 1.5, p, "test")
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert sum(int(t) for t in texts) == 200  # the count of each bin is written on it
    fig = duration_figure({"val": {"<2 s": {"accuracy": 0.5, "n": 2}, ">=2 s": {"accuracy": 0.9, "n": 50}},
                           "test": {"<2 s": {"accuracy": None, "n": 0}, ">=2 s": {"accuracy": 0.8, "n": 40}}}, "d")
    assert sorted(t.get_text() for t in fig.axes[0].texts) == ["2", "40", "50"]
    cm = confusion_figure([[40, 10], [5, 45]], "test")
    assert {"40\n80%", "45\n90%"} <= {t.get_text() for t in cm.axes[0].texts}


def test_one_colour_per_label_shared_with_the_page():
    assert set(LABEL_COLOURS) == {*CLASSES, UNKNOWN, MIXED}
    assert len({to_hex(c) for c in LABEL_COLOURS.values()}) == len(LABEL_COLOURS)


def test_the_page_starts_with_the_same_colours():
    """style.css' starting values (before /healthz hands the colours over) are LABEL_COLOURS."""
    from pathlib import Path

    css = (Path(__file__).resolve().parents[1] / "src" / "serving" / "static" / "style.css").read_text()
    for label, colour in LABEL_COLOURS.items():
        assert f"--{label}: {colour};" in css, label
