"""The command line forgives (issue 22): positional input and ``-i``, "did you mean", options
checked before any model loads, hints that carry the user's overrides, no run folder left by a
failed train. The verbs run as real subprocesses on the sample's real clips."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from src.cli import UsageError, carry_overrides, check_options, did_you_mean, hydra_value, with_positional

REPO_DIR = Path(__file__).resolve().parents[1]
CLIP = sorted((REPO_DIR / "data" / "sample" / "audio" / "arctic-aew").glob("*.flac"))[0]


def verb(module: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO_DIR, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONWARNINGS": "ignore"})


def test_positional_and_dash_i_become_overrides():
    assert with_positional(["call.wav", "format=text"], "input") == ["input=call.wav", "format=text"]
    assert with_positional(["-i", "my call (1).m4a"], "input") == ["input='my call (1).m4a'"]
    assert with_positional(["--input=x.wav", "--cfg", "job"], "input") == ["input=x.wav", "--cfg", "job"]
    assert with_positional(["call.wav"], "source", "file:") == ["source=file:call.wav"]
    assert with_positional(["mic"], "source", "file:") == ["source=mic"]
    assert hydra_value("it's.wav") == "'it\\'s.wav'"
    with pytest.raises(UsageError):
        with_positional(["-i"], "input")


def test_did_you_mean_and_hints_with_the_users_overrides():
    assert "format=" in did_you_mean("predict", "Could not override 'fromat'. Key 'fromat' is not in struct")
    assert did_you_mean("predict", "something else") == ""
    hint = carry_overrides("run `python -m src.extract encoder=ecapa` first", ["data=dev", "model=svm", "seed=3"])
    assert hint == "run `python -m src.extract encoder=ecapa data=dev` first", hint  # extract has no model, seed


@pytest.mark.parametrize("override, words", [("timeline=maybe", "true or false"), ("unknown_below=2", "[0.5, 1]"),
                                             ("timeline_params.hop_s=-1", "hop_s")])
def test_options_out_of_range_are_usage_errors(override, words):
    from hydra import compose, initialize_config_module

    with initialize_config_module(version_base="1.3", config_module="conf"):
        cfg = compose("predict", overrides=["input=x.wav", override])
    with pytest.raises(UsageError, match=words.replace("[", r"\[")):
        check_options("predict", cfg)
    with initialize_config_module(version_base="1.3", config_module="conf"):
        check_options("predict", compose("predict", overrides=["input=x.wav"]))  # the defaults pass
    assert OmegaConf.is_config(cfg)


def test_the_verbs_forgive(tmp_path):
    ok = verb("src.predict", str(CLIP), "progress=false", f"hydra.run.dir={tmp_path / 'a'}")
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert json.loads(ok.stdout)["label"] == "male" and json.loads(ok.stdout)["model"] == "default"
    typo = verb("src.predict", "-i", str(CLIP), "fromat=text", f"hydra.run.dir={tmp_path / 'b'}")
    assert typo.returncode == 2 and "did you mean format=" in typo.stderr and len(typo.stderr.splitlines()) == 1
    runs = tmp_path / "runs"
    train = verb("src.train", "data=dev", "encoder=ecapa", f"paths.embeddings_dir={tmp_path / 'none'}",
                 f"paths.runs_dir={runs}")
    assert train.returncode != 0 and "data=dev" in train.stderr.splitlines()[-1], train.stderr[-2000:]
    assert not runs.exists() or list(runs.iterdir()) == []  # no empty run folder left behind
