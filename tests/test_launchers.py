"""Past one machine: the SLURM and local launcher configs, a sweep of shards through submitit's
local executor, a timeout signal -> requeue -> resume, and a clean exit on that signal.

Everything runs the real Silero VAD and the real Resemblyzer on real speech; no cluster is
needed (``sbatch``/``srun`` are stand-ins on ``PATH`` that capture the rendered script).
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from src.embeddings.extract import ExtractOptions, _prefetch, chunk_plan, embed_prepared, prepare_chunk
from src.embeddings.shards import done_path
from src.embeddings.store import embeddings_path, iter_lines, shard_paths, stats_path
from src.extract import run_extract

from conftest import CLI_TIMEOUT_S, REPO_DIR

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ENC = "resemblyzer"


def _cfg(make_cfg, manifest: Path, out_dir: Path, *more: str):
    return make_cfg("data=manifest", f"data.manifest_path={manifest}", f"paths.embeddings_dir={out_dir}", *more)


def _ids(path: Path) -> list[str]:
    return [r["id"] for r in iter_lines(path, strict=True)]


# --------------------------------------------------------------------------- configs

def test_launcher_configs_compose(make_cfg):
    slurm = make_cfg("hydra/launcher=slurm", hydra_config=True).hydra.launcher
    assert slurm._target_.endswith("SlurmLauncher")
    assert (slurm.gpus_per_node, slurm.tasks_per_node, slurm.nodes) == (1, 1, 1)
    assert slurm.max_num_timeout > 0 and slurm.signal_delay_s > 0
    assert {"partition", "account", "setup"} <= set(slurm)
    local = make_cfg("hydra/launcher=local", hydra_config=True).hydra.launcher
    assert local._target_.endswith("LocalLauncher")
    more = make_cfg("hydra/launcher=slurm", "hydra.launcher.partition=gpu", "hydra.launcher.account=acme",
                    "hydra.launcher.setup=['export HF_HUB_OFFLINE=1']", hydra_config=True).hydra.launcher
    assert (more.partition, more.account, list(more.setup)) == ("gpu", "acme", ["export HF_HUB_OFFLINE=1"])


def _stand_in(bin_dir: Path, name: str, body: str) -> None:
    p = bin_dir / name
    p.write_text("#!/bin/sh\n" + body)
    p.chmod(p.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


@pytest.mark.slow  # one Python process importing hydra + submitit: a few seconds
def test_slurm_sweep_renders_one_array_with_a_gpu_and_the_signal(tmp_path, tiny_manifest):
    """The sbatch script of a 4-shard sweep, caught by a stand-in ``sbatch`` (which then refuses
    the job, so the sweep ends there)."""
    bin_dir, caught = tmp_path / "bin", tmp_path / "sbatch.sh"
    bin_dir.mkdir()
    _stand_in(bin_dir, "sbatch", f'cp "$1" {caught}\necho "stand-in sbatch: not a cluster" >&2\nexit 1\n')
    _stand_in(bin_dir, "srun", 'exec "$@"\n')
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(
        [sys.executable, "-m", "src.extract", "-m", "hydra/launcher=slurm", "num_shards=4", "shard=range(0,4)",
         "data=manifest", f"data.manifest_path={tiny_manifest}", f"paths.embeddings_dir={tmp_path / 'out'}",
         "hydra.launcher.partition=gpu", "hydra.launcher.account=acme", "hydra.launcher.setup=['export X=1']",
         f"hydra.sweep.dir={tmp_path / 'sweep'}"],
        cwd=REPO_DIR, env=env, capture_output=True, text=True, timeout=CLI_TIMEOUT_S)
    assert proc.returncode != 0 and "stand-in sbatch" in proc.stderr + proc.stdout
    script = caught.read_text()
    assert "#SBATCH --array=0-3%4" in script  # one array task per shard
    assert "#SBATCH --gpus-per-node=1" in script and "#SBATCH --ntasks-per-node=1" in script
    assert "#SBATCH --signal=USR2@120" in script
    assert "#SBATCH --partition=gpu" in script and "#SBATCH --account=acme" in script
    assert "#SBATCH --time=120" in script
    assert "export X=1" in script and "srun" in script and "submitit.core._submit" in script
    assert not (tmp_path / "out").exists()  # nothing ran


# --------------------------------------------------------------------------- clean exit, in process

def test_prefetch_thread_is_joined_when_the_consumer_stops(clips_by_duration, segmenter):
    opts = ExtractOptions(chunk_clips=1)
    chunks = chunk_plan(clips_by_duration[:6], 1, first=1)
    gen = _prefetch(chunks, segmenter, opts)
    assert len(next(gen)) == 1
    assert [t for t in threading.enumerate() if t.name == "decode-vad"]
    gen.close()
    assert not [t for t in threading.enumerate() if t.name == "decode-vad"]


def test_prefetch_thread_is_joined_when_the_consumer_raises(clips_by_duration, segmenter):
    """SystemExit raised in the consumer (as submitit's signal handler does) still joins the thread."""
    chunks = chunk_plan(clips_by_duration[:6], 1, first=1)
    with pytest.raises(SystemExit):
        for _ in _prefetch(chunks, segmenter, ExtractOptions(chunk_clips=1)):
            raise SystemExit(144)
    assert not [t for t in threading.enumerate() if t.name == "decode-vad"]


def test_prepare_chunk_stops_when_told(clips_by_duration, segmenter):
    stop = threading.Event()
    stop.set()
    assert prepare_chunk(clips_by_duration[:3], segmenter, ExtractOptions(), stop) is None


class _Encoder:
    """Real Resemblyzer, but ``embed`` raises ``error`` on batches of more than one clip (and, with
    ``always``, on every call)."""

    def __init__(self, real, error: Exception, always: bool = False):
        self.real, self.error, self.always = real, error, always
        self.name, self.dim, self.sample_rate_hz, self.identity = real.name, real.dim, 16_000, real.identity

    def embed(self, waves):
        if self.always or len(waves) > 1:
            raise self.error
        return self.real.embed(waves)


def test_encoder_errors_are_retried_clip_by_clip_but_launcher_errors_are_not(clips_by_duration, segmenter, encoder):
    from submitit.core.utils import UncompletedJobError

    prepared = prepare_chunk(clips_by_duration[:3], segmenter, ExtractOptions())
    recs = embed_prepared(prepared, _Encoder(encoder, RuntimeError("CUDA out of memory")), batch_size=3)
    assert [r["status"] for r in recs] == ["ok"] * 3  # retried one by one
    want = encoder.embed([prepared[0].speech])[0]
    np.testing.assert_allclose(recs[0]["embedding"], want, atol=1e-5)
    with pytest.raises(UncompletedJobError):
        embed_prepared(prepared, _Encoder(encoder, UncompletedJobError("timed-out too many times")), batch_size=3)
    with pytest.raises(UncompletedJobError):  # nor in the one-by-one retry
        embed_prepared(prepared, _Encoder(encoder, UncompletedJobError("timed-out"), always=True), batch_size=1)


# --------------------------------------------------------------------------- shards, in process

@pytest.fixture
def eight(tmp_path, clips_by_duration, manifest_of):
    clips = clips_by_duration[:16:2]
    return clips, manifest_of(clips, tmp_path / "manifest.csv")


def test_a_finished_shard_exits_before_loading_the_encoder(eight, make_cfg, tmp_path, monkeypatch):
    clips, manifest = eight
    out_dir = tmp_path / "out"
    first = run_extract(_cfg(make_cfg, manifest, out_dir, "num_shards=2", "shard=0"))
    part = embeddings_path(out_dir, ENC, 0, 2)
    assert first.done == 4 and done_path(part).exists() and stats_path(out_dir, ENC, 0, 2).exists()
    assert not stats_path(out_dir, ENC).exists()  # shards no longer share one stats file

    import src.extract

    def no_encoder(*_):
        raise AssertionError("a finished shard loaded the encoder")

    monkeypatch.setattr(src.extract, "build_encoder", no_encoder)
    again = run_extract(_cfg(make_cfg, manifest, out_dir, "num_shards=2", "shard=0"))
    assert (again.done, again.skipped) == (0, 4)
    with pytest.raises(AssertionError, match="loaded the encoder"):  # other clips: the marker does not cover them
        run_extract(_cfg(make_cfg, manifest, out_dir, "num_shards=2", "shard=0", "min_speech_s=0.3"))


def test_merge_refuses_missing_shards_and_a_rerun_after_merge_redoes_nothing(eight, make_cfg, tmp_path):
    clips, manifest = eight
    out_dir = tmp_path / "out"
    run_extract(_cfg(make_cfg, manifest, out_dir, "num_shards=2", "shard=1"))
    from src.embeddings.store import EmbeddingsError
    with pytest.raises(EmbeddingsError, match=r"shard\(s\) \[0\] of 2"):
        run_extract(_cfg(make_cfg, manifest, out_dir, "merge=true"))
    run_extract(_cfg(make_cfg, manifest, out_dir, "num_shards=2", "shard=0"))
    run_extract(_cfg(make_cfg, manifest, out_dir, "merge=true"))
    main = embeddings_path(out_dir, ENC)
    assert sorted(_ids(main)) == sorted(c.id for c in clips) and shard_paths(out_dir, ENC) == []
    assert stats_path(out_dir, ENC).exists()
    import src.extract

    def no_encoder(*_):
        raise AssertionError("the encoder was loaded with nothing to do")

    for i in (0, 1):  # without the done markers the shards still find their clips in the main file
        done_path(embeddings_path(out_dir, ENC, i, 2)).unlink()
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(src.extract, "build_encoder", no_encoder)
            rerun = run_extract(_cfg(make_cfg, manifest, out_dir, "num_shards=2", f"shard={i}"))
        assert (rerun.done, rerun.skipped) == (0, 4) and done_path(embeddings_path(out_dir, ENC, i, 2)).exists()
    run_extract(_cfg(make_cfg, manifest, out_dir, "merge=true"))
    assert sorted(_ids(main)) == sorted(c.id for c in clips)


def test_overwrite_in_a_shard_leaves_the_other_shards_alone(eight, make_cfg, tmp_path):
    clips, manifest = eight
    out_dir = tmp_path / "out"
    for i in (0, 1):
        run_extract(_cfg(make_cfg, manifest, out_dir, "num_shards=2", f"shard={i}"))
    other = embeddings_path(out_dir, ENC, 1, 2)
    before = other.read_bytes()
    again = run_extract(_cfg(make_cfg, manifest, out_dir, "num_shards=2", "shard=0", "overwrite=true"))
    assert (again.done, again.skipped) == (4, 0)  # redone
    assert other.read_bytes() == before and done_path(other).exists()  # shard 1 untouched


# --------------------------------------------------------------------------- sweeps through submitit's local executor

@pytest.mark.slow  # three Python processes importing torch: ~20-40 s on 2 shared cores
def test_local_launcher_sweep_writes_both_shards_and_merges(eight, run_cli, tmp_path):
    clips, manifest = eight
    clips = clips[:4]
    out_dir, sweep_dir = tmp_path / "out", tmp_path / "sweep"
    common = ("data=manifest", f"data.manifest_path={manifest}", f"paths.embeddings_dir={out_dir}",
              "progress=false", "num_threads=1")
    run_cli("src.extract", "-m", "hydra/launcher=local", "num_shards=2", "shard=range(0,2)", *common,
            f"hydra.sweep.dir={sweep_dir}")
    for i in (0, 1):
        part = embeddings_path(out_dir, ENC, i, 2)
        assert _ids(part) == [c.id for c in eight[0][i::2]] and done_path(part).exists()
        assert (sweep_dir / f"shard-{i}" / "extract.log").is_file()
    run_cli("src.extract", "merge=true", *common, f"hydra.run.dir={tmp_path / 'merge-log'}")
    merged = _ids(embeddings_path(out_dir, ENC))
    assert sorted(merged) == sorted(c.id for c in eight[0]) and len(merged) == len(set(merged))
    assert shard_paths(out_dir, ENC) == []


def _task_pids(token: bytes) -> list[int]:
    """Processes of submitit jobs (``python -m submitit.core._submit``) started with ``token`` in their environment."""
    pids = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            if b"submitit.core._submit" in (d / "cmdline").read_bytes() and token in (d / "environ").read_bytes():
                pids.append(int(d.name))
        except OSError:
            continue
    return pids


@pytest.mark.slow  # two runs of a shard in a submitit job: ~30-60 s on 2 shared cores
def test_timeout_signal_requeues_and_the_shard_resumes(tmp_path, clips_by_duration, manifest_of):
    """SIGUSR2 (what SLURM sends ``signal_delay_s`` before the limit) once the shard has written two
    records: the job exits with the requeue code, submitit starts it again, it resumes from its part
    file and finishes with every clip once; nothing aborts."""
    clips = clips_by_duration[:24:2]
    manifest = manifest_of(clips, tmp_path / "manifest.csv")
    out_dir, sweep_dir = tmp_path / "out", tmp_path / "sweep"
    part = embeddings_path(out_dir, ENC, 0, 2)
    mine = [c.id for c in clips[0::2]]
    token = uuid.uuid4().hex
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "GVT_TEST_TOKEN": token}
    cmd = [sys.executable, "-m", "src.extract", "-m", "hydra/launcher=local", "num_shards=2", "shard=0",
           "data=manifest", f"data.manifest_path={manifest}", f"paths.embeddings_dir={out_dir}", "progress=false",
           "num_threads=1", "chunk_clips=1", "encoder.batch_size=1", f"hydra.sweep.dir={sweep_dir}"]
    with open(tmp_path / "out.txt", "w") as log_file:
        proc = subprocess.Popen(cmd, cwd=REPO_DIR, env=env, stdout=log_file, stderr=subprocess.STDOUT)
        try:
            deadline, signalled = time.monotonic() + CLI_TIMEOUT_S, []
            while time.monotonic() < deadline and proc.poll() is None and not signalled:
                if part.exists() and part.read_bytes().count(b"\n") >= 2:
                    for pid in _task_pids(token.encode()):
                        os.kill(pid, signal.SIGUSR2)
                        signalled.append(pid)
                time.sleep(0.02)
            written_at_signal = part.read_bytes().count(b"\n")
            proc.wait(CLI_TIMEOUT_S)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(30)
    text = (tmp_path / "out.txt").read_text()
    assert len(signalled) == 1, f"no single shard process to signal:\n{text[-3000:]}"
    assert written_at_signal < len(mine), "the shard finished before the signal; nothing was tested"
    assert proc.returncode == 0, text[-3000:]
    logs = "\n".join(p.read_text(errors="replace") for p in (sweep_dir / ".submitit").rglob("*_log.*"))
    assert "Caught signal SIGUSR2" in logs and "Requeued job" in logs, logs[-3000:]
    for bad in ("terminate called", "Aborted", "core dumped", "Traceback"):
        assert bad not in logs, logs[-3000:]
    assert "resuming:" in (sweep_dir / "shard-0" / "extract.log").read_text()
    ids = _ids(part)
    assert Counter(ids) == Counter(mine), ids  # every clip of the shard, each once
    assert done_path(part).exists()


