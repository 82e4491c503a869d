"""Degraded copies of training audio (``python -m src.augment``): the degradations do what they say
on a real clip, and a mix trains on the copies of training speakers only."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from test_train import REPO_DIR, compose_cfg

from src.augment import run_augment
from src.data.augment import AugmentParams, degrade, mix_at_snr, telephone
from src.extract import run_extract
from src.train import run_train

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CLIP = REPO_DIR / "data" / "sample" / "audio" / "vctk-p225" / "p225_020.flac"


@pytest.fixture(scope="module")
def wave() -> np.ndarray:
    w, sr = sf.read(CLIP, dtype="float32")
    assert sr == 16_000
    return w


def test_noise_is_mixed_at_the_asked_snr(wave):
    noise = np.random.default_rng(0).standard_normal(len(wave))
    for snr_db in (0.0, 10.0, 30.0):
        y = mix_at_snr(wave.astype(np.float64), noise, snr_db)
        measured = 10 * np.log10(np.mean(wave.astype(np.float64) ** 2) / np.mean((y - wave) ** 2))
        assert abs(measured - snr_db) < 0.01


def test_telephone_keeps_the_band_and_the_length(wave):
    y = telephone(wave)
    assert len(y) == len(wave)
    spec_in, spec_out = np.abs(np.fft.rfft(wave)) ** 2, np.abs(np.fft.rfft(y)) ** 2
    f = np.fft.rfftfreq(len(wave), 1 / 16_000)
    share = lambda spec, band: spec[band].sum() / spec.sum()  # noqa: E731
    high, low = f > 4_500, f < 200
    assert share(spec_out, high) < 1e-4 < 1e-3 < share(spec_in, high)  # above the 8 kHz line's band: gone
    assert share(spec_out, low) < 0.02 < 0.1 < share(spec_in, low)  # under 300 Hz: cut


def test_degrade_is_seeded_and_never_clips(wave):
    a, done_a = degrade(wave, np.random.default_rng(7), AugmentParams(), [wave[::-1].copy()] * 3)
    b, done_b = degrade(wave, np.random.default_rng(7), AugmentParams(), [wave[::-1].copy()] * 3)
    assert done_a == done_b and np.array_equal(a, b) and done_a
    assert len(a) == len(wave) and np.abs(a).max() <= 0.99 + 1e-6
    c, _ = degrade(wave, np.random.default_rng(8), AugmentParams(), [wave[::-1].copy()] * 3)
    assert not np.array_equal(a, c)


def test_a_mix_trains_on_copies_of_training_speakers_only(sample_clips, manifest_of, tmp_path):
    from conftest import clip_row

    adults = [c for c in sample_clips if c.groups["corpus"] != "speechocean762"]
    manifest = manifest_of([], tmp_path / "adults" / "manifest.csv",
                           [clip_row(c, corpus=c.groups["corpus"]) for c in adults])
    aug_manifest = run_augment(compose_cfg("augment", "data=manifest", f"data.manifest_path={manifest}",
                                           "data.name=adults", "data.group_columns=[corpus]",
                                           f"out_dir={tmp_path / 'aug'}", "progress=false"))
    rows = pd.read_csv(aug_manifest)
    assert len(rows) == len(adults) and rows.augmentation.str.len().gt(0).all()
    assert set(rows.speaker) == {c.speaker for c in adults}  # copies keep their speaker ids
    sources = (f"data.sources=[{{name: adults, manifest_path: '{manifest}', group_columns: [corpus], "
               f"age_group: adult}},"
               f"{{name: adults_aug, manifest_path: '{aug_manifest}', group_columns: [corpus], age_group: adult,"
               f" augments: adults}}]")
    common = [f"paths.embeddings_dir={tmp_path}/emb/${{data.name}}", "data=mix", sources]
    run_extract(compose_cfg("extract", *common, "progress=false"))
    metrics = run_train(compose_cfg("train", *common, "model=logreg"), tmp_path / "run")
    pred = pd.read_csv(tmp_path / "run" / "predictions.csv")
    copies = pred[pred.augmented == "yes"]
    assert len(copies) > 0 and (copies.split == "train").all()
    assert pred.speaker.str.startswith("adults/").all()  # the copies share their source's speakers
    train_speakers = set(pred[(pred.split == "train") & (pred.augmented != "yes")].speaker)
    assert set(copies.speaker) == train_speakers
    assert metrics["test"]["n"] == (pred.split == "test").sum()
