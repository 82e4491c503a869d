"""``model=melcnn``: the log-mel CNN trained end to end from the bundled sample's real audio
(real decoding, real Silero VAD), with and without the age head.

Runs are shrunk to a few epochs on 1 s crops: their numbers mean nothing; the tests check
the run folder, the metrics' structure, the age metrics and the error messages.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from test_train import compose_cfg

from src.analyze import analyze_run
from src.compare import compare_runs
from src.data.speech import CropAugmentParams, augment, random_crop
from src.inference.run_folder import RunFolder
from src.models.run_folder import METRICS_NAME, PREDICTIONS_NAME
from src.train import run_train
from src.training.age_bands import AGE_PREDICTIONS_NAME, AgeLabelError, age_labels, age_metrics

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = ("model=melcnn", "trainer.max_epochs=3", "trainer.batch_size=16", "speech.crop_s=1.0",
        "model.channels=[8,16,16,16]")
GENDER_KEYS = {"accuracy", "balanced_accuracy", "per_class", "confusion_matrix", "roc_auc", "log_loss", "ece",
               "ece_before_calibration", "accuracy_by_duration", "accuracy_by_group"}
PREDICTION_COLUMNS = ["id", "path", "speaker", "split", "gender", "speech_s", "p_male_uncalibrated", "p_male",
                      "predicted", "correct"]


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory) -> tuple[Path, dict]:
    """A tiny melcnn run on the whole sample, age head on (its VCTK and speechocean762 clips have ages)."""
    run_dir = tmp_path_factory.mktemp("runs") / "melcnn-2026-01-01_00-00-00"
    return run_dir, run_train(compose_cfg("train", *TINY), run_dir)


@pytest.fixture
def no_age_manifest(sample_clips, manifest_of, tmp_path) -> Path:
    """The sample's LibriSpeech and CMU ARCTIC clips (11 speakers per gender), without any age column."""
    clips = [c for c in sample_clips if c.groups["corpus"] in ("librispeech", "cmu_arctic")]
    return manifest_of(clips, tmp_path / "no-age" / "manifest.csv")


def test_run_folder_and_gender_metrics(sample_run):
    run_dir, metrics = sample_run
    assert {"config.yaml", "best.pt", PREDICTIONS_NAME, METRICS_NAME, AGE_PREDICTIONS_NAME} <= {
        p.name for p in run_dir.iterdir()}
    assert list(run_dir.glob("events.out.tfevents.*")), "TensorBoard events"
    saved = json.loads((run_dir / METRICS_NAME).read_text())
    assert saved["model"] == "melcnn" and saved["encoder"]["encoder"] == "melcnn" and saved["end_to_end"]
    assert 1 <= saved["epochs"] <= 3 and saved["temperature"] > 0
    for s in ("val", "test"):
        assert GENDER_KEYS <= set(saved[s])
        assert 0.0 <= saved[s]["accuracy"] <= 1.0
        assert set(saved[s]["accuracy_by_group"]) == {"corpus", "age_group"}
    with open(run_dir / PREDICTIONS_NAME, newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0])[:len(PREDICTION_COLUMNS)] == PREDICTION_COLUMNS
    assert len(rows) == sum(v["clips"] for s in saved["splits"].values() for v in s.values()) >= 60
    owners: dict[str, set[str]] = {}
    for r in rows:
        owners.setdefault(r["speaker"], set()).add(r["split"])
    assert all(len(v) == 1 for v in owners.values()), "speaker-disjoint splits"


def test_age_metrics(sample_run):
    run_dir, metrics = sample_run
    age = metrics["age"]
    assert age["source"] == "age_group" and age["bands"] == ["child", "adult"]  # the sample has no teens
    assert age["band_age_years"][0] < 13 < age["band_age_years"][1]
    for s in ("train", "val", "test"):
        a = age[s]
        assert a["n"] == sum(v["n"] for v in a["per_band"].values()) > 0
        assert 0.0 <= a["accuracy"] <= 1.0 and a["mae_years"] >= 0 and a["n_with_age"] == a["n"]
        assert np.sum(a["confusion_matrix"]) == a["n"]
    with open(run_dir / AGE_PREDICTIONS_NAME, newline="") as f:
        rows = list(csv.DictReader(f))
    unknown = [r for r in rows if r["age_band"] == ""]
    assert unknown and all(r["age"] == "" for r in unknown), "clips without an age group are masked, not guessed"


def test_compare_latest_and_analyze_include_melcnn(sample_run, tmp_path):
    run_dir, _ = sample_run
    table = compare_runs(run_dir.parent, tmp_path / "out")
    assert "melcnn" in set(table["encoder"]) and "melcnn" in set(table["model"])
    assert RunFolder.resolve("latest:melcnn", run_dir.parent).dir == run_dir
    assert RunFolder.resolve("latest", run_dir.parent).dir == run_dir  # predict, serve, ... can use it
    written = analyze_run(run_dir, tmp_path / "analysis", copy_audio=False)
    assert written["reliability"].exists()
    assert written["umap"] == run_dir / "melcnn-embeddings.png" and written["umap"].read_bytes()[:4] == b"\x89PNG"


