"""The published Common Voice mel-128 recipe (``+experiment=cv_mel128_published``): its split row for
row, its network, trained through the real path on a subset of the real precomputed features."""

from __future__ import annotations

import pytest
import torch
from test_baselines import MEL128_DIR, needs_mel128
from test_train import compose_cfg
from torch import nn

from src.embeddings.features import published_protocol, random_protocol
from src.models.checkpoint import CHECKPOINT_NAME, TrainedClassifier
from src.models.mlp import DenseMLP
from src.train import run_train

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_published_split_sizes_and_determinism():
    n = 66_938
    s = published_protocol(n)
    counts = {k: int((s == k).sum()) for k in ("train", "val", "test")}
    # train_test_split rounds the test share up: ceil(0.1 * 66938) = 6694, then ceil(0.1 * 60244) = 6025
    assert counts == {"train": 54_219, "val": 6_025, "test": 6_694}
    assert (published_protocol(n) == s).all()
    assert (random_protocol(n, 0) != s).mean() > 0.1, "not the toolkit's own seeded split"


def test_single_logit_is_a_sigmoid_unit_with_binary_cross_entropy():
    torch.manual_seed(0)
    net = DenseMLP(8, hidden_dims=(4,), single_logit=True, init="glorot", first_activation=False).eval()
    x, y = torch.randn(16, 8), torch.randint(0, 2, (16,))
    logits = net(x)
    d = net.net(x)[:, 0]
    assert torch.allclose(logits.softmax(1)[:, 1], torch.sigmoid(d), atol=1e-6)
    assert torch.allclose(nn.functional.cross_entropy(logits, y),
                          nn.functional.binary_cross_entropy_with_logits(d, y.float()), atol=1e-6)
    linear_then = [type(m).__name__ for m in net.net]
    assert linear_then == ["Linear", "Dropout", "Linear"], "no activation after the first layer, as published"
    assert all((m.bias == 0).all() for m in net.net if isinstance(m, nn.Linear)), "Keras' zero biases"


def test_experiment_config_is_the_published_recipe():
    cfg = compose_cfg("train", "+experiment=cv_mel128_published")
    assert (cfg.data.name, cfg.encoder.name, cfg.model.name, cfg.data.protocol) == (
        "commonvoice_mel128", "mel128", "mlp5", "published")
    t = cfg.trainer
    assert (t.optimizer, t.lr, t.weight_decay, t.batch_size, t.patience, t.min_delta, t.max_epochs, t.balance) == (
        "adam", 0.001, 0.0, 64, 5, 0.0, 100, "none")
    assert cfg.model.raw_inputs and cfg.model.single_logit and not cfg.model.first_activation


@needs_mel128
def test_published_recipe_trains_on_real_features(tmp_path):
    cfg = compose_cfg("train", "+experiment=cv_mel128_published", "data.max_rows=3000", "trainer.max_epochs=3",
                      f"data.features_dir={MEL128_DIR}", f"paths.embeddings_dir={tmp_path / 'emb'}")
    metrics = run_train(cfg, tmp_path / "run")
    assert metrics["protocol"] == "published" and 1 <= metrics["epochs"] <= 3
    assert metrics["test"]["accuracy"] > 0.6  # 3 epochs on 2,430 raw mean-mel vectors
    clf = TrainedClassifier.load(tmp_path / "run" / CHECKPOINT_NAME)
    assert (clf.mean == 0).all() and (clf.std == 1).all(), "raw features, no normalisation"
    assert clf.model.single_logit and clf.model.net[-1].out_features == 1


def test_the_better_recipe_is_mlp5_on_raw_features_with_the_toolkit_trainer():
    cfg = compose_cfg("train", "+experiment=cv_mel128")
    default = compose_cfg("train", "model=mlp5")
    assert cfg.data.protocol == "published" and cfg.model.raw_inputs
    assert {k: v for k, v in cfg.model.items() if k != "raw_inputs"} == {
        k: v for k, v in default.model.items() if k != "raw_inputs"}
    assert cfg.trainer == default.trainer
