"""Classic baselines (issue #7): scikit-learn models and the 5-layer MLP, the pitch
threshold, the ``acoustic`` and ``mel128`` encoders and the ``commonvoice_mel128`` source.

Everything runs on real data: the bundled sample's real Resemblyzer embeddings (shared
with ``test_train.py``), the ``acoustic`` features extracted from the sample's real
speech through ``src.extract``, and a seeded 2,000-row subset of the shared Common Voice
mel features (skipped when ``../shared/data/commonvoice-mel128`` is not on the machine).
Sample-sized numbers mean nothing; the tests check behaviour and structure.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf
from test_train import compose_cfg, extract_to, sample_embeddings

from src.compare import compare_runs
from src.embeddings.dataset import load_embedding_set
from src.embeddings.features import prepare_commonvoice_mel128
from src.embeddings.shards import done_path
from src.embeddings.store import embeddings_path, read_records
from src.encoders.acoustic import F0_MEDIAN_INDEX, AcousticEncoder
from src.encoders.mel128 import Mel128Encoder
from src.models.checkpoint import CHECKPOINT_NAME, TrainedClassifier
from src.models.run_folder import METRICS_NAME, PREDICTIONS_NAME
from src.train import run_train

REPO_DIR = Path(__file__).resolve().parents[1]
MEL128_DIR = REPO_DIR.parent / "shared" / "data" / "commonvoice-mel128"
SKLEARN_MODELS = ("logreg", "svm", "forest", "boosting")
MALE_F0_UNDER_HZ = 165.0

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="session")
def embeddings_dir(tmp_path_factory) -> Path:
    return sample_embeddings(tmp_path_factory)


@pytest.fixture(scope="session")
def acoustic_dir(tmp_path_factory) -> Path:
    """The whole sample through ``src.extract encoder=acoustic`` (real VAD, real speech)."""
    return extract_to(tmp_path_factory.mktemp("emb-acoustic"), "encoder=acoustic")


def train(embeddings_dir: Path, run_dir: Path, *overrides: str) -> dict:
    cfg = compose_cfg("train", f"paths.embeddings_dir={embeddings_dir}", "trainer.max_epochs=20", *overrides)
    return run_train(cfg, run_dir)


def assert_checkpoint_reproduces(run_dir: Path, embeddings_dir: Path, encoder: str) -> TrainedClassifier:
    """best.pt loads and gives the p(male) written in predictions.csv."""
    assert {"best.pt", METRICS_NAME, PREDICTIONS_NAME, "config.yaml"} <= {p.name for p in run_dir.iterdir()}
    assert list(run_dir.glob("events.out.tfevents.*")), "TensorBoard events"
    clf = TrainedClassifier.load(run_dir / CHECKPOINT_NAME)
    data = load_embedding_set(embeddings_dir, encoder)
    pred = pd.read_csv(run_dir / PREDICTIONS_NAME, keep_default_na=False).set_index("id").loc[data.ids]
    np.testing.assert_allclose(clf.predict_proba(data.x)[:, 1], pred["p_male"], atol=2e-6)
    return clf


@pytest.mark.parametrize("model", [*SKLEARN_MODELS, "mlp5"])
def test_model_trains_and_checkpoint_loads(embeddings_dir, tmp_path, model):
    run_dir = tmp_path / f"resemblyzer-{model}"
    metrics = train(embeddings_dir, run_dir, f"model={model}")
    assert metrics["model"] == model
    assert 0.0 <= metrics["test"]["accuracy"] <= 1.0 and metrics["temperature"] > 0
    clf = assert_checkpoint_reproduces(run_dir, embeddings_dir, "resemblyzer")
    saved = json.loads((run_dir / METRICS_NAME).read_text())
    assert saved["model"] == model and saved["test"]["accuracy"] == pytest.approx(metrics["test"]["accuracy"])
    if model == "mlp5":
        import torch

        linears = [m for m in clf.model.modules() if isinstance(m, torch.nn.Linear)]
        assert [m.out_features for m in linears] == [256, 256, 128, 128, 64, 2]
        assert metrics["epochs"] > 0
    else:
        assert not isinstance(clf.model, __import__("torch").nn.Module) and metrics["epochs"] == 0


def test_pipeline_from_sklearn_run(embeddings_dir, tmp_path, sample_clips):
    from src.inference.pipeline import GenderPipeline

    run_dir = tmp_path / "resemblyzer-logreg"
    train(embeddings_dir, run_dir, "model=logreg")
    pipe = GenderPipeline.from_run(run_dir)
    clip = next(c for c in sample_clips if c.groups.get("corpus") == "vctk")
    result = pipe(clip.path)
    assert (result.status, result.label) in {("ok", "female"), ("ok", "male"), ("unknown", "unknown")}
    assert result.p_male == pytest.approx(1 - result.p_female)


def test_compare_one_row_per_encoder_and_model(embeddings_dir, tmp_path):
    runs = tmp_path / "runs"
    for i, model in enumerate(("fnn", "logreg", "logreg")):  # the second logreg run is the newer one
        train(embeddings_dir, runs / f"resemblyzer-2026-01-0{i + 1}_00-00-00", f"model={model}")
    table = compare_runs(runs, tmp_path / "out")
    assert sorted(table["model"]) == ["fnn", "logreg"]
    assert set(table["run"]) == {"resemblyzer-2026-01-01_00-00-00", "resemblyzer-2026-01-03_00-00-00"}
    assert table.set_index("model").loc["logreg", "early_stopped"] == "n/a"


# ------------------------------------------------------------------------------- acoustic + pitch


def test_acoustic_f0_separates_adult_voices(acoustic_dir):
    """Median F0 under 165 Hz for most adult male clips, over it for most adult female clips."""
    recs = [r for r in read_records(acoustic_dir, "acoustic") if r["status"] == "ok"]
    assert recs and all(len(r["embedding"]) == AcousticEncoder.dim for r in recs)
    adults = [r for r in recs if r["groups"].get("age_group") != "child"]
    f0 = {g: np.array([r["embedding"][F0_MEDIAN_INDEX] for r in adults if r["gender"] == g])
          for g in ("female", "male")}
    assert len(f0["male"]) >= 10 and len(f0["female"]) >= 10
    assert (f0["male"] < MALE_F0_UNDER_HZ).mean() >= 0.75, sorted(f0["male"])
    assert (f0["female"] > MALE_F0_UNDER_HZ).mean() >= 0.75, sorted(f0["female"])


def test_pitch_threshold_on_sample(acoustic_dir, tmp_path):
    run_dir = tmp_path / "acoustic-pitch"
    metrics = train(acoustic_dir, run_dir, "encoder=acoustic", "model=pitch")
    assert 80.0 < metrics["threshold_hz"] < 300.0
    clf = assert_checkpoint_reproduces(run_dir, acoustic_dir, "acoustic")
    assert clf.model.threshold_hz == pytest.approx(metrics["threshold_hz"])
    assert (clf.mean == 0).all() and (clf.std == 1).all()  # raw Hz in, no normalisation


@pytest.mark.parametrize("model", ["fnn", "logreg"])
def test_acoustic_features_train(acoustic_dir, tmp_path, model):
    metrics = train(acoustic_dir, tmp_path / f"acoustic-{model}", "encoder=acoustic", f"model={model}")
    assert metrics["encoder"]["encoder"] == "acoustic" and 0.0 <= metrics["test"]["accuracy"] <= 1.0


def test_mel128_encoder_on_real_speech(speech_clip):
    _, wave = speech_clip
    x = Mel128Encoder().embed([wave, wave[: len(wave) // 2]])
    assert x.shape == (2, 128) and x.dtype == np.float32 and np.isfinite(x).all() and (x >= 0).all()
    assert x[0, :100].mean() > 10 * x[0, -10:].mean()  # 16 kHz speech: nothing above 8 kHz


# ------------------------------------------------------------------------------- commonvoice_mel128

needs_mel128 = pytest.mark.skipif(not (MEL128_DIR / "features.npy").exists(), reason=f"{MEL128_DIR} not here")


@needs_mel128
@pytest.mark.parametrize("protocol", ["random", "official"])
def test_commonvoice_mel128_trains_on_a_subset(tmp_path, protocol):
    emb = tmp_path / "emb"
    overrides = ["data=commonvoice_mel128", "encoder=mel128", "model=logreg", f"data.protocol={protocol}",
                 "data.max_rows=2000", f"data.features_dir={MEL128_DIR}", f"paths.embeddings_dir={emb}"]
    metrics = train(emb, tmp_path / "run", *overrides)
    assert metrics["data"] == "commonvoice_mel128" and metrics["protocol"] == protocol
    assert metrics["test"]["accuracy"] > 0.6
    recs = read_records(emb, "mel128")
    assert len(recs) == 2000 and all(r["speaker"] == r["id"] for r in recs)
    splits = pd.Series([r["split"] for r in recs])
    subsets = pd.Series([r["groups"]["subset"] for r in recs])
    if protocol == "official":
        assert (splits == subsets.str.rsplit("-", n=1).str[1].map({"train": "train", "dev": "val",
                                                                   "test": "test"})).all()
    else:
        share = splits.value_counts(normalize=True)
        assert share["train"] == pytest.approx(0.81, abs=0.01) and share["test"] == pytest.approx(0.10, abs=0.01)
    # a second run with the same options keeps the store; another protocol rewrites it
    path = embeddings_path(emb, "mel128")
    before = path.stat().st_mtime_ns
    prepare_commonvoice_mel128(MEL128_DIR, emb, protocol=protocol, max_rows=2000)
    assert path.stat().st_mtime_ns == before
    other = "random" if protocol == "official" else "official"
    prepare_commonvoice_mel128(MEL128_DIR, emb, protocol=other, max_rows=2000)
    assert json.loads(path.with_suffix(".meta.json").read_text())["options"]["protocol"] == other
    whole = path.read_text()
    # a run killed mid-write (half a line, no done marker) resumes: the same records, each once
    lines = whole.splitlines(keepends=True)
    path.write_text("".join(lines[:700]) + lines[700][:40])
    done_path(path).unlink()
    prepare_commonvoice_mel128(MEL128_DIR, emb, protocol=other, max_rows=2000)
    assert sorted(path.read_text().splitlines()) == sorted(whole.splitlines()) and done_path(path).exists()


@needs_mel128
def test_run_trained_on_mel128_features_serves_audio(tmp_path, sample_clips):
    """The precomputed vectors carry the mel128 encoder's identity, so the run classifies our audio."""
    from src.inference.pipeline import GenderPipeline

    emb, run_dir = tmp_path / "emb", tmp_path / "mel128-run"
    train(emb, run_dir, "data=commonvoice_mel128", "encoder=mel128", "model=logreg", "data.max_rows=2000",
          f"data.features_dir={MEL128_DIR}", f"paths.embeddings_dir={emb}")
    result = GenderPipeline.from_run(run_dir)(sample_clips[0].path)
    assert result.status in ("ok", "unknown") and 0.0 <= result.p_male <= 1.0  # unknown: answered, not sure


def test_mel128_source_needs_the_mel128_encoder(tmp_path):
    cfg = compose_cfg("train", "data=commonvoice_mel128", "encoder=resemblyzer", f"paths.embeddings_dir={tmp_path}")
    with pytest.raises(ValueError, match="encoder=mel128"):
        run_train(cfg, tmp_path / "run")


def test_model_configs_compose():
    for key in (*SKLEARN_MODELS, "mlp5", "pitch", "fnn"):
        cfg = compose_cfg("train", f"model={key}")
        assert cfg.model.name == key
        OmegaConf.to_container(cfg.model, resolve=True)
