"""Several sources trained as one (``data=mix``): per-source stores, prefixed speakers, splits
stratified by corpus x gender x age group, classes balanced inside age groups, an age-group head
whose answer reaches ``GenderPipeline``; plus the leave-one-corpus-out holdout."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pandas as pd
import pytest
from test_train import compose_cfg

from src.extract import run_extract
from src.inference.pipeline import GenderPipeline
from src.labels import AGE_GROUPS
from src.train import run_train
from src.training.heads import balanced_weights
from src.training.splits import stratified_speaker_split

from conftest import clip_row

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_stratified_split_keeps_every_cell_in_proportion():
    rng = np.random.default_rng(0)
    speakers, strata, y = [], [], []
    sizes = {("A", 0, "adult"): 60, ("A", 1, "adult"): 55, ("B", 0, "child"): 21, ("B", 1, "child"): 20,
             ("B", 0, "teen"): 1, ("B", 1, "teen"): 2}
    for (corpus, c, age), n in sizes.items():
        for k in range(n):
            spk = f"{corpus}-{c}-{age}-{k}"
            for _ in range(int(rng.integers(1, 5))):  # several clips per speaker
                speakers.append(spk)
                strata.append(f"{c}|{corpus}|{age}")
                y.append(c)
    speakers, strata, y = np.array(speakers), np.array(strata), np.array(y)
    split = stratified_speaker_split(speakers, strata, y, 0.15, 0.15, seed=3)
    owner = pd.DataFrame({"spk": speakers, "split": split, "stratum": strata}).drop_duplicates()
    assert owner.spk.is_unique  # speaker-disjoint
    for stratum, rows in owner.groupby("stratum"):
        n = len(rows)
        for s, frac in (("test", 0.15), ("val", 0.15)):
            assert abs((rows.split == s).sum() - frac * n) <= 1.0, (stratum, s, n, Counter(rows.split))
    for c in (0, 1):
        assert set(split[y == c]) == {"train", "val", "test"}
    assert (stratified_speaker_split(speakers, strata, y, 0.15, 0.15, seed=3) == split).all()
    assert not (stratified_speaker_split(speakers, strata, y, 0.15, 0.15, seed=4) == split).all()


def test_balanced_weights_inside_each_group():
    y = np.array([0, 0, 0, 1, 0, 1, 1, 1, 1, 1])
    group = np.array(["adult"] * 4 + ["child"] * 6)
    w = balanced_weights(y, group)
    for g in ("adult", "child"):
        m = group == g
        assert np.isclose(w[m & (y == 0)].sum(), w[m & (y == 1)].sum())
        assert np.isclose(w[m].sum(), m.sum())  # each group keeps its share of the clips


@pytest.fixture(scope="module")
def mix_run(sample_clips, manifest_of, tmp_path_factory):
    """The bundled sample as two sources (its adult corpora; its speechocean762 speakers), extracted
    and trained as one mix with a logistic-regression head."""
    root = tmp_path_factory.mktemp("mix")
    halves = {"sample_adults": [c for c in sample_clips if c.groups["corpus"] != "speechocean762"],
              "sample_so762": [c for c in sample_clips if c.groups["corpus"] == "speechocean762"]}
    sources = []
    for name, clips in halves.items():
        path = manifest_of([], root / name / "manifest.csv",
                           [clip_row(c, corpus=c.groups["corpus"], age_group=c.groups["age_group"]) for c in clips])
        sources.append(f"{{name: {name}, manifest_path: '{path}', group_columns: [corpus, age_group]"
                       + (", age_group: adult}" if name == "sample_adults" else "}"))
    common = [f"paths.embeddings_dir={root}/emb/${{data.name}}", "data=mix", f"data.sources=[{','.join(sources)}]"]
    run_extract(compose_cfg("extract", *common, "progress=false"))
    run_dir = root / "run"
    metrics = run_train(compose_cfg("train", *common, "model=logreg", "seed=0"), run_dir)
    _COMMON[:] = common
    return run_dir, metrics, root


_COMMON: list[str] = []  # the mix's overrides, for more runs on the same stores


def test_mix_extracts_each_source_into_its_own_store(mix_run):
    _, metrics, root = mix_run
    assert (root / "emb" / "sample_adults" / "resemblyzer-embeddings.jsonl").exists()
    assert (root / "emb" / "sample_so762" / "resemblyzer-embeddings.jsonl").exists()
    assert set(metrics["sources"]) == {"sample_adults", "sample_so762"}


def test_mix_splits_are_speaker_disjoint_and_hold_every_cell(mix_run):
    run_dir, metrics, _ = mix_run
    pred = pd.read_csv(run_dir / "predictions.csv")
    assert pred.speaker.str.startswith(("sample_adults/", "sample_so762/")).all()
    assert (pred.groupby("speaker").split.nunique() == 1).all()
    assert set(pred.age_group) == {"adult", "child"}  # the adult source's default filled in
    for split, rows in pred.groupby("split"):
        assert set(rows.gender) == {"female", "male"}, split
    # the large cells (LibriSpeech: 10 speakers per gender) keep about the fractions; small ones
    # (3 speakers) are dealt out across splits (the exact shares are unit-tested above)
    cells = pred.drop_duplicates("speaker").groupby(["corpus", "gender", "age_group"])
    for cell, rows in cells:
        if len(rows) >= 8:
            assert 0.5 <= (rows.split == "train").mean() <= 0.9, cell
    assert metrics["test"]["selective_by_group"]["age_group"]  # per-age-group reliability is reported


def test_mix_age_head_answers_in_the_pipeline(mix_run, sample_clips):
    run_dir, metrics, _ = mix_run
    age = metrics["age_group"]
    assert age["classes"] == ["child", "adult"]  # the sample has no teenager
    assert age["train"]["accuracy"] >= 0.9  # a child / adult head separates the clips it was fitted on
    pred = pd.read_csv(run_dir / "predictions.csv")
    assert set(pred.predicted_age_group) <= set(AGE_GROUPS) and pred.p_age_group.between(0.5, 1).all()
    pipe = GenderPipeline.from_run(run_dir)
    child = next(c for c in sample_clips if c.groups["age_group"] == "child")
    r = pipe(child.path)
    assert r.status == "ok" and r.age_group in ("child", "adult") and 0.5 <= r.p_age_group <= 1
    assert r.model == run_dir.name
    saved = json.loads((run_dir / "metrics.json").read_text())
    assert saved["age_group"]["classes"] == ["child", "adult"]


def test_holdout_corpus_is_the_test_split(mix_run):
    _, _, root = mix_run
    cfg = compose_cfg("train", *_COMMON, "model=logreg", "seed=0", "holdout_corpus=vctk")
    metrics = run_train(cfg, root / "loco")
    pred = pd.read_csv(root / "loco" / "predictions.csv")
    assert set(pred[pred.split == "test"].corpus) == {"vctk"}
    assert "vctk" not in set(pred[pred.split != "test"].corpus)
    assert set(pred[pred.split != "test"].split) == {"train", "val"}
    assert metrics["holdout"] == {"column": "corpus", "value": "vctk"}
    with pytest.raises(ValueError, match="holdout corpus='nope': no such clip"):
        run_train(compose_cfg("train", *_COMMON, "model=logreg", "holdout_corpus=nope"), root / "loco-bad")


def test_shipped_default_model_answers_when_no_run_exists(run_cli, tmp_path):
    """From a checkout with no runs, predict uses models/default and says so in every row. The
    sample's clips are part of that model's training data (they are copies of ../shared clips), so
    this checks the shipped model loads and answers with its age group, not its accuracy."""
    empty = tmp_path / "runs"
    empty.mkdir()
    proc = run_cli("src.predict", "input=data/sample/audio/vctk-p225", "format=csv", f"paths.runs_dir={empty}",
                   "progress=false")
    rows = pd.read_csv(__import__("io").StringIO(proc.stdout))
    assert len(rows) == 2 and {"age_group", "p_age_group", "model"} <= set(rows.columns)
    assert (rows.model == "default").all() and (rows.status == "ok").all()
    assert set(rows.age_group) <= set(AGE_GROUPS) and rows.p_age_group.between(1 / 3, 1).all()
    assert (rows.label == "female").all()  # p225 is a woman (VCTK's speaker table)
    assert "model: default (" in proc.stderr  # the shipped model is the default; the log names it


def test_from_pretrained_is_the_shipped_model(sample_clips):
    pipe = GenderPipeline.from_pretrained()
    assert pipe.encoder.name == "resemblyzer_egemaps_acoustic" and pipe.classifier.age_head is not None
    child = next(c for c in sample_clips if c.groups["age_group"] == "child")
    r = pipe(child.path)
    assert r.status == "ok" and r.model.startswith("default") and r.age_group in AGE_GROUPS
