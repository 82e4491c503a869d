"""Fast unit tests of the math (no audio, no model): calibration error, temperature fitting,
speaker-disjoint splits, selective metrics, hop smoothing and merging, the pitch threshold, the
block ensemble and the age-group mixture. ``make test-fast`` runs these while you work."""

from __future__ import annotations

import numpy as np
import pytest

from src.embeddings.dataset import DatasetError
from src.evaluation.calibration import fit_temperature
from src.evaluation.metrics import expected_calibration_error, selective_metrics
from src.inference.pipeline import merge_hops, smooth, speaking_time
from src.models.blocks import BlockEnsemble
from src.models.checkpoint import TrainedClassifier, softmax
from src.models.pitch import PitchThreshold
from src.training.splits import speaker_disjoint_split


def test_ece_of_a_known_miscalibration():
    y = np.array([1] * 6 + [0] * 4)  # every answer says male at 0.9, and 60 % are male
    proba = np.tile([0.1, 0.9], (10, 1))
    assert expected_calibration_error(y, proba) == pytest.approx(0.3)
    rng = np.random.default_rng(0)  # calibrated by construction: labels drawn from the probabilities
    p = rng.uniform(0, 1, 200_000)
    y = (rng.uniform(0, 1, len(p)) < p).astype(int)
    assert expected_calibration_error(y, np.stack([1 - p, p], 1)) < 0.01


def test_temperature_fit_recovers_a_known_temperature():
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 4, (20_000, 2))
    t_true = 2.5
    p = softmax(logits / t_true)
    y = (rng.uniform(0, 1, len(p)) < p[:, 1]).astype(int)
    assert fit_temperature(logits, y) == pytest.approx(t_true, rel=0.05)


def test_speaker_disjoint_split_edge_cases():
    speakers = np.array([f"s{i}" for i in range(6) for _ in range(3)])  # 3 speakers a class, 3 clips each
    y = np.array([0] * 9 + [1] * 9)
    split = speaker_disjoint_split(speakers, y, 0.15, 0.15, seed=0)
    for c in (0, 1):
        assert sorted(split[y == c][::3]) == ["test", "train", "val"]  # one speaker each: the minimum
    for spk in set(speakers):
        assert len(set(split[speakers == spk])) == 1
    assert (speaker_disjoint_split(speakers, y, 0.15, 0.15, seed=0) == split).all()
    with pytest.raises(DatasetError, match="only 2 female speaker"):
        speaker_disjoint_split(speakers[3:], y[3:], 0.15, 0.15, seed=0)


def test_selective_metrics_by_hand():
    y = np.array([1, 1, 0, 0, 1])
    p_male = np.array([0.95, 0.3, 0.05, 0.92, 0.55])  # right, wrong, right, wrong (confident), right
    answered = np.array([True, True, True, True, False])
    m = selective_metrics(y, np.stack([1 - p_male, p_male], 1), answered)
    assert m["accuracy"] == pytest.approx(3 / 5) and m["coverage"] == pytest.approx(4 / 5)
    assert m["answered_accuracy"] == pytest.approx(2 / 4)
    assert m["n_confident"] == 3 and m["confident_wrong"] == pytest.approx(1 / 3)


@pytest.mark.parametrize("n", [2, 3, 4, 5, 7])
def test_smooth_is_a_centred_mean_of_the_same_length_also_when_shorter_than_its_window(n):
    """Two scored hops smoothed over 3 came back as 3 values (np.convolve's "same" takes the longer
    length), the second one the wrong mean."""
    rng = np.random.default_rng(n)
    for size in range(1, 10):
        p = rng.random(size)
        want = [p[max(0, i - n // 2):i + (n - 1) // 2 + 1].mean() for i in range(size)]
        assert np.allclose(smooth(p, n), want), (n, size)


def test_smooth_and_merge_hops():
    assert np.allclose(smooth(np.full(7, 0.3), 3), 0.3)
    assert np.allclose(smooth(np.array([0.0, 1.0, 0.0]), 3), [0.5, 1 / 3, 0.5])
    label = lambda p: "male" if p >= 0.5 else "female"  # noqa: E731
    segs = merge_hops(np.array([0, 1, 2, 4, 5]), np.array([0.9, 0.8, 0.2, 0.1, 0.1]), 0.5, label)
    assert [(s.start_s, s.end_s, s.label) for s in segs] == [(0.0, 1.0, "male"), (1.0, 1.5, "female"),
                                                             (2.0, 3.0, "female")]  # hop 3 missing: a gap
    assert segs[0].p_male == pytest.approx(0.85)
    assert speaking_time(segs) == {"male": 1.0, "female": 1.5}


def test_pitch_threshold_between_the_classes():
    f0 = np.array([100.0, 110, 120, 130, 0.0, 190, 200, 210, 220])  # one unvoiced clip
    y = np.array([1, 1, 1, 1, 1, 0, 0, 0, 0])
    x = np.zeros((len(f0), 3))
    x[:, 1] = f0
    m = PitchThreshold(f0_index=1).fit(x, y)
    assert 130 < m.threshold_hz < 190 and m.train_balanced_accuracy == 1.0
    d = m.decision_function(x)
    assert (d[f0 > 0][y[f0 > 0] == 1] > 0).all() and (d[y == 0] < 0).all() and d[4] == 0.0


def test_block_ensemble_averages_its_blocks():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 400)
    x = np.c_[y + rng.normal(0, 0.5, 400), rng.normal(0, 1, (400, 3))]  # column 0 knows, the rest is noise
    model = BlockEnsemble([[0, 1], [1, 4]]).fit(x, y)
    p = model.predict_proba(x)
    parts = [m.predict_proba(x[:, s:e]) for m, (s, e) in zip(model.models_, model.blocks)]
    assert np.allclose(p, (parts[0] + parts[1]) / 2) and (model.predict(x) == y).mean() > 0.8
    with pytest.raises(ValueError, match="go past"):
        BlockEnsemble([[0, 9]]).fit(x, y)


class _Fixed:
    """A stand-in estimator that answers the same probabilities for every row."""

    def __init__(self, p):
        self.p = np.asarray(p, float)

    def predict_proba(self, x):
        return np.tile(self.p, (len(x), 1))


def _head(p, classes=("female", "male"), temperature=1.0):
    return TrainedClassifier(model=_Fixed(p), model_target="", model_kwargs={}, mean=np.zeros(2, np.float32),
                             std=np.ones(2, np.float32), classes=classes, temperature=temperature)


def test_age_group_heads_are_mixed_by_the_age_heads_probabilities():
    clf = _head([0.5, 0.5])
    clf.age_head = _head([0.25, 0.75], classes=("child", "adult"))
    clf.group_heads = {"child": _head([0.9, 0.1]), "adult": _head([0.2, 0.8])}
    p = clf.predict_proba(np.zeros((3, 2)))
    assert np.allclose(p, 0.25 * np.array([0.9, 0.1]) + 0.75 * np.array([0.2, 0.8]))
    del clf.group_heads["child"]  # a group without its own head: the pooled head answers for it
    assert np.allclose(clf.predict_proba(np.zeros((1, 2))), 0.25 * np.array([0.5, 0.5]) + 0.75 * np.array([0.2, 0.8]))
    blob = clf.to_blob()  # and it all survives a save
    back = TrainedClassifier.from_blob(blob)
    assert back.age_head.classes == ("child", "adult") and set(back.group_heads) == {"adult"}
