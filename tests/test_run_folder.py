"""``RunFolder``: what ``run=`` names (a folder, ``latest``, ``latest:<key>``, ``default``), the one
"finished" rule, and ``run=default`` in the verbs that read a run's outputs (evaluate, analyze) with
the real shipped model on real clips of the bundled sample."""

from __future__ import annotations

import csv
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_train import REPO_DIR, SAMPLE_MANIFEST_PATH, extract_to, is_png

from src.embeddings.store import embeddings_path
from src.inference.run_folder import RunFolder, models_dir
from src.models.run_folder import FINISHED_FILES, METRICS_NAME, PREDICTIONS_NAME, RunError, is_finished

SHIPPED_ENCODER = "resemblyzer_egemaps_acoustic"  # models/default/config.yaml
TIMEOUT_S = 600


def fake_run(path: Path, encoder: str, model: dict | None = None, finished: bool = True) -> Path:
    """A run folder as training leaves it, as far as resolving goes (the checkpoint is not read)."""
    path.mkdir(parents=True)
    config = {"encoder": {"name": encoder}, **({"model": model} if model else {})}
    (path / "config.yaml").write_text(json.dumps(config))  # JSON is YAML
    (path / "best.pt").write_bytes(b"")
    if finished:
        (path / METRICS_NAME).write_text(json.dumps({"model": (model or {}).get("name", "fnn")}))
    return path


@pytest.fixture
def runs_dir(tmp_path) -> Path:
    runs = tmp_path / "runs"
    fake_run(runs / "resemblyzer-2026-01-01_00-00-00", "resemblyzer")
    fake_run(runs / "ecapa-2026-01-02_00-00-00", "ecapa")
    fake_run(runs / "melcnn-2026-01-03_00-00-00", "mel128", {"kind": "end_to_end", "name": "melcnn"})
    fake_run(runs / "wav2vec2-2026-01-04_00-00-00", "wav2vec2", finished=False)  # newest, but crashed
    return runs


def test_latest_and_latest_key_pick_the_newest_finished_run(runs_dir):
    assert RunFolder.resolve("latest", runs_dir).dir == runs_dir / "melcnn-2026-01-03_00-00-00"
    resemblyzer = RunFolder.resolve("latest:resemblyzer", runs_dir)
    assert resemblyzer.dir == runs_dir / "resemblyzer-2026-01-01_00-00-00" and resemblyzer.key == "resemblyzer"
    melcnn = RunFolder.resolve("latest:melcnn", runs_dir)  # an end-to-end run is found by its model's name
    assert melcnn.key == "melcnn" and melcnn.model == "melcnn" and not melcnn.is_shipped
    with pytest.raises(RunError, match="no finished run of wav2vec2"):
        RunFolder.resolve("latest:wav2vec2", runs_dir)
    assert set(RunFolder.latest(runs_dir)) == {"resemblyzer", "ecapa", "melcnn"}
    assert set(RunFolder.latest_by_model(runs_dir)) == {("resemblyzer", "fnn"), ("ecapa", "fnn"),
                                                         ("melcnn", "melcnn")}


def test_a_folder_is_found_as_a_path_runs_name_or_name(runs_dir, tmp_path, monkeypatch):
    name = "ecapa-2026-01-02_00-00-00"
    expected = runs_dir / name
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    for run in (str(expected), f"runs/{name}", name):
        assert RunFolder.resolve(run, runs_dir).dir.resolve() == expected, run
    monkeypatch.chdir(tmp_path)
    assert RunFolder.resolve(f"runs/{name}", runs_dir).dir.resolve() == expected
    sweep = fake_run(tmp_path / "latest-sweep" / "x", "ecapa")  # a folder name, not the keyword
    assert RunFolder.resolve("latest-sweep/x", runs_dir).dir.resolve() == sweep
    with pytest.raises(RunError, match="run=nope: no such run folder"):
        RunFolder.resolve("nope", runs_dir)


def test_default_is_the_shipped_model_and_latest_falls_back_to_it(runs_dir, tmp_path, caplog):
    shipped = models_dir() / "default"
    assert all((shipped / name).is_file() for name in FINISHED_FILES)  # the shipped model is a finished run
    for run in ("default", None, ""):
        folder = RunFolder.resolve(run, runs_dir)
        assert folder.dir == shipped and folder.is_shipped and folder.key == SHIPPED_ENCODER, run
    assert folder.out_dir == runs_dir / "shipped-default"  # evaluate never writes into models/
    empty = tmp_path / "no-runs"
    with caplog.at_level(logging.INFO, logger="src.inference.run_folder"):
        assert RunFolder.resolve("latest", empty).dir == shipped
    assert any("using the shipped model" in r.getMessage() for r in caplog.records)
    with pytest.raises(RunError, match="no finished run of ecapa"):
        RunFolder.resolve("latest:ecapa", empty)  # a key asked for does not fall back


