"""The verbs as a new user meets them: one-line errors with exit codes 2 (usage) and 1 (failure),
no truncated output, no warnings, the model named, and the result formats, all as real
subprocesses with the shipped default model on real speech from the bundled sample."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from src.data.audio import SAMPLE_RATE_HZ, load_audio
from src.inference.outputs import parse_rttm

REPO_DIR = Path(__file__).resolve().parents[1]
SAMPLE_AUDIO = REPO_DIR / "data" / "sample" / "audio"
FEMALE = SAMPLE_AUDIO / "vctk-p225" / "p225_020.flac"  # sample manifest: female
FEMALE_2 = SAMPLE_AUDIO / "vctk-p225" / "p225_022.flac"
MALE = SAMPLE_AUDIO / "vctk-p226" / "p226_011.flac"  # male
TIMEOUT_S = 240


def verb(module: str, *args: str, cwd: Path = REPO_DIR, env: dict | None = None) -> subprocess.CompletedProcess:
    """``python -m src.<module> args`` with this checkout first on the path; warnings are not silenced here."""
    env = {**{k: v for k, v in os.environ.items() if k not in ("PYTHONWARNINGS", "HYDRA_FULL_ERROR")}, **(env or {})}
    env["PYTHONPATH"] = str(REPO_DIR)
    if module in ("predict", "stream") and not any(a.startswith("run=") for a in args) and "--help" not in args:
        args = (*args, "run=default")  # the shipped model, whatever runs/ holds
    return subprocess.run([sys.executable, "-m", f"src.{module}", *args, "num_threads=1"], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=TIMEOUT_S, stdin=subprocess.DEVNULL)


def lines(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln.strip()]


@pytest.fixture(scope="module")
def mixed_wav(tmp_path_factory) -> Path:
    """Female, male, female (three real sample clips, 0.5 s of silence between): about 6 s of each voice."""
    gap = np.zeros(SAMPLE_RATE_HZ // 2, np.float32)
    wave = np.concatenate([load_audio(FEMALE), gap, load_audio(MALE), gap, load_audio(FEMALE_2)])
    path = tmp_path_factory.mktemp("mixed") / "talk.wav"
    sf.write(path, wave, SAMPLE_RATE_HZ, subtype="PCM_16")
    return path


@pytest.mark.parametrize("args, message", [
    ((), "missing input="),
    ((f"input={FEMALE}", "inptu=x"), "inptu"),
    ((f"input={FEMALE}", "format=TextGrd"), "format=TextGrd is not one of"),
    (("input=no/such/file.wav",), "no such file or folder"),
    ((f"input={FEMALE}", "run=no-such-run"), "no such run folder"),
    ((f"input={SAMPLE_AUDIO / 'vctk-p225'}", "format=textgrid"), "need output_dir="),
    ((f"input={FEMALE}", "output=/no/such/folder/out.csv"), "does not exist"),
])
def test_usage_errors_are_one_line_and_exit_2(args, message):
    proc = verb("predict", *args)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert len(lines(proc.stderr)) == 1 and message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stdout == ""


@pytest.mark.parametrize("args, message", [
    (("timeline_params.hop_s=0",), "timeline_params.hop_s=0.0 is out of range"),
    (("timeline_params.window_s=-1",), "timeline_params.window_s=-1.0 is out of range"),
    (("unknown_below=2",), "unknown_below=2 is out of range"),
    (("manifest:utf-16",), "the file is UTF-16"),
    (("manifest:no-path",), "missing column(s) ['path']"),
    (("manifest:stray-quote",), ":3: row cannot be parsed as CSV"),
])
def test_settings_and_manifests_predict_cannot_use_are_one_line_before_the_model(tmp_path, args, message):
    """The probe's hop_s=0 (ZeroDivisionError after the model loaded), window_s=-1 (IndexError),
    unknown_below=2 (accepted), and a UTF-16, path-less or quote-broken manifest (raw
    UnicodeDecodeError, KeyError 'path', or 3 of 5 rows lost with exit 0)."""
    manifest = tmp_path / "m.csv"
    rows = [f"{p},s,f" for p in (FEMALE, FEMALE_2, MALE)]
    texts = {"manifest:utf-16": ("path,speaker,gender\n" + "\n".join(rows), "utf-16"),
             "manifest:no-path": ("file,speaker\n" + "\n".join(rows), "utf-8"),
             "manifest:stray-quote": ("path,speaker,gender\n" + rows[0] + '\n"' + "\n".join(rows[1:]), "utf-8")}
    if args[0] in texts:
        text, encoding = texts[args[0]]
        manifest.write_text(text + "\n", encoding=encoding)
        args = (f"input={manifest}",)
    else:
        args = (f"input={FEMALE}", *args)
    proc = verb("predict", *args)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert len(lines(proc.stderr)) == 1 and message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert "model:" not in proc.stderr and proc.stdout == ""


def test_output_dir_names_never_collide_and_a_killed_runs_parts_are_cleaned(tmp_path):
    """The probe's a/call.flac, b/call.flac and a__call.flac: "3 results written", 2 files. Now 3
    files, each with its own input's answer; a part file a killed predict left there is removed."""
    import signal

    inputs, out = tmp_path / "in", tmp_path / "out"
    for rel, src in (("a/call.flac", FEMALE), ("b/call.flac", MALE), ("a__call.flac", FEMALE_2)):
        (inputs / rel).parent.mkdir(parents=True, exist_ok=True)
        (inputs / rel).write_bytes(src.read_bytes())
    out.mkdir()
    killed = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    orphan = out / f".a__call.jsonl.{killed.pid}-0123abcd.part"
    orphan.write_text('{"half": ')
    proc = verb("predict", f"input={inputs}", f"output_dir={out}", "progress=false")
    assert proc.returncode == 0, proc.stderr[-2000:]
    answers = {json.loads(p.read_text())["path"]: p.name for p in out.glob("*.jsonl")}
    assert len(answers) == 3 and sorted(answers) == sorted(str(inputs / r) for r in
                                                          ("a/call.flac", "b/call.flac", "a__call.flac")), answers
    assert not orphan.exists() and sorted(p.name for p in out.iterdir()) == sorted(answers.values())
    assert "3 result(s) written" in proc.stderr
    labels = {json.loads((out / name).read_text())["label"] for name in answers.values()}
    assert labels == {"female", "male"}


