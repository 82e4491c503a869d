"""``model=crnn``: the CNN + bidirectional LSTM on MFCC sequences, trained end to end on the bundled
sample's real audio (real decoding, real Silero VAD) in seconds. Its numbers mean nothing here; the
tests check the network, the run folder and that inference reproduces what training wrote."""

from __future__ import annotations

import csv

import pytest
import torch
from test_train import compose_cfg

from src.inference.pipeline import GenderPipeline
from src.models.crnn import CRNN
from src.models.run_folder import PREDICTIONS_NAME
from src.train import run_train

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = ("model=crnn", "trainer.max_epochs=2", "trainer.batch_size=16", "speech.crop_s=1.0",
        "model.conv_channels=[8,8]", "model.rnn_hidden=8")


@pytest.mark.parametrize("rnn", ["lstm", "gru"])
def test_network_shapes_and_short_input(rnn):
    net = CRNN(conv_channels=(8, 8), rnn=rnn, rnn_hidden=8, n_age_bands=3).eval()
    g, a = net(torch.randn(2, 16_000))
    assert g.shape == (2, 2) and a.shape == (2, 3) and net.embed(torch.randn(1, 50)).shape == (1, 16)
    with pytest.raises(ValueError, match="lstm or gru"):
        CRNN(rnn="transformer")


def test_crnn_trains_on_the_sample_and_serves_as_trained(tmp_path):
    run_dir = tmp_path / "crnn-2026-01-01_00-00-00"
    metrics = run_train(compose_cfg("train", *TINY), run_dir)
    assert metrics["model"] == "crnn" and metrics["model_class"] == "src.models.crnn.CRNN"
    assert metrics["encoder"]["encoder"] == "crnn" and metrics["encoder"]["dim"] == 16
    assert 1 <= metrics["epochs"] <= 2 and 0.0 <= metrics["test"]["accuracy"] <= 1.0
    assert metrics["age"]["bands"] == ["child", "adult"]
    pipe = GenderPipeline.from_run(run_dir)
    with open(run_dir / PREDICTIONS_NAME, newline="") as f:
        test = [r for r in csv.DictReader(f) if r["split"] == "test"][:4]
    for r in test:
        result = pipe(r["path"])
        assert result.status in ("ok", "unknown") and result.model == run_dir.name
        assert result.p_male == pytest.approx(float(r["p_male"]), abs=0.02), r["path"]
