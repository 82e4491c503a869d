"""End to end is a model kind: a network defined here, in the test, trained through the real path
(``run_train`` on the bundled sample's real audio with the real Silero VAD), then served by
``GenderPipeline.from_run`` and scored by ``evaluate`` with nothing else registered anywhere."""

from __future__ import annotations

import csv
import json

import pytest
import torch
from omegaconf import OmegaConf
from test_train import compose_cfg
from torch import nn

from src.evaluate import evaluate_run
from src.inference.pipeline import GenderPipeline
from src.inference.run_folder import RunFolder
from src.models.checkpoint import CHECKPOINT_NAME, END_TO_END, TrainedClassifier, read_checkpoint
from src.models.frontends import LogMel
from src.models.run_folder import METRICS_NAME, PREDICTIONS_NAME
from src.train import run_train

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class TinyNet(nn.Module):
    """The smallest network that keeps the end-to-end protocol: mean log-mel spectrum -> ReLU layer ->
    gender head (no batch norm, no age head unless asked)."""

    def __init__(self, width: int = 8, n_mels: int = 32, n_age_bands: int = 0):
        super().__init__()
        self.frontend = LogMel(n_mels=n_mels)
        self.hidden = nn.Sequential(nn.Linear(2 * n_mels, width), nn.ReLU())
        self.gender_head = nn.Linear(width, 2)
        self.age_head = nn.Linear(width, n_age_bands) if n_age_bands else None

    def embed(self, wave: torch.Tensor) -> torch.Tensor:
        x = torch.log(self.frontend.mel(wave) + 1e-6)  # (B, mels, frames): level and spread per band
        return self.hidden(torch.cat([x.mean(-1), x.std(-1)], dim=1))

    def forward(self, wave):
        h = self.embed(wave)
        return self.gender_head(h), (self.age_head(h) if self.age_head is not None else None)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    cfg = compose_cfg("train", "model=melcnn", "trainer.max_epochs=4", "trainer.batch_size=16", "speech.crop_s=1.0")
    cfg.model = OmegaConf.create({"name": "tinynet", "kind": "end_to_end", "_target_": f"{__name__}.TinyNet",
                                  "width": 8, "age_loss_weight": 0.5, "age_bands": "auto"})
    run_dir = tmp_path_factory.mktemp("runs") / "tinynet-2026-01-01_00-00-00"
    return run_dir, run_train(cfg, run_dir)


def test_a_network_defined_in_a_test_trains_through_the_real_path(tiny_run):
    run_dir, metrics = tiny_run
    assert json.loads((run_dir / METRICS_NAME).read_text())["model"] == "tinynet"
    assert metrics["encoder"]["encoder"] == "tinynet" and metrics["encoder"]["dim"] == 8
    assert 1 <= metrics["epochs"] <= 4 and metrics["temperature"] > 0
    assert metrics["age"]["bands"] == ["child", "adult"]  # the sample's age groups reached the age head
    blob = read_checkpoint(run_dir / CHECKPOINT_NAME)
    assert blob["kind"] == END_TO_END and blob["model_target"].endswith("TinyNet")
    with pytest.raises(ValueError, match="end-to-end"):
        TrainedClassifier.load(run_dir / CHECKPOINT_NAME)


def test_the_one_loader_and_the_pipeline_serve_it(tiny_run):
    run_dir, _ = tiny_run
    rm = RunFolder.open(run_dir).load()
    assert rm.kind == END_TO_END and rm.reads_audio and rm.encoder.name == "tinynet" and rm.encoder.dim == 8
    pipe = GenderPipeline.from_run(run_dir)
    with open(run_dir / PREDICTIONS_NAME, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["split"] == "test"][:4]
    for r in rows:
        result = pipe(r["path"])
        assert result.status in ("ok", "unknown") and result.age_band in ("child", "adult")
        assert result.p_male == pytest.approx(float(r["p_male"]), abs=0.02), r["path"]


def test_evaluate_reads_its_audio(tiny_run, tmp_path):
    run_dir, _ = tiny_run
    cfg = compose_cfg("train", "model=melcnn")
    metrics = evaluate_run(run_dir, tmp_path / "no-embeddings", "sample", cfg.data)
    with open(run_dir / PREDICTIONS_NAME, newline="") as f:
        trained = {r["id"]: float(r["p_male"]) for r in csv.DictReader(f)}
    with open(run_dir / "eval-sample" / PREDICTIONS_NAME, newline="") as f:
        scored = {r["id"]: float(r["p_male"]) for r in csv.DictReader(f)}
    assert scored.keys() == trained.keys() and max(abs(scored[k] - trained[k]) for k in scored) < 1e-4
    assert metrics["source"].endswith("manifest.csv")


def test_run_key_names_end_to_end_runs_by_model():
    assert compose_cfg("train", "model=crnn").run_key == "crnn"
    assert compose_cfg("train", "model=fnn", "encoder=acoustic").run_key == "acoustic"


def test_speech_settings_are_defined_once():
    """The ``speech`` group's schema and defaults are the dataclass; an override reaches the run's parameters."""
    from dataclasses import asdict

    from src.building import speech_params
    from src.data.speech import SpeechParams

    cfg = compose_cfg("train", "model=crnn", "speech.crop_s=1.5", "speech.augment.noise_prob=0")
    no_noise = SpeechParams().augment.__class__(noise_prob=0.0)
    assert speech_params(cfg.speech) == SpeechParams(crop_s=1.5, augment=no_noise)
    assert OmegaConf.to_container(compose_cfg("train").speech) == asdict(SpeechParams())
    with pytest.raises(Exception, match="crop_seconds"):
        compose_cfg("train", "speech.crop_seconds=1")