def test_an_unfinished_run_is_a_usage_error_and_debug_shows_the_traceback(tmp_path):
    run = tmp_path / "resemblyzer-2026-01-01_00-00-00"
    run.mkdir()
    (run / "config.yaml").write_text("encoder: {name: resemblyzer}\n")
    proc = verb("predict", f"input={FEMALE}", f"run={run}")
    assert proc.returncode == 2 and "is not a finished run" in proc.stderr and len(lines(proc.stderr)) == 1, proc.stderr
    debug = verb("predict", f"input={FEMALE}", f"run={run}", "debug=true")
    assert debug.returncode == 2 and "Traceback" in debug.stderr and "RunError" in debug.stderr
    full = verb("predict", f"input={FEMALE}", f"run={run}", env={"HYDRA_FULL_ERROR": "1"})
    assert full.returncode == 2 and "Traceback" in full.stderr


def test_a_failed_command_never_truncates_the_output(tmp_path):
    keep = tmp_path / "keep.csv"
    keep.write_text("precious,results\n1,2\n")
    usage = verb("predict", f"input={FEMALE}", "format=TextGrd", f"output={keep}")
    assert usage.returncode == 2 and keep.read_text() == "precious,results\n1,2\n"
    # a failure at run time, after the arguments were accepted: a damaged checkpoint
    broken = tmp_path / "runs" / "resemblyzer-2026-01-01_00-00-00"
    broken.mkdir(parents=True)
    (broken / "config.yaml").write_text((REPO_DIR / "models" / "default" / "config.yaml").read_text())
    (broken / "best.pt").write_bytes(b"not a checkpoint")
    (broken / "metrics.json").write_text("{}")  # finished, as far as the folder shows
    failed = verb("predict", f"input={FEMALE}", "format=csv", f"output={keep}", f"run={broken}")
    assert failed.returncode == 1, failed.stderr[-2000:]
    said = [ln for ln in lines(failed.stderr) if not ln.startswith("[")]  # besides the log lines
    assert len(said) == 1 and said[0].startswith("predict: error") and "Traceback" not in failed.stderr, said
    assert keep.read_text() == "precious,results\n1,2\n" and sorted(p.name for p in tmp_path.iterdir()) == [
        "keep.csv", "runs"]


def test_help_lists_only_the_verbs_own_options():
    proc = verb("predict", "--help")
    assert proc.returncode == 0
    options = [ln for ln in proc.stdout.splitlines() if ln.startswith("  ")]
    assert any(ln.split()[0] == "input=???" for ln in options) and any(ln.startswith("  format=") for ln in options)
    assert "job_logging" not in proc.stdout and "hydra_help" not in proc.stdout  # not Hydra's dump
    assert len(proc.stdout.splitlines()) < 30


