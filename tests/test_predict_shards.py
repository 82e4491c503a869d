"""Predict at scale: shards through the local launcher (one killed mid-way, then resumed), a merge
that refuses early, ``num_workers`` on one machine; and extraction's ``num_workers``.

Every run uses the shipped model, the real Silero VAD and Resemblyzer on clips of the bundled sample;
merged outputs must equal a one-process run byte for byte.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from src.embeddings.shards import MIN_CLIPS_PER_WORKER, available_cpus, done_path, resolve_workers
from src.embeddings.store import embeddings_path, iter_lines
from src.extract import run_extract
from src.inference.outputs import write_results
from src.inference.sharded import MIN_FILES_PER_WORKER, part_path, result_from_record, shard_files, shard_owners
from src.predict import output_names, run_predict

from conftest import CLI_TIMEOUT_S, REPO_DIR

pytestmark = pytest.mark.usefixtures("one_torch_thread")

N_FILES = 8


@pytest.fixture(scope="module")
def eight(tmp_path_factory, clips_by_duration, manifest_of) -> Path:
    """A manifest of eight bundled-sample clips (the shortest, so the runs stay short)."""
    return manifest_of(clips_by_duration[:N_FILES], tmp_path_factory.mktemp("eight") / "manifest.csv")


@pytest.fixture(scope="module")
def one_process(eight, tmp_path_factory, make_cfg) -> bytes:
    """The JSONL a plain one-process predict writes for the eight clips."""
    out = tmp_path_factory.mktemp("one") / "one.jsonl"
    assert run_predict(make_cfg(f"input={eight}", f"output={out}", "num_workers=1", config_name="predict")) == N_FILES
    return out.read_bytes()


def test_shards_get_about_equal_bytes_in_input_order(tmp_path):
    """Files dealt out by size (largest first, to the lightest shard): one long file among short
    ones no longer lands beside another long one, every file is in exactly one shard, in input
    order, and the same files give the same shards."""
    sizes = [900, 10, 800, 10, 700, 10, 600, 10, 10, 10, 10, 10]
    files = []
    for i, n in enumerate(sizes):
        files.append(tmp_path / f"f{i:02d}.wav")
        files[-1].write_bytes(b"x" * n)
    files.append(tmp_path / "missing.wav")  # unreadable: 0 bytes, still somewhere
    owners = shard_owners(files, 2)
    shards = [shard_files(files, k, 2) for k in range(2)]
    assert sorted(map(str, shards[0] + shards[1])) == sorted(map(str, files))
    assert all(s == sorted(s) for s in shards)  # input order kept
    loads = [sum(f.stat().st_size for f in s if f.exists()) for s in shards]
    assert abs(loads[0] - loads[1]) <= 100, loads  # every other file: 3,020 against 60
    assert shard_owners(files, 2) == owners and shard_files(files, 1, 2, owners) == shards[1]
    assert shard_owners(files, 1) == [0] * len(files)


def _cli(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run([sys.executable, "-m", "src.predict", *args], cwd=REPO_DIR, env=env,
                          capture_output=True, text=True, timeout=CLI_TIMEOUT_S)
    if check:
        assert proc.returncode == 0, f"predict {' '.join(args)}:\n{proc.stderr[-4000:]}"
    return proc


@pytest.mark.slow  # a killed shard, a local-launcher sweep and two merges: about a minute on 2 cores
def test_sharded_predict_killed_resumed_and_merged_equals_one_process(eight, one_process, tmp_path):
    out = tmp_path / "merged.jsonl"
    shards = tmp_path / f".{out.name}.shards"
    common = (f"input={eight}", f"output={out}", "progress=false", "num_threads=1")
    part0 = part_path(shards, 0, 2)
    log = open(tmp_path / "shard0.txt", "w")
    proc = subprocess.Popen([sys.executable, "-m", "src.predict", *common, "num_shards=2", "shard=0",
                             f"hydra.run.dir={tmp_path / 'killed'}"], cwd=REPO_DIR, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + CLI_TIMEOUT_S
        while time.monotonic() < deadline and proc.poll() is None:
            if part0.exists() and part0.read_bytes().count(b"\n") >= 1:
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.05)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    assert proc.returncode == -signal.SIGKILL, "shard 0 finished before it could be killed"
    n0 = len(shard_files([Path(p) for p in pd.read_csv(eight).path], 0, 2))  # dealt out by size
    assert 2 <= n0 <= N_FILES - 2
    before = [ln for ln in part0.read_text().splitlines(keepends=True) if ln.endswith("\n")]
    assert 1 <= len(before) < n0 and not done_path(part0).exists()

    refused = _cli(*common, "num_shards=2", "merge=true", f"hydra.run.dir={tmp_path / 'early'}", check=False)
    assert refused.returncode == 2 and "have not finished" in refused.stderr and not out.exists()

    _cli("-m", "hydra/launcher=local", *common, "num_shards=2", "shard=range(0,2)",
         f"hydra.sweep.dir={tmp_path / 'sweep'}")
    after = part0.read_text().splitlines(keepends=True)
    ids = [result_from_record(json.loads(ln)).path for ln in after]
    assert after[:len(before)] == before, "the resumed shard rewrote what the killed one had finished"
    assert len(ids) == len(set(ids)) == n0, "a finished file was predicted twice"
    assert all(done_path(part_path(shards, i, 2)).exists() for i in (0, 1))

    _cli(*common, "num_shards=2", "merge=true", f"hydra.run.dir={tmp_path / 'merge'}")
    assert out.read_bytes() == one_process

    # the same parts, merged again into one RTTM per input under output_dir
    grids = tmp_path / "rttm"
    _cli(f"input={eight}", f"output_dir={grids}", f"shards_dir={shards}", "format=rttm", "num_shards=2",
         "merge=true", f"hydra.run.dir={tmp_path / 'merge-rttm'}")
    expected = [result_from_record({"id": "", **json.loads(ln)}) for ln in one_process.splitlines()]
    names = output_names([Path(r.path) for r in expected])
    for r in expected:
        buf = io.StringIO()
        write_results([r], "rttm", buf)
        assert (grids / (names[r.path] + ".rttm")).read_text() == buf.getvalue()


def test_num_workers_2_equals_one_process(eight, one_process, tmp_path, make_cfg):
    out = tmp_path / "w2.jsonl"
    assert run_predict(make_cfg(f"input={eight}", f"output={out}", "num_workers=2", config_name="predict")) == N_FILES
    assert out.read_bytes() == one_process
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w2.jsonl"]  # the parts go once merged


def test_extract_num_workers_2_equals_one_process(eight, tmp_path, make_cfg):
    records = []
    for w in ("1", "2"):
        cfg = make_cfg("data=manifest", f"data.manifest_path={eight}", f"paths.embeddings_dir={tmp_path / w}",
                       f"num_workers={w}")
        assert run_extract(cfg).done == N_FILES
        records.append({r["id"]: r for r in iter_lines(embeddings_path(tmp_path / w, "resemblyzer"))})
    assert len(records[0]) == N_FILES and records[0] == records[1]
    two = make_cfg("data=manifest", f"data.manifest_path={eight}", f"paths.embeddings_dir={tmp_path / '2'}",
                   "num_workers=2")
    again = run_extract(two)
    assert (again.done, again.skipped) == (0, N_FILES)  # everything is in the main file
    embeddings_path(tmp_path / "2", "resemblyzer").unlink()  # a user deleting the file to extract afresh
    assert run_extract(two).done == N_FILES  # no done marker of the first run says otherwise


def test_num_workers_auto_is_the_cpus_this_process_may_use():
    assert available_cpus() == len(os.sched_getaffinity(0))
    many = 1000 * MIN_CLIPS_PER_WORKER
    assert resolve_workers("auto", many) == available_cpus()
    assert resolve_workers("auto", MIN_CLIPS_PER_WORKER - 1) == 1  # a worker costs a model load
    assert resolve_workers("auto", 1000 * MIN_FILES_PER_WORKER, MIN_FILES_PER_WORKER) == available_cpus()
    assert resolve_workers(4, 2) == 2 and resolve_workers("3", 10) == 3
    for bad in (0, -1, "two", "1.5"):
        with pytest.raises(ValueError, match="num_workers"):
            resolve_workers(bad, 10)


def test_predict_refuses_shards_without_an_output_and_bad_shards(eight, tmp_path, make_cfg):
    from src.cli import UsageError

    with pytest.raises(UsageError, match="output="):
        run_predict(make_cfg(f"input={eight}", "num_shards=2", config_name="predict"))
    with pytest.raises(UsageError, match="shard=2"):
        run_predict(make_cfg(f"input={eight}", f"output={tmp_path / 'o.jsonl'}", "num_shards=2", "shard=2",
                             config_name="predict"))
    with pytest.raises(UsageError, match="merge=true: give the sweep's num_shards"):
        run_predict(make_cfg(f"input={eight}", f"output={tmp_path / 'o.jsonl'}", "merge=true", config_name="predict"))
    with pytest.raises(UsageError, match="num_workers"):
        run_predict(make_cfg(f"input={eight}", f"output={tmp_path / 'o.jsonl'}", "num_workers=zero",
                             config_name="predict"))


def _workers_of(pid: int) -> list[int]:
    """The spawned worker processes of ``pid`` (not multiprocessing's resource tracker), from /proc."""
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if (int((d / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid
                        and b"spawn_main" in (d / "cmdline").read_bytes()):
                    out.append(int(d.name))
            except (OSError, IndexError, ValueError):
                continue
    return out


@pytest.mark.slow  # a killed run of 2 workers and its rerun: about a minute on 2 cores
def test_killed_num_workers_run_stops_its_workers_and_resumes(eight, one_process, tmp_path):
    out = tmp_path / "w.jsonl"
    shards = tmp_path / f".{out.name}.shards"
    args = (f"input={eight}", f"output={out}", "num_workers=2", "num_threads=1")
    log = open(tmp_path / "killed.txt", "w")
    proc = subprocess.Popen([sys.executable, "-m", "src.predict", *args, f"hydra.run.dir={tmp_path / 'killed'}"],
                            cwd=REPO_DIR, stdout=log, stderr=log)
    workers: list[int] = []
    try:
        deadline = time.monotonic() + CLI_TIMEOUT_S
        while time.monotonic() < deadline and proc.poll() is None:
            if len(workers) < 2:  # the spawned workers (not multiprocessing's resource tracker)
                workers = _workers_of(proc.pid)
            if any(part_path(shards, i, 2).exists() and part_path(shards, i, 2).read_bytes().count(b"\n") >= 1
                   for i in (0, 1)):
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.05)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    assert proc.returncode == -signal.SIGKILL and len(workers) == 2, (tmp_path / "killed.txt").read_text()[-2000:]
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() for p in workers):
        time.sleep(0.1)
    assert not any(Path(f"/proc/{p}").exists() for p in workers), "a worker outlived the killed command"
    assert not out.exists()
    finished = sum(part_path(shards, i, 2).read_text().count("\n") for i in (0, 1) if part_path(shards, i, 2).exists())
    assert 1 <= finished < N_FILES

    rerun = _cli(*args, f"hydra.run.dir={tmp_path / 'rerun'}")
    assert "already predicted; resuming" in rerun.stderr
    assert out.read_bytes() == one_process and not shards.exists()
