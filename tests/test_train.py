"""Train, evaluate, analyze and compare on real embeddings of the bundled sample.

The sample (63 real clips, 40 speakers, children included) is embedded once per session
with the real Silero VAD and the real Resemblyzer into a temporary folder; every run,
dump and table is written under ``tmp_path``. Bad inputs are edited copies of those real
embeddings. The ``slow`` sweep adds tiny random-weight ECAPA and wav2vec2 models: its
numbers mean nothing, it only checks the structure of what the sweep writes.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_module
from omegaconf import DictConfig, OmegaConf

from src.analysis.mistakes import INDEX_NAME, dump_mistakes
from src.analyze import analyze_run
from src.compare import compare_runs
from src.data.files import PART_SUFFIX
from src.embeddings.dataset import DatasetError, load_embedding_set
from src.embeddings.store import EmbeddingsError, embeddings_path, meta_path, read_meta, stats_path
from src.evaluate import evaluate_run
from src.extract import run_extract
from src.inference.run_folder import RunFolder
from src.labels import SPLITS
from src.models.checkpoint import CHECKPOINT_NAME, TrainedClassifier
from src.models.run_folder import METRICS_NAME, PREDICTIONS_NAME, RunError
from src.train import run_train

REPO_DIR = Path(__file__).resolve().parents[1]
SAMPLE_MANIFEST_PATH = REPO_DIR / "data" / "sample" / "manifest.csv"
ENCODER = "resemblyzer"
SUBPROCESS_TIMEOUT_S = 600
PNG_MAGIC = b"\x89PNG"
RUN_NAME = f"{ENCODER}-2026-01-01_00-00-00"  # the folder name `python -m src.train` would give


def compose_cfg(config_name: str, *overrides: str) -> DictConfig:
    """A primary config composed like its entry point would, data folder made absolute."""
    with initialize_config_module(version_base="1.3", config_module="conf"):
        return compose(config_name, overrides=[f"paths.data_dir={REPO_DIR / 'data'}", "num_threads=1",
                                               *overrides])


def extract_to(embeddings_dir: Path, *overrides: str) -> Path:
    """Run the real extraction (VAD + encoder) into ``embeddings_dir``."""
    summary = run_extract(compose_cfg("extract", f"paths.embeddings_dir={embeddings_dir}", "progress=false",
                                      *overrides))
    assert summary.statuses["ok"] > 0, summary.text()
    return embeddings_dir


_SESSION: dict[str, Path] = {}


def sample_embeddings(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real Resemblyzer embeddings of the whole sample, extracted once per session.

    A plain function (not only a fixture) so that ``test_notebook.py`` shares the folder.
    """
    if "sample" not in _SESSION:
        _SESSION["sample"] = extract_to(tmp_path_factory.mktemp("emb-sample"))
    return _SESSION["sample"]


def train_cfg(embeddings_dir: Path, *overrides: str) -> DictConfig:
    """The ``train`` config on ``embeddings_dir``, shortened to 30 epochs."""
    return compose_cfg("train", f"paths.embeddings_dir={embeddings_dir}", "trainer.max_epochs=30", *overrides)


def train_sample_run(embeddings_dir: Path, run_dir: Path, *overrides: str) -> dict:
    """Train on ``embeddings_dir`` into ``run_dir``; returns the metrics."""
    return run_train(train_cfg(embeddings_dir, *overrides), run_dir)


def jsonl_lines(embeddings_dir: Path) -> list[str]:
    return embeddings_path(embeddings_dir, ENCODER).read_text().splitlines(keepends=True)


def edited_copy(embeddings_dir: Path, out_dir: Path, edit: Callable[[list[str]], list[str]]) -> Path:
    """Copy the JSONL (edited) and its sidecar to ``out_dir``."""
    out_dir.mkdir(parents=True)
    src = embeddings_path(embeddings_dir, ENCODER)
    dst = embeddings_path(out_dir, ENCODER)
    dst.write_text("".join(edit(jsonl_lines(embeddings_dir))))
    shutil.copy(meta_path(src), meta_path(dst))
    return out_dir