def test_a_prediction_is_quiet_names_its_model_and_writes_nothing_where_it_runs(tmp_path, mixed_wav):
    out = tmp_path / "out.jsonl"
    proc = verb("predict", f"input={mixed_wav}", f"output={out}", "progress=false", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for noise in ("Warning", "pkg_resources", "torch.jit"):
        assert noise not in proc.stderr, proc.stderr
    assert re.search(r"model: default \(.*models/default\)", proc.stderr), proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl"]  # no logs/ in the user's folder
    r = json.loads(out.read_text())
    assert r["model"] == "default" and r["label"] == "mixed" and r["status"] == "ok", r
    assert r["p_male"] is not None and r["speaking_time_s"]["female"] > 3 and r["speaking_time_s"]["male"] > 3, r
    assert r["p_female"] == pytest.approx(1 - r["p_male"], abs=1e-5)  # mixed keeps the whole recording's
    assert sum(r["speaking_time_s"].values()) <= r["speech_s"] + 0.5  # speech only, not the pauses


def test_segment_formats_and_one_file_per_input(tmp_path, mixed_wav):
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / mixed_wav.name).write_bytes(mixed_wav.read_bytes())
    (inputs / MALE.name).write_bytes(MALE.read_bytes())
    grids = tmp_path / "grids"
    proc = verb("predict", f"input={inputs}", "format=textgrid", f"output_dir={grids}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert sorted(p.name for p in grids.iterdir()) == ["p226_011.TextGrid", "talk.TextGrid"]
    talk = (grids / "talk.TextGrid").read_text()
    assert re.findall(r'text = "(female|male)"', talk)[:3] == ["female", "male", "female"], talk
    assert set(re.findall(r'text = "(\w+)"', (grids / "p226_011.TextGrid").read_text())) == {"male"}

    seg = verb("predict", f"input={inputs}", "format=segments", "progress=false")
    rows = list(csv.DictReader(seg.stdout.splitlines()))
    assert seg.returncode == 0 and list(rows[0]) == ["file", "start", "end", "label", "p"]
    talk_rows = [r for r in rows if r["file"].endswith("talk.wav")]
    said = [r["label"] for r in talk_rows if r["label"] != "unknown"]
    assert said[:3] == ["female", "male", "female"] and said == [a for a, b in zip(said, [None] + said) if a != b], said
    assert all(float(r["p"]) >= 0.5 for r in talk_rows if r["label"] != "unknown")

    rttm = verb("predict", f"input={inputs}", "format=rttm", "unknown_below=0.95")
    labels = {r["label"] for r in parse_rttm(rttm.stdout)}
    assert rttm.returncode == 0 and labels and labels <= {"female", "male"}, rttm.stdout


def test_status_says_unknown_apart_from_no_speech_and_error(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / MALE.name).write_bytes(MALE.read_bytes())
    sf.write(folder / "silence.wav", np.zeros(3 * SAMPLE_RATE_HZ, np.float32), SAMPLE_RATE_HZ)
    (folder / "broken.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEjunk" + bytes(range(256)) * 4)
    proc = verb("predict", f"input={folder}", "format=csv", "unknown_below=1.0", "timeline=false", "progress=false")
    rows = {Path(r["path"]).name: r for r in csv.DictReader(proc.stdout.splitlines())}
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert {k: (r["label"], r["status"]) for k, r in rows.items()} == {
        "p226_011.flac": ("unknown", "unknown"), "silence.wav": ("unknown", "no_speech"),
        "broken.wav": ("unknown", "error")}
    assert rows["p226_011.flac"]["speaking_time_male_s"] == "" and rows["silence.wav"]["p_male"] == ""


def test_stream_ends_with_the_whole_answer_and_speech_only_time(tmp_path, mixed_wav):
    proc = verb("stream", f"source=file:{mixed_wav}", "realtime=false", "every_hop=false", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = lines(proc.stdout)
    assert all("<- change" in ln for ln in out[:-1]) and out[-1].startswith("end: mixed"), out
    times = {k: float(v) for k, v in re.findall(r"(female|male|unknown) ([\d.]+) s", out[-1])}
    offline = json.loads(verb("predict", f"input={mixed_wav}", "progress=false").stdout)
    duration_s, speech_s = offline["duration_s"], offline["speech_s"]  # about 17.6 s and 12.3 s
    assert times["female"] > 3 and times["male"] > 3, out[-1]
    assert sum(times.values()) <= min(1.2 * speech_s, duration_s - 2.0), (out[-1], speech_s)  # silence not counted
    assert "model: default" in proc.stderr and "Warning" not in proc.stderr and not list(tmp_path.iterdir())


@pytest.mark.parametrize("module, args, message", [
    ("stream", ("source=file:no/such/file.wav",), "no such file"),
    ("stream", ("source=bogus",), "unknown source"),
    ("serve", ("run=no-such-run",), "no such run folder"),
    ("serve", ("unknown_below=0.2",), "unknown_below=0.2 is out of range"),
    ("stream", ("stream.hop_s=0",), "stream.hop_s=0.0 is out of range"),
    ("train", ("model=no_such_model",), "model"),
    ("extract", ("data=manifest", "data.manifest_path=no/such/manifest.csv", "data.name=nowhere"),
     "manifest not found"),
])
def test_other_verbs_fail_the_same_way(module, args, message):
    proc = verb(module, *args)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert len(lines(proc.stderr)) == 1 and message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