@pytest.mark.slow  # four Python processes importing torch, two extractions and two trainings: ~1 min
def test_study_systems_as_one_job_each_then_the_table(run_cli, tmp_path):
    """``src.study``'s systems are independent once their encoders differ: one local job per system,
    then a plain study finds every step done and writes the whole table."""
    import pandas as pd

    common = ("seeds=[0]", "train_data=sample", "eval_data=[sample]", f"paths.runs_dir={tmp_path / 'runs'}",
              f"paths.embeddings_dir={tmp_path / 'emb'}/${{data.name}}", f"paths.analysis_dir={tmp_path / 'out'}",
              "num_threads=1")
    run_cli("src.study", "-m", "hydra/launcher=local", "only=choice([resemblyzer-logreg],[acoustic-pitch])", *common,
            f"hydra.sweep.dir={tmp_path / 'sweep'}")
    runs = sorted(p.parent.name for p in (tmp_path / "runs" / "study-sample").glob("*/seed0"))
    assert runs == ["acoustic-pitch", "resemblyzer-logreg"]
    assert {p.name for p in (tmp_path / "sweep").iterdir()} >= {"0", "1", ".submitit"}
    proc = run_cli("src.study", "only=[resemblyzer-logreg,acoustic-pitch]", *common,
                   f"hydra.run.dir={tmp_path / 'final'}")
    assert "skipped 63 already written" in proc.stdout + proc.stderr + (tmp_path / "final" / "study.log").read_text()
    table = pd.read_csv(tmp_path / "out" / "study-sample.csv", keep_default_na=False).set_index("system")
    assert list(table.index) == ["resemblyzer-logreg", "acoustic-pitch"] and (table["seeds"] == 1).all()
