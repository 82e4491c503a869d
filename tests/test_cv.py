"""Model selection the way it is judged: the stress conditions on real speech, intervals over
speakers, ``python -m src.study protocol=cv`` (nested, resumable) and the Optuna sweep through
Hydra, on the bundled sample with the real encoders."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from hydra import compose, initialize_config_module
from test_train import REPO_DIR

from src.data.audio import load_audio
from src.data.stress import CONDITIONS, change_tempo, loudest_crop, shift_pitch, stress
from src.models.checkpoint import TrainedClassifier
from src.training.cv_metrics import speaker_bootstrap
from src.training.cv_study import load_data
from src.training.selection import Recipe, final_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def median_f0(wave: np.ndarray) -> float:
    import parselmouth

    f0 = parselmouth.Sound(wave.astype(np.float64), 16_000).to_pitch_ac(pitch_floor=60, pitch_ceiling=500)
    v = f0.selected_array["frequency"]
    return float(np.median(v[v > 0]))


@pytest.fixture(scope="module")
def man_wave():
    return load_audio(REPO_DIR / "data/sample/audio/vctk-p226/p226_011.flac", 16_000, 60.0)


def test_pitch_shift_moves_f0_by_the_semitones_asked(man_wave):
    before = median_f0(man_wave)
    for semitones in (4.0, -3.0):
        after = median_f0(shift_pitch(man_wave, semitones))
        assert 12 * np.log2(after / before) == pytest.approx(semitones, abs=0.6)


def test_stress_conditions_on_real_speech(man_wave):
    n = len(man_wave)
    assert len(change_tempo(man_wave, 1.3)) == pytest.approx(n / 1.3, rel=0.05)
    assert len(change_tempo(man_wave, 1 / 1.3)) == pytest.approx(n * 1.3, rel=0.05)
    crop = loudest_crop(man_wave, 1.5)
    assert len(crop) == 24_000 and np.sqrt(np.mean(crop ** 2)) > np.sqrt(np.mean(man_wave ** 2))
    others = [load_audio(REPO_DIR / "data/sample/audio/vctk-p225/p225_020.flac", 16_000, 60.0)] * 4
    for c in CONDITIONS:
        y = stress(man_wave, c, np.random.default_rng(0), "male", others)
        assert y.dtype == np.float32 and np.isfinite(y).all() and np.abs(y).max() <= 0.99 + 1e-6
        assert not np.allclose(y[: min(len(y), n)], man_wave[: min(len(y), n)], atol=1e-3), c
    # a man is only ever raised, a woman only lowered
    assert median_f0(stress(man_wave, "pitch", np.random.default_rng(1), "male")) > median_f0(man_wave)
    assert median_f0(stress(man_wave, "pitch", np.random.default_rng(1), "female")) < median_f0(man_wave)
    with pytest.raises(ValueError, match="unknown stress condition"):
        stress(man_wave, "helium", np.random.default_rng(0), "male")


def test_speaker_bootstrap_is_wide_for_few_speakers_and_narrow_for_many():
    rng = np.random.default_rng(0)

    def width(n_speakers: int) -> float:
        spk = np.repeat(np.arange(n_speakers), 8)
        y = (spk % 2).astype(int)
        right = rng.random(len(spk)) < np.repeat(rng.uniform(0.4, 1.0, n_speakers), 8)  # speakers differ
        lo, hi = speaker_bootstrap(y, right, spk)
        assert lo <= right.mean() + 0.1 and hi >= right.mean() - 0.1
        return hi - lo

    assert width(7) > 0.3 and width(400) < 0.12


def cfg_paths(tmp_path) -> list[str]:
    return [f"paths.data_dir={REPO_DIR / 'data'}", f"paths.root_dir={tmp_path}", f"paths.runs_dir={tmp_path / 'runs'}",
            f"paths.embeddings_dir={tmp_path / 'emb'}/${{data.name}}", f"paths.analysis_dir={tmp_path / 'out'}"]


def _cv_cfg(tmp_path, *overrides: str):
    return compose("study", overrides=[
        *cfg_paths(tmp_path), "protocol=cv", "train_data=sample", "cv.folds=3", "cv.inner_folds=2",
        "cv.search=[linear]", "cv.trials=2", "cv.n_jobs=1",
        *overrides])


def test_cv_nested_resumes_and_the_optuna_sweep_returns_the_objective(tmp_path, run_cli):
    from src.extract import run_extract
    from src.stress import run_stress
    from src.study import run_study

    with initialize_config_module(version_base="1.3", config_module="conf"):
        base = [f"paths.data_dir={REPO_DIR / 'data'}", f"paths.root_dir={tmp_path}",
                f"paths.embeddings_dir={tmp_path / 'emb'}/${{data.name}}", "progress=false"]
        run_stress(compose("stress", overrides=[*base, "data=sample", "clips_per_speaker=1",
                                                "conditions=[pitch,telephone]"]))
        for enc in ("resemblyzer_egemaps", "acoustic"):
            for data in ("data=sample", "data=stress data.source=sample"):
                run_extract(compose("extract", overrides=[*base, f"encoder={enc}", *data.split()]))
        report = run_study(_cv_cfg(tmp_path))
        assert report == tmp_path / "out" / "study-sample-cv-nested-linear-speakers.md"
        result = json.loads(report.with_suffix(".json").read_text())
        assert len(result["chosen"]) == 3 and all(c["trials"] == 2 for c in result["chosen"])
        clean = result["metrics"]["clean"]
        assert clean["all"]["speakers"] == 40  # every speaker tested once
        assert {"adult", "child"} <= set(clean) and 0.5 <= clean["all"]["balanced_accuracy"] <= 1
        assert clean["all"]["ci_low"] <= clean["all"]["balanced_accuracy"] <= clean["all"]["ci_high"]
        assert set(result["metrics"]["condition"]) == {"pitch", "telephone"}
        pred = pd.read_csv(f"{report.with_suffix('')}-predictions.csv")
        assert pred[pred.condition == "clean"].groupby("speaker").fold.nunique().max() == 1
        for _, g in pred.groupby("speaker"):  # a stressed copy is scored by its speaker's held-out fold
            assert g.fold.nunique() == 1
        folds = sorted((tmp_path / "runs" / "study-sample-cv").rglob("fold*.npz"))
        stamps = [p.stat().st_mtime_ns for p in folds]
        assert len(folds) == 3
        run_study(_cv_cfg(tmp_path))
        assert [p.stat().st_mtime_ns for p in folds] == stamps  # a rerun keeps finished folds

        # the model to ship: calibrated per predicted age group from out-of-fold answers, saved whole
        cfg = _cv_cfg(tmp_path)
        data = load_data(cfg, lambda o: compose("train", overrides=[*cfg_paths(tmp_path), *o]))
        recipe = Recipe(features="egemaps", heads="age_groups", C=0.1, augment="pitch")
        clf, cal, oof = final_model(recipe, data, n_folds=3)
        assert set(cal.temperatures) >= {"*", "adult"} and all(0.5 <= t <= 0.9 for t in cal.unknown_below.values())
        assert oof["clean"]["all"]["speakers"] == 40
        clf.save(tmp_path / "best.pt")
        back = TrainedClassifier.load(tmp_path / "best.pt")
        x = data.x[data.clean][:, recipe.columns()]
        np.testing.assert_allclose(back.predict_proba(x), clf.predict_proba(x), atol=1e-6)
        assert back.output_temperatures == cal.temperatures and back.group_unknown_below == cal.unknown_below
        # each clip gets the most cautious threshold of the age groups it plausibly belongs to
        p_age, names = back.age_head.predict_proba(x), back.age_head.classes
        expected = [max(cal.unknown_below.get(g, cal.unknown_below["*"]) for j, g in enumerate(names)
                        if row[j] >= 0.2 or j == row.argmax()) for row in p_age]
        np.testing.assert_allclose(back.unknown_thresholds(x), expected)
        hard = [cal.unknown_below.get(g, cal.unknown_below["*"]) for g in back.age_head.classes_of(x)]
        assert (back.unknown_thresholds(x) >= np.array(hard)).all()

    sweep = run_cli("src.study", "-m", "hparams_search=linear", "hydra.sweeper.n_trials=2",
                    "hydra.sweeper.sampler.n_startup_trials=2", "train_data=sample", "cv.folds=3",
                    f"paths.data_dir={REPO_DIR / 'data'}", f"paths.root_dir={tmp_path}",
                    f"paths.runs_dir={tmp_path / 'runs'}", f"paths.embeddings_dir={tmp_path / 'emb'}/${{data.name}}",
                    f"paths.log_dir={tmp_path / 'logs'}", timeout_s=300)
    assert sweep.returncode == 0, sweep.stderr[-2000:]
    trials = pd.read_csv(tmp_path / "runs" / "study-sample-cv" / "trials.csv")
    assert len(trials) == 2 and set(trials.search) == {"linear"} and trials.objective.notna().all()
    results = yaml.safe_load(next((tmp_path / "logs").rglob("optimization_results.yaml")).read_text())
    assert results["best_value"] == pytest.approx(trials.objective.max(), abs=1e-4)  # the sweeper got them
