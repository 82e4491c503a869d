"""``python -m src.study``: systems x seeds on one source, applied to another, one table; a
system whose weights cannot be loaded gets a row saying why; a rerun redoes nothing."""

from __future__ import annotations

import pandas as pd
import pytest
from hydra import compose, initialize_config_module
from test_train import REPO_DIR

from src.models.run_folder import METRICS_NAME
from src.study import run_study

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SYSTEMS = ("only=[resemblyzer-logreg,acoustic-pitch,ecapa-fnn]",  # a local ECAPA copy that is not there:
           "systems.ecapa-fnn=['encoder=ecapa','encoder.model.source=/nonexistent/ecapa','model=fnn']")


def study(tmp_path, *overrides: str):
    with initialize_config_module(version_base="1.3", config_module="conf"):
        cfg = compose("study", overrides=[
            f"paths.data_dir={REPO_DIR / 'data'}", f"paths.runs_dir={tmp_path / 'runs'}",
            f"paths.embeddings_dir={tmp_path / 'emb'}/${{data.name}}", f"paths.analysis_dir={tmp_path / 'out'}",
            "train_data=sample", "eval_data=[sample]", "+groups.sample={corpus: [vctk, speechocean762]}",
            "seeds=[0,1]", *SYSTEMS, *overrides])
        return run_study(cfg)


def test_study_table_and_resume(tmp_path):
    table_md = study(tmp_path)
    assert table_md == tmp_path / "out" / "study-sample.md" and table_md.exists()
    table = pd.read_csv(table_md.with_suffix(".csv"), keep_default_na=False).set_index("system")
    assert list(table.index) == ["resemblyzer-logreg", "ecapa-fnn", "acoustic-pitch"]  # conf/study.yaml order
    assert (tmp_path / "emb" / "sample" / "acoustic-embeddings.jsonl").exists()
    runs = sorted((tmp_path / "runs" / "study-sample").glob("*/seed*"))
    assert [f"{r.parent.name}/{r.name}" for r in runs] == ["acoustic-pitch/seed0", "acoustic-pitch/seed1",
                                                          "resemblyzer-logreg/seed0", "resemblyzer-logreg/seed1"]
    for system in ("resemblyzer-logreg", "acoustic-pitch"):
        row = table.loc[system]
        assert row["seeds"] == 2 and row["note"] == ""
        mean, sd = (float(v) for v in row["test accuracy"].split(" ± "))
        assert 50 <= mean <= 100 and sd >= 0
        assert float(row["sample vctk"].split(" ± ")[0]) > 50  # applied to its own source: mostly right
    assert {"test vctk", "test speechocean762"} <= set(table.columns)  # the training source's groups, test split
    ecapa = table.loc["ecapa-fnn"]
    assert ecapa["seeds"] == 0 and ecapa["note"].startswith("not run: ") and "/nonexistent/ecapa" in ecapa["note"]
    assert ecapa["test accuracy"] == ""

    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "runs").rglob(METRICS_NAME)}
    assert len(stamps) == 8  # 4 runs and their 4 evaluations
    study(tmp_path)
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "runs").rglob(METRICS_NAME)} == stamps


def test_unknown_system_is_named(tmp_path):
    with pytest.raises(ValueError, match=r"only=\['nope'\]: not in systems"):
        study(tmp_path, "only=[nope]")


def test_row_with_an_age_head(tmp_path):
    """Mean ± sd over seeds of the gender and age figures (sample sd, ddof=1)."""
    import json

    from src.training.study import SystemResult, study_row

    dirs = []
    for seed, (acc, age_acc, mae) in enumerate([(0.8, 0.6, 4.0), (0.9, 0.8, 6.0)]):
        d = tmp_path / f"seed{seed}"
        d.mkdir()
        test = {"accuracy": acc, "balanced_accuracy": acc, "accuracy_by_group": {
            "age_group": {"child": {"n": 4, "accuracy": acc - 0.2}}}}
        age = {"test": {"accuracy": age_acc, "balanced_accuracy": age_acc, "mae_years": mae}}
        (d / METRICS_NAME).write_text(json.dumps({"test": test, "age": age}))
        dirs.append(d)
    row = study_row(SystemResult("melcnn", dirs), "so", [], {"so": {"age_group": ["child", "adult"]}})
    assert row["test accuracy"] == "85.0 ± 7.1" and row["test child"] == "65.0 ± 7.1" and row["test adult"] == ""
    assert row["age test accuracy"] == "70.0 ± 14.1" and row["age test MAE (years)"] == "5.0 ± 1.4"


def test_leave_one_corpus_out(tmp_path):
    """protocol=loco: trained without the corpus, tested on all of it; one row per age group."""
    table_md = study(tmp_path, "protocol=loco", "loco_corpora=[vctk]", "only=[resemblyzer-logreg]", "seeds=[0]")
    assert table_md == tmp_path / "out" / "study-sample-loco.md"
    table = pd.read_csv(table_md.with_suffix(".csv"), keep_default_na=False)
    assert list(table["left out"]) == ["vctk", "vctk"] and list(table.clips) == ["all (10)", "adult (10)"]
    pred = pd.read_csv(tmp_path / "runs" / "study-sample-loco" / "resemblyzer-logreg" / "vctk" / "seed0" /
                       "predictions.csv")
    assert set(pred[pred.split == "test"].corpus) == {"vctk"} and "vctk" not in set(pred[pred.split != "test"].corpus)
    assert float(str(table["balanced acc."][0]).split(" ")[0]) >= 50