def ok_records(embeddings_dir: Path) -> list[dict]:
    return [r for r in map(json.loads, jsonl_lines(embeddings_dir)) if r["status"] == "ok"]


def run_module(*args: str, cwd: Path = REPO_DIR) -> subprocess.CompletedProcess:
    """``python -m <args>`` as a real subprocess; fails the test with its output."""
    proc = subprocess.run([sys.executable, "-m", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=SUBPROCESS_TIMEOUT_S, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert proc.returncode == 0, f"{' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    return proc


def is_png(path: Path) -> bool:
    return path.is_file() and path.read_bytes()[:4] == PNG_MAGIC


@pytest.fixture(scope="session")
def embeddings_dir(tmp_path_factory) -> Path:
    return sample_embeddings(tmp_path_factory)


@pytest.fixture(scope="session")
def trained_run(embeddings_dir, tmp_path_factory) -> tuple[Path, dict]:
    """One real run on the sample: (run folder, returned metrics)."""
    run_dir = tmp_path_factory.mktemp("runs") / RUN_NAME
    return run_dir, train_sample_run(embeddings_dir, run_dir)


@pytest.fixture(scope="session")
def predictions(trained_run) -> pd.DataFrame:
    return pd.read_csv(trained_run[0] / PREDICTIONS_NAME, keep_default_na=False)


@pytest.fixture(scope="session")
def other_embeddings_dir(tmp_path_factory) -> Path:
    """A second real source: the sample's speechocean762 clips (adults and children) as their
    own manifest, with the age_group column, extracted with the same Resemblyzer."""
    root = tmp_path_factory.mktemp("so762")
    with open(SAMPLE_MANIFEST_PATH, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["corpus"] == "speechocean762"]
    manifest = root / "manifest.csv"
    with open(manifest, "w", newline="") as f:
        w = csv.DictWriter(f, ["path", "speaker", "gender", "age", "age_group"])
        w.writeheader()
        for r in rows:
            w.writerow({"path": str(SAMPLE_MANIFEST_PATH.parent / r["path"]), "speaker": r["speaker"],
                        "gender": r["gender"], "age": r["age"], "age_group": r["age_group"]})
    return extract_to(root / "emb", "data=manifest", f"data.manifest_path={manifest}", "data.name=so762",
                      "data.group_columns=[age_group]")


# ---------------------------------------------------------------------------------------- the run folder


def test_run_folder_files(trained_run):
    run_dir, metrics = trained_run
    for name in ("config.yaml", CHECKPOINT_NAME, PREDICTIONS_NAME, METRICS_NAME):
        assert (run_dir / name).is_file(), name
    assert json.loads((run_dir / METRICS_NAME).read_text()) == json.loads(json.dumps(metrics, default=float))
    cfg = OmegaConf.load(run_dir / "config.yaml")
    assert cfg.encoder.name == ENCODER and cfg.trainer.max_epochs == 30
    assert not list(run_dir.glob("*" + PART_SUFFIX)), "atomic writes leave no temporary file"


def test_tensorboard_events(trained_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir, metrics = trained_run
    assert list(run_dir.glob("events.out.tfevents.*"))
    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "images": 0, "tensors": 0}).Reload()
    tags = acc.Tags()
    assert {"loss/train", "loss/val", "accuracy/train", "accuracy/val", "final/accuracy_test"} <= set(tags["scalars"])
    flipped = {"/".join(t.split("/")[::-1]) for t in tags["scalars"] if t.count("/") == 1}
    assert not flipped & set(tags["scalars"]), "near-duplicate tags such as accuracy/val and val/accuracy"
    assert [e.step for e in acc.Scalars("loss/val")] == list(range(1, metrics["epochs"] + 1))
    assert {"confusion_matrix/val", "confusion_matrix/test"} <= set(tags["images"])
    image = acc.Images("confusion_matrix/test")[-1]
    assert image.width > 0 and image.encoded_image_string[:4] == PNG_MAGIC
    assert "pr_curve/test_male" in tags["tensors"]


def test_checkpoint_reproduces_predictions(trained_run, embeddings_dir, predictions):
    run_dir, metrics = trained_run
    clf = TrainedClassifier.load(run_dir / CHECKPOINT_NAME)
    data = load_embedding_set(embeddings_dir, ENCODER)
    proba = clf.predict_proba(data.x)
    assert proba.shape == (len(data), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    assert clf.temperature == pytest.approx(metrics["temperature"])
    p_male = predictions.set_index("id").loc[data.ids, "p_male"].to_numpy(float)
    np.testing.assert_allclose(proba[:, 1], p_male, atol=2e-6)
    # the checkpoint names the embeddings it expects, with the options that made them
    side = read_meta(embeddings_dir, ENCODER)
    assert clf.encoder["weights"] == side["weights"] and clf.encoder["config_hash"] == side["config_hash"]
    assert clf.encoder.get("options", {}).get("vad") == side["options"]["vad"]


def test_predictions_one_row_per_ok_clip(embeddings_dir, predictions):
    ok = ok_records(embeddings_dir)
    assert len(ok) == 63  # the whole sample embeds
    assert sorted(predictions["id"]) == sorted(r["id"] for r in ok)
    assert set(predictions["split"]) == set(SPLITS)
    assert {"corpus", "age_group", "p_male_uncalibrated", "predicted", "correct"} <= set(predictions.columns)


def test_splits_are_speaker_disjoint(trained_run, predictions):
    assert (predictions.groupby("speaker")["split"].nunique() == 1).all()
    counts = trained_run[1]["splits"]
    for split in SPLITS:
        for gender in ("female", "male"):
            rows = predictions[(predictions["split"] == split) & (predictions["gender"] == gender)]
            assert counts[split][gender] == {"clips": len(rows), "speakers": rows["speaker"].nunique()}
            assert len(rows) > 0


def test_metrics_json(trained_run, predictions):
    metrics = trained_run[1]
    assert metrics["encoder"]["encoder"] == ENCODER and metrics["data"] == "sample"
    assert 1 <= metrics["best_epoch"] <= metrics["epochs"] <= 30
    assert metrics["temperature"] > 0
    for split in ("val", "test"):
        m = metrics[split]
        rows = predictions[predictions["split"] == split]
        assert m["n"] == len(rows)
        assert m["accuracy"] == pytest.approx(rows["correct"].mean())
        for key in ("balanced_accuracy", "roc_auc", "log_loss", "ece", "ece_before_calibration",
                    "log_loss_before_calibration"):
            assert m[key] is not None and np.isfinite(m[key]), key
        assert list(m["accuracy_by_duration"]) == ["<1s", "1-2s", "2-4s", "4s+"]
        assert sum(b["n"] for b in m["accuracy_by_duration"].values()) == len(rows)
        assert set(m["accuracy_by_group"]) == {"corpus", "age_group"}
        assert sum(g["n"] for g in m["accuracy_by_group"]["corpus"].values()) == len(rows)
        assert set(m["accuracy_by_group"]["corpus"]) == set(rows["corpus"])
        assert np.array(m["confusion_matrix"]).sum() == len(rows)


def test_same_seed_same_metrics(trained_run, embeddings_dir, tmp_path):
    again = train_sample_run(embeddings_dir, tmp_path / "again")
    first = json.loads((trained_run[0] / METRICS_NAME).read_text())
    second = json.loads((tmp_path / "again" / METRICS_NAME).read_text())
    assert first.pop("run_dir") != second.pop("run_dir")  # the only difference
    assert first == second
    assert again["test"]["accuracy"] == trained_run[1]["test"]["accuracy"]


def test_other_seed_other_split(embeddings_dir, predictions, tmp_path):
    train_sample_run(embeddings_dir, tmp_path / "seed1", "seed=1", "trainer.max_epochs=2")
    other = pd.read_csv(tmp_path / "seed1" / PREDICTIONS_NAME, keep_default_na=False)
    merged = predictions.merge(other, on="id", suffixes=("", "_seed1"))
    assert len(merged) == len(predictions)
    assert (merged["split"] != merged["split_seed1"]).any()
    assert (other.groupby("speaker")["split"].nunique() == 1).all()


def test_train_entry_point(embeddings_dir, tmp_path):
    run_dir = tmp_path / "run"
    run_module("src.train", f"hydra.run.dir={run_dir}", f"paths.embeddings_dir={embeddings_dir}",
               f"paths.data_dir={REPO_DIR / 'data'}", "trainer.max_epochs=3", "num_threads=1")
    for name in ("config.yaml", CHECKPOINT_NAME, PREDICTIONS_NAME, METRICS_NAME, "train.log",
                 ".hydra/config.yaml", ".hydra/overrides.yaml"):
        assert (run_dir / name).is_file(), name
    assert list(run_dir.glob("events.out.tfevents.*"))
    assert "test: accuracy" in (run_dir / "train.log").read_text()
    assert json.loads((run_dir / METRICS_NAME).read_text())["epochs"] == 3


# ------------------------------------------------------------------------------------------- bad inputs


def _corrupt_middle_line(lines: list[str]) -> list[str]:
    lines[30] = lines[30][:200] + "\n"  # cut inside the embedding: not JSON any more
    return lines


def _mixed_dimension(lines: list[str]) -> list[str]:
    rec = json.loads(lines[10])
    rec["embedding"] = rec["embedding"][:192]
    lines[10] = json.dumps(rec) + "\n"
    return lines


def _female_only(lines: list[str]) -> list[str]:
    return [ln for ln in lines if json.loads(ln)["gender"] == "female"]


def _two_speakers_per_class(lines: list[str]) -> list[str]:
    recs = [json.loads(ln) for ln in lines]
    keep = {g: sorted({r["speaker"] for r in recs if r["gender"] == g})[:2] for g in ("female", "male")}
    return [ln for ln, r in zip(lines, recs) if r["speaker"] in keep[r["gender"]]]


@pytest.mark.parametrize(("edit", "error", "message"), [
    (_corrupt_middle_line, EmbeddingsError, r"resemblyzer-embeddings\.jsonl:31: corrupt record"),
    (_mixed_dimension, DatasetError, r"mixed dimension \{256: 62, 192: 1\}"),
    (_female_only, DatasetError, r"only one class \(female\)"),
    (_two_speakers_per_class, DatasetError, r"only 2 female speaker\(s\).*at least 3 per class"),
], ids=["corrupt-line", "mixed-dim", "one-class", "two-speakers-per-class"])
def test_bad_embeddings_fail_clearly(embeddings_dir, tmp_path, edit, error, message):
    bad_dir = edited_copy(embeddings_dir, tmp_path / "emb", edit)
    run_dir = tmp_path / "run"
    with pytest.raises(error, match=message):
        train_sample_run(bad_dir, run_dir)
    assert not (run_dir / METRICS_NAME).exists() and not (run_dir / CHECKPOINT_NAME).exists()


# -------------------------------------------------------------------------------------------- evaluate


def test_evaluate_other_source(trained_run, other_embeddings_dir):
    run_dir = trained_run[0]
    metrics = evaluate_run(run_dir, other_embeddings_dir, "other")
    out = run_dir / "eval-other"
    assert json.loads((out / METRICS_NAME).read_text())["all"]["accuracy"] == metrics["all"]["accuracy"]
    preds = pd.read_csv(out / PREDICTIONS_NAME, keep_default_na=False)
    assert len(preds) == metrics["all"]["n"] == 24 and set(preds["split"]) == {"eval"}
    by_age = metrics["all"]["accuracy_by_group"]["age_group"]
    assert set(by_age) == {"adult", "child"} and sum(v["n"] for v in by_age.values()) == 24
    assert metrics["all"]["balanced_accuracy"] is not None
    assert metrics["data"] == "other" and metrics["encoder"] == ENCODER


def test_evaluate_one_gender_source(trained_run, other_embeddings_dir, tmp_path):
    female = edited_copy(other_embeddings_dir, tmp_path / "female", _female_only)
    metrics = evaluate_run(trained_run[0], female, "female-only")["all"]
    assert metrics["n"] == 12 and metrics["per_class"]["female"]["support"] == 12
    assert metrics["balanced_accuracy"] is None and metrics["roc_auc"] is None


def test_evaluate_unfinished_run_fails(trained_run, other_embeddings_dir, tmp_path):
    unfinished = tmp_path / RUN_NAME
    shutil.copytree(trained_run[0], unfinished, ignore=shutil.ignore_patterns(METRICS_NAME, "eval-*"))
    with pytest.raises(RunError, match="not a finished run"):
        evaluate_run(unfinished, other_embeddings_dir, "other")
    assert not (unfinished / "eval-other").exists()
    with pytest.raises(RunError, match="no run folder"):
        evaluate_run(tmp_path / "nowhere", other_embeddings_dir, "other")


# --------------------------------------------------------------------------------------------- analyze


def check_mistake_dump(analysis_dir: Path, predictions: pd.DataFrame, copied: bool) -> None:
    for split in SPLITS:
        d = analysis_dir / ENCODER / split
        index = pd.read_csv(d / INDEX_NAME, keep_default_na=False)
        wrong = predictions[(predictions["split"] == split) & (predictions["correct"] == 0)]
        assert sorted(index["id"]) == sorted(wrong["id"])
        assert list(index["confidence"]) == sorted(index["confidence"], reverse=True)
        for _, r in index.iterrows():
            assert r["file"].startswith(f"{r['gender']}_as_{r['predicted']}_p"), r["file"]
            assert r["gender"] != r["predicted"] and r["confidence"] >= 0.5
        audio = sorted(p.name for p in d.iterdir() if p.name != INDEX_NAME)
        assert audio == (sorted(index["file"]) if copied else [])
        if copied:
            for _, r in index.iterrows():
                assert (d / r["file"]).read_bytes() == Path(r["path"]).read_bytes()


def test_analyze_writes_mistakes_and_plots(trained_run, predictions, tmp_path):
    run_dir = trained_run[0]
    written = analyze_run(run_dir, tmp_path / "post-analysis", umap=False)
    assert (predictions["correct"] == 0).sum() > 0, "a 63-clip sample should give some mistakes to listen to"
    check_mistake_dump(tmp_path / "post-analysis", predictions, copied=True)
    assert written["reliability"] == run_dir / "reliability.png" and is_png(written["reliability"])
    assert written["duration"] == run_dir / "accuracy_by_duration.png" and is_png(written["duration"])
    # a rerun describes one run only (stale files are removed), and copy_audio=false keeps only the index
    analyze_run(run_dir, tmp_path / "post-analysis", copy_audio=False, umap=False)
    check_mistake_dump(tmp_path / "post-analysis", predictions, copied=False)


def test_mistake_dump_keeps_same_named_clips_apart(predictions, tmp_path):
    """Two speakers' clips with one file name (CMU ARCTIC's arctic_a0001.wav), both mistaken alike."""
    real = Path(predictions["path"].iloc[0])
    rows = predictions.head(2).copy()
    for i in range(2):
        (tmp_path / f"spk{i}").mkdir()
        rows.iloc[i, rows.columns.get_loc("path")] = str(shutil.copy(real, tmp_path / f"spk{i}" / real.name))
    rows = rows.assign(split="test", gender="female", predicted="male", p_male=0.9, correct=0)
    assert dump_mistakes(rows, tmp_path / "dump") == {"test": 2}
    assert len([p for p in (tmp_path / "dump" / "test").iterdir() if p.name != INDEX_NAME]) == 2


@pytest.mark.slow
def test_analyze_draws_umap_beside_embeddings(trained_run, embeddings_dir, tmp_path):
    written = analyze_run(trained_run[0], tmp_path / "post-analysis", copy_audio=False)
    assert written["umap"] == embeddings_dir / f"{ENCODER}-embeddings.png" and is_png(written["umap"])


# --------------------------------------------------------------------------------------------- compare


def copy_run(run_dir: Path, runs_dir: Path, name: str, encoder: str) -> Path:
    """A copy of ``run_dir`` named ``name`` whose config says it used ``encoder``."""
    dst = runs_dir / name
    shutil.copytree(run_dir, dst)
    cfg = OmegaConf.load(dst / "config.yaml")
    cfg.encoder.name = encoder
    OmegaConf.save(cfg, dst / "config.yaml")
    return dst


def test_compare_latest_run_per_encoder(trained_run, embeddings_dir, tmp_path):
    """The table only reads run folders: a copy relabelled ``ecapa`` tests it honestly."""
    runs_dir, run_dir = tmp_path / "runs", trained_run[0]
    copy_run(run_dir, runs_dir, f"{ENCODER}-2025-12-31_23-59-59", ENCODER)  # older: not in the table
    copy_run(run_dir, runs_dir, f"{ENCODER}-2026-01-01_00-00-00", ENCODER)
    copy_run(run_dir, runs_dir, "ecapa-2026-01-02_00-00-00", "ecapa")
    (copy_run(run_dir, runs_dir, "wav2vec2-2026-01-03_00-00-00", "wav2vec2") / METRICS_NAME).unlink()  # unfinished
    table = compare_runs(runs_dir, tmp_path / "out")
    assert sorted(table["encoder"]) == ["ecapa", ENCODER]
    assert set(table["run"]) == {f"{ENCODER}-2026-01-01_00-00-00", "ecapa-2026-01-02_00-00-00"}
    csv_table = pd.read_csv(tmp_path / "out" / "comparison.csv")
    assert len(csv_table) == 2 and list(csv_table.columns) == list(table.columns)
    md = (tmp_path / "out" / "comparison.md").read_text().splitlines()
    assert len(md) == 4 and all(line.startswith("|") for line in md)  # header, rule, one row per encoder
    row = table.set_index("encoder").loc[ENCODER]
    assert row["test_accuracy"] == pytest.approx(trained_run[1]["test"]["accuracy"], abs=1e-4)
    assert stats_path(embeddings_dir, ENCODER).exists() and row["extract_x_realtime"] > 0
    assert pd.isna(table.set_index("encoder").loc["ecapa", "extract_x_realtime"])  # no ecapa extraction stats
    with pytest.raises(ValueError, match="no finished run"):
        compare_runs(tmp_path / "empty", tmp_path / "out2")
    # run=latest / latest:<encoder> (evaluate, analyze, predict) pick from the same runs
    assert RunFolder.resolve("latest", runs_dir).dir == runs_dir / "ecapa-2026-01-02_00-00-00"
    assert RunFolder.resolve(f"latest:{ENCODER}", runs_dir).dir == runs_dir / f"{ENCODER}-2026-01-01_00-00-00"
    with pytest.raises(RunError, match="no finished run of wav2vec2"):
        RunFolder.resolve("latest:wav2vec2", runs_dir)


# ------------------------------------------------------------------------------------------ slow sweep


def build_tiny_ecapa(folder: Path) -> Path:
    """A tiny random ECAPA in spkrec-ecapa-voxceleb's layout (as tests/test_hub_encoders.py uses)."""
    from src.encoders.ecapa import TINY_SIZE, save_random_ecapa

    return save_random_ecapa(folder, TINY_SIZE)


def build_tiny_wav2vec2(path: Path) -> tuple[Path, int]:
    """A tiny random wav2vec2 checkpoint in torchaudio's format; returns it and its dim."""
    import torch
    import torchaudio
    from test_hub_encoders import TINY_WAV2VEC2

    from src.encoders.wav2vec2 import save_wav2vec2_checkpoint

    torch.manual_seed(0)
    save_wav2vec2_checkpoint(TINY_WAV2VEC2, torchaudio.models.wav2vec2_model(**TINY_WAV2VEC2), path)
    return path, TINY_WAV2VEC2["encoder_embed_dim"]


@pytest.mark.slow
def test_encoder_sweep_and_comparison(embeddings_dir, tmp_path):
    """``python -m src.train -m encoder=ecapa,resemblyzer,wav2vec2`` then ``compare``.

    Training reads only the embeddings and the encoder's name, so the per-encoder model
    settings (tiny weights) are given where they matter, at extraction; the sweep itself
    is the documented command. Random weights: the numbers are not results.
    """
    emb = tmp_path / "emb"
    emb.mkdir()
    for p in embeddings_dir.glob(f"{ENCODER}-embeddings.*"):
        shutil.copy(p, emb / p.name)
    ecapa_dir = build_tiny_ecapa(tmp_path / "spkrec-ecapa-tiny")
    w2v_path, w2v_dim = build_tiny_wav2vec2(tmp_path / "tiny_wav2vec2.pt")
    extract_to(emb, "encoder=ecapa", f"encoder.model.source={ecapa_dir}",
               f"paths.pretrained_dir={tmp_path / 'pretrained'}")
    extract_to(emb, "encoder=wav2vec2", f"encoder.model.checkpoint_path={w2v_path}", f"encoder.dim={w2v_dim}",
               "encoder.model.layer=2")
    runs_dir = tmp_path / "runs"
    run_module("src.train", "-m", "encoder=ecapa,resemblyzer,wav2vec2", f"paths.runs_dir={runs_dir}",
               f"paths.embeddings_dir={emb}", f"paths.data_dir={REPO_DIR / 'data'}", "trainer.max_epochs=10",
               "num_threads=1")
    run_dirs = sorted(p for p in runs_dir.iterdir() if p.is_dir())
    encoder_of = {p: p.name[:-len("-YYYY-MM-DD_HH-MM-SS")] for p in run_dirs}
    assert sorted(encoder_of.values()) == ["ecapa", "resemblyzer", "wav2vec2"]
    dims = {"ecapa": 192, "resemblyzer": 256, "wav2vec2": w2v_dim}
    for run_dir, encoder in encoder_of.items():
        assert (run_dir / METRICS_NAME).is_file() and (run_dir / "train.log").is_file()
        clf = TrainedClassifier.load(run_dir / CHECKPOINT_NAME)
        side = read_meta(emb, encoder)
        assert clf.encoder["weights"] == side["weights"] and clf.mean.shape == (dims[encoder],)
    assert str(ecapa_dir) in read_meta(emb, "ecapa")["weights"]
    table = compare_runs(runs_dir, tmp_path / "out")
    assert sorted(table["encoder"]) == ["ecapa", "resemblyzer", "wav2vec2"]
    assert table["extract_x_realtime"].notna().all()
    assert len((tmp_path / "out" / "comparison.md").read_text().splitlines()) == 5


def test_a_run_weaker_than_the_shipped_model_says_so_when_used(trained_run, tmp_path, caplog):
    """Issue 22: a trained run below the shipped model's nested-CV figure warns when a verb uses it;
    the shipped model itself, and a run above that figure, do not."""
    import logging

    run_dir = trained_run[0]
    test = json.loads((run_dir / METRICS_NAME).read_text())["test"]
    shipped = RunFolder.shipped().metrics["nested_cv"]["clean"]
    groups = set(test["accuracy_by_group"]["age_group"]) - {"(none)"}
    ref = shipped["adult" if groups <= {"adult"} else "all"]["balanced_accuracy"]
    with caplog.at_level(logging.WARNING, logger="src.inference.run_folder"):
        assert RunFolder.resolve(str(run_dir), tmp_path).dir == run_dir
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    if test["balanced_accuracy"] < ref:  # the sample's toy run: 11 test clips
        assert len(warned) == 1 and f"{100 * test['balanced_accuracy']:.1f} %" in warned[0]
        assert f"{100 * ref:.1f} %" in warned[0] and "run=default" in warned[0]
    else:
        assert not warned
    assert RunFolder.shipped().weaker_than_shipped() is None
    better = copy_run(run_dir, tmp_path / "runs", "better", ENCODER)
    metrics = json.loads((better / METRICS_NAME).read_text())
    metrics["test"]["balanced_accuracy"] = min(1.0, ref + 0.01)
    (better / METRICS_NAME).write_text(json.dumps(metrics))
    assert RunFolder.open(better).weaker_than_shipped() is None
    metrics["test"]["balanced_accuracy"] = ref - 0.05
    (better / METRICS_NAME).write_text(json.dumps(metrics))
    assert f"{100 * (ref - 0.05):.1f} %" in RunFolder.open(better).weaker_than_shipped()