def test_pipeline_serves_a_melcnn_run_as_trained(sample_run):
    """The pipeline (VAD in one piece, trunk, calibrated head) gives each test clip the p(male) the
    training run wrote for it (batched VAD, whole-network forward pass)."""
    from src.inference.pipeline import GenderPipeline

    run_dir, _ = sample_run
    pipe = GenderPipeline.from_run(run_dir)
    with open(run_dir / PREDICTIONS_NAME, newline="") as f:
        test = [r for r in csv.DictReader(f) if r["split"] == "test"]
    with open(run_dir / AGE_PREDICTIONS_NAME, newline="") as f:
        age_rows = {r["id"]: r for r in csv.DictReader(f)}
    for r in test[:6]:
        result = pipe(r["path"])
        assert result.status in ("ok", "unknown")  # unknown: answered, not sure
        assert result.p_male == pytest.approx(float(r["p_male"]), abs=0.02), r["path"]
        age = age_rows[r["id"]]  # the run's age head, through the same trunk features
        assert result.age_band == age["predicted_band"]
        assert result.p_age_band == pytest.approx(float(age["p_predicted_band"]), abs=0.02)


def test_evaluate_scores_a_melcnn_run_on_audio(sample_run, tmp_path):
    """``evaluate`` on an end-to-end run decodes the source's audio; on its own training data it
    reproduces the run's predictions clip for clip."""
    from src.evaluate import evaluate_run

    run_dir, _ = sample_run
    cfg = compose_cfg("train", *TINY)
    metrics = evaluate_run(run_dir, tmp_path / "no-embeddings", "sample", cfg.data)
    with open(run_dir / PREDICTIONS_NAME, newline="") as f:
        trained = {r["id"]: float(r["p_male"]) for r in csv.DictReader(f)}
    with open(run_dir / "eval-sample" / PREDICTIONS_NAME, newline="") as f:
        scored = {r["id"]: float(r["p_male"]) for r in csv.DictReader(f)}
    assert scored.keys() == trained.keys()
    assert max(abs(scored[k] - trained[k]) for k in scored) < 1e-4
    assert metrics["all"]["accuracy"] == pytest.approx(
        np.mean([(trained[k] >= 0.5) == (k_gender == "male") for k, k_gender in _genders(run_dir).items()]))
    row = compare_runs(run_dir.parent, tmp_path / "out").set_index("encoder").loc["melcnn"]  # cross-corpus columns
    assert row["sample_accuracy"] == pytest.approx(metrics["all"]["accuracy"], abs=1e-4)
    assert row["sample_vctk"] == pytest.approx(metrics["all"]["accuracy_by_group"]["corpus"]["vctk"]["accuracy"],
                                               abs=1e-4)


def _genders(run_dir: Path) -> dict[str, str]:
    with open(run_dir / PREDICTIONS_NAME, newline="") as f:
        return {r["id"]: r["gender"] for r in csv.DictReader(f)}


def test_age_head_without_ages_is_a_clear_error(no_age_manifest, tmp_path):
    cfg = compose_cfg("train", *TINY, "data=manifest", f"data.manifest_path={no_age_manifest}")
    with pytest.raises(AgeLabelError, match=r"age_loss_weight>0 but .*manifest.csv has no age or age_group "
                                            r"values; set model.age_loss_weight=0"):
        run_train(cfg, tmp_path / "run")


def test_age_head_off_trains_without_ages(no_age_manifest, tmp_path):
    cfg = compose_cfg("train", *TINY, "trainer.max_epochs=2", "data=manifest",
                      f"data.manifest_path={no_age_manifest}", "model.age_loss_weight=0")
    metrics = run_train(cfg, tmp_path / "run")
    assert "age" not in metrics and not (tmp_path / "run" / AGE_PREDICTIONS_NAME).exists()
    assert (tmp_path / "run" / METRICS_NAME).exists() and 0.0 <= metrics["test"]["accuracy"] <= 1.0


def test_melcnn_needs_audio(tmp_path):
    with pytest.raises(ValueError, match="has no audio .*model=melcnn trains from audio"):
        run_train(compose_cfg("train", "model=melcnn", "data=commonvoice_mel128"), tmp_path / "run")


def test_age_bands_from_groups_and_decades():
    groups, years = np.array(["adult", "", "child", "", "teen"]), np.array([30, 9, 8, np.nan, 15], float)
    by_group = age_labels(groups, years)
    assert by_group.bands == ["child", "teen", "adult"] and by_group.labels.tolist() == [2, 0, 0, -1, 1]
    decades = age_labels(np.array([""] * 5), years)
    assert decades.source == "decades" and decades.bands == ["0-9", "10-19", "30-39"]
    assert decades.labels.tolist() == [2, 0, 0, -1, 1]
    assert age_labels(np.array(["", ""]), np.array([np.nan, np.nan])) is None
    m = age_metrics(np.array([0, 1, -1]), np.array([0, 0, 1]), np.array([7.0, 30.0, np.nan]), ["child", "adult"],
                    [7.0, 25.0])
    assert m["n"] == 2 and m["accuracy"] == 0.5 and m["mae_years"] == pytest.approx(23 / 2)


def test_crop_and_augmentation():
    rng = np.random.default_rng(0)
    wave = np.sin(np.arange(8000) / 5).astype(np.float32)
    assert len(random_crop(wave, 16000, rng)) == 16000 and len(random_crop(wave, 4000, rng)) == 4000
    noisy = augment(wave, CropAugmentParams(noise_prob=1.0, snr_db_min=10.0, snr_db_max=10.0, gain_db_max=0.0), rng)
    snr_db = 10 * np.log10(np.mean(wave ** 2) / np.mean((noisy - wave) ** 2))
    assert snr_db == pytest.approx(10.0, abs=0.5)