def test_an_unfinished_run_is_one_line_naming_what_is_missing(runs_dir):
    unfinished = runs_dir / "wav2vec2-2026-01-04_00-00-00"
    assert not is_finished(unfinished)
    for run in (str(unfinished), unfinished.name):
        with pytest.raises(RunError, match=r"is not a finished run \(no metrics.json\)") as err:
            RunFolder.resolve(run, runs_dir)
        assert "\n" not in str(err.value)
    (unfinished / METRICS_NAME).write_text("{}")
    (unfinished / "config.yaml").unlink()
    with pytest.raises(RunError, match=r"is not a finished run \(no config.yaml\)"):
        RunFolder.open(unfinished)


# ---------------------------------------------------------------- run=default in evaluate and analyze


def verb(module: str, root: Path, *args: str) -> subprocess.CompletedProcess:
    """``python -m src.<module>`` with every path under ``root`` (the sample's data from the checkout)."""
    env = {**{k: v for k, v in os.environ.items() if k not in ("PYTHONWARNINGS", "HYDRA_FULL_ERROR")},
           "PYTHONPATH": str(REPO_DIR)}
    return subprocess.run([sys.executable, "-m", f"src.{module}", f"paths.root_dir={root}",
                           f"paths.data_dir={REPO_DIR / 'data'}", *args], cwd=root, env=env,
                          capture_output=True, text=True, timeout=TIMEOUT_S, stdin=subprocess.DEVNULL)


def said(proc: subprocess.CompletedProcess) -> list[str]:
    """What the verb printed on stderr besides its log lines."""
    return [ln for ln in proc.stderr.splitlines() if ln.strip() and not ln.startswith("[")]


@pytest.fixture(scope="module")
def few_clips(tmp_path_factory) -> Path:
    """A manifest of 12 of the sample's real clips, women and men, adults and children."""
    with open(SAMPLE_MANIFEST_PATH, newline="") as f:
        rows = list(csv.DictReader(f))
    picked = [r for g in ("female", "male") for r in [r for r in rows if r["gender"] == g][::6][:6]]
    manifest = tmp_path_factory.mktemp("few") / "manifest.csv"
    with open(manifest, "w", newline="") as f:
        w = csv.DictWriter(f, ["path", "speaker", "gender", "age_group"])
        w.writeheader()
        for r in picked:
            w.writerow({"path": str(SAMPLE_MANIFEST_PATH.parent / r["path"]), "speaker": r["speaker"],
                        "gender": r["gender"], "age_group": r["age_group"]})
    return manifest


def test_evaluate_and_analyze_take_run_default(few_clips, tmp_path):
    root = tmp_path / "home"
    root.mkdir()
    data = ("data=manifest", f"data.manifest_path={few_clips}", "data.name=few", "data.group_columns=[age_group]")
    shipped_before = sorted(p.name for p in (models_dir() / "default").iterdir())

    # before extraction: evaluate says to extract the shipped model's encoder; analyze says to evaluate
    proc = verb("evaluate", root, "run=default", *data)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert len(said(proc)) == 1 and f"python -m src.extract encoder={SHIPPED_ENCODER}" in said(proc)[0], said(proc)
    proc = verb("analyze", root, "run=default")
    assert proc.returncode == 2 and len(said(proc)) == 1, proc.stderr[-3000:]
    assert "python -m src.evaluate run=default data=<source>" in said(proc)[0]

    emb = extract_to(root / "models-embeddings" / "few", f"encoder={SHIPPED_ENCODER}", *data)
    ok = [r for r in map(json.loads, embeddings_path(emb, SHIPPED_ENCODER).read_text().splitlines())
          if r["status"] == "ok"]
    proc = verb("evaluate", root, "run=default", *data)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = root / "runs" / "shipped-default" / "eval-few"
    metrics = json.loads((out / METRICS_NAME).read_text())
    assert metrics["encoder"] == SHIPPED_ENCODER and metrics["run"] == str(models_dir() / "default")
    assert metrics["all"]["n"] == len(ok) >= 10 and metrics["all"]["accuracy"] >= 0.75, metrics["all"]
    assert sorted(p.name for p in (models_dir() / "default").iterdir()) == shipped_before  # nothing written there

    proc = verb("analyze", root, "run=default", "copy_audio=false")
    assert proc.returncode == 0, proc.stderr[-3000:]
    index = root / "post-analysis" / "default" / "eval-few" / "eval" / "index.csv"
    wrong = sum(1 for r in csv.DictReader(open(out / PREDICTIONS_NAME)) if r["correct"] == "0")
    assert index.is_file() and len(index.read_text().splitlines()) == 1 + wrong
    assert is_png(out / "reliability.png") and is_png(out / "accuracy_by_duration.png")
