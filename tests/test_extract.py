"""Extraction end to end with the real Silero VAD and the real Resemblyzer on real speech.

Every bad input is one row of a manifest that also holds real clips; each becomes one
record with the right status and reason. A killed run resumes to the same records as an
uninterrupted one; shards (in-process and through Hydra's joblib launcher) add up to a
single run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
import soxr

from src.building import embedding_options
from src.data.audio import SAMPLE_RATE_HZ, load_audio
from src.data.manifest import read_manifest, write_manifest
from src.embeddings.store import (
    STATUS_ERROR,
    STATUS_NO_SPEECH,
    STATUS_OK,
    EmbeddingsError,
    config_hash,
    embeddings_path,
    iter_lines,
    meta_path,
    read_meta,
    read_records,
    shard_paths,
)
from src.extract import run_extract

from conftest import REPO_DIR, clip_row

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ENC = "resemblyzer"
DIM = 256
MAX_DURATION_S = 20.0
NO_SPEECH_REASON = "no speech found by the VAD"


def _cfg(make_cfg, manifest: Path, out_dir: Path, *more: str):
    return make_cfg("data=manifest", f"data.manifest_path={manifest}", f"paths.embeddings_dir={out_dir}", *more)


def _by_id(records: list[dict]) -> dict[str, dict]:
    ids = [r["id"] for r in records]
    assert len(ids) == len(set(ids)), [i for i, n in Counter(ids).items() if n > 1]
    return {r["id"]: r for r in records}


def _lines(path: Path) -> list[dict]:
    return list(iter_lines(path, strict=True))


def _assert_same_embeddings(got: dict[str, dict], want: dict[str, dict]) -> None:
    assert set(got) == set(want)
    for cid, rec in got.items():
        assert rec["status"] == want[cid]["status"], cid
        if rec["status"] == STATUS_OK:
            np.testing.assert_allclose(rec["embedding"], want[cid]["embedding"], atol=1e-5, err_msg=cid)
        else:
            assert rec["embedding"] is None and rec["reason"] == want[cid]["reason"]


# --------------------------------------------------------------------------- bad inputs, one row each

@pytest.fixture(scope="module")
def mixed(tmp_path_factory, clips_by_duration, make_cfg):
    """Real clips plus every kind of bad file, extracted once in-process."""
    root = tmp_path_factory.mktemp("mixed")
    short = clips_by_duration[:16]
    female = next(c for c in short if c.gender == "female")
    male = next(c for c in short if c.gender == "male")
    base = clips_by_duration[len(clips_by_duration) // 2]  # the source of the derived files
    wave = load_audio(base.path)
    flac = base.path.read_bytes()

    def put(name: str, write) -> str:
        write(root / name)
        return name

    files = {
        "missing": "gone.flac",
        "zero_byte": put("zero.wav", lambda p: p.touch()),
        "truncated": put("truncated.flac", lambda p: p.write_bytes(flac[: len(flac) // 2])),
        "garbled": put("garbled.flac", lambda p: p.write_bytes(
            flac[:2000] + np.random.default_rng(0).bytes(len(flac) - 2000))),
        "non_audio": put("notes.wav", lambda p: p.write_text("this is a text file, not audio\n" * 40)),
        "nan": put("nan.wav", lambda p: sf.write(p, np.where(np.arange(len(wave)) == 5000, np.nan, wave),
                                                 SAMPLE_RATE_HZ, subtype="FLOAT")),
        "no_frames": put("no_frames.wav", lambda p: sf.write(p, np.zeros(0, np.float32), SAMPLE_RATE_HZ)),
        "silence": put("silence.wav", lambda p: sf.write(p, np.zeros(2 * SAMPLE_RATE_HZ, np.float32),
                                                         SAMPLE_RATE_HZ, subtype="PCM_16")),
        "short": put("short.wav", lambda p: sf.write(p, wave[SAMPLE_RATE_HZ:SAMPLE_RATE_HZ + 4800],
                                                     SAMPLE_RATE_HZ, subtype="PCM_16")),
        "too_long": put("long.flac", lambda p: sf.write(
            p, np.tile(wave, int(MAX_DURATION_S * SAMPLE_RATE_HZ / len(wave)) + 2), SAMPLE_RATE_HZ)),
        "stereo_48k": put("stereo48k.wav", lambda p: sf.write(
            p, np.repeat(soxr.resample(wave, SAMPLE_RATE_HZ, 48_000)[:, None], 2, axis=1), 48_000,
            subtype="PCM_16")),
        "rate_8k": put("rate8k.wav", lambda p: sf.write(
            p, soxr.resample(wave, SAMPLE_RATE_HZ, 8_000), 8_000, subtype="PCM_16")),
    }
    expected = {
        female.id: (STATUS_OK, None), male.id: (STATUS_OK, None),
        "missing": (STATUS_ERROR, "missing"), "zero_byte": (STATUS_ERROR, "empty_file"),
        "truncated": (STATUS_OK, None), "garbled": (STATUS_ERROR, "unreadable"),  # a cut file keeps what decodes
        "non_audio": (STATUS_ERROR, "unreadable"), "nan": (STATUS_ERROR, "non_finite"),
        "no_frames": (STATUS_ERROR, "empty_audio"), "silence": (STATUS_NO_SPEECH, NO_SPEECH_REASON),
        "short": (STATUS_ERROR, "too_short"), "too_long": (STATUS_ERROR, "too_long"),
        "stereo_48k": (STATUS_OK, None), "rate_8k": (STATUS_OK, None),
    }
    rows = [clip_row(female), clip_row(male)] + [
        {"path": rel, "speaker": f"spk-{cid}", "gender": "male" if i % 2 else "female", "id": cid}
        for i, (cid, rel) in enumerate(files.items())]
    manifest = write_manifest(rows, root / "manifest.csv")
    out_dir = root / "out"
    overrides = ("chunk_clips=5", f"max_duration_s={MAX_DURATION_S}")
    cfg = _cfg(make_cfg, manifest, out_dir, *overrides)
    summary = run_extract(cfg)
    path = embeddings_path(out_dir, ENC)
    return SimpleNamespace(root=root, manifest=manifest, out_dir=out_dir, path=path, cfg=cfg, overrides=overrides,
                           summary=summary, expected=expected, records=_by_id(_lines(path)),
                           source=base, female=female, male=male, wave=wave)


CASES = ["missing", "zero_byte", "truncated", "garbled", "non_audio", "nan", "no_frames", "silence", "short",
         "too_long", "stereo_48k", "rate_8k", "<female>", "<male>"]


@pytest.mark.parametrize("case", CASES)
def test_each_clip_gets_its_status_and_reason(mixed, case):
    cid = {"<female>": mixed.female.id, "<male>": mixed.male.id}.get(case, case)
    rec = mixed.records[cid]
    status, reason = mixed.expected[cid]
    assert (rec["status"], rec.get("reason")) == (status, reason), rec
    assert rec["encoder"] == ENC and rec["dim"] == DIM
    assert {"path", "speaker", "gender", "duration_s", "speech_s"} <= set(rec)
    if status == STATUS_OK:
        emb = np.asarray(rec["embedding"], dtype=np.float64)
        assert emb.shape == (DIM,) and np.isfinite(emb).all()
        assert abs(np.linalg.norm(emb) - 1.0) < 1e-3  # Resemblyzer's embeddings are L2-normalised
        assert 0 < rec["speech_s"] <= rec["duration_s"] + 1e-3
    else:
        assert rec["embedding"] is None and rec["speech_s"] == 0.0


def test_durations_of_the_derived_clips(mixed):
    r = mixed.records
    assert r["silence"]["duration_s"] == 2.0
    assert r["short"]["duration_s"] == 0.3
    source_s = len(mixed.wave) / SAMPLE_RATE_HZ
    for cid in ("stereo_48k", "rate_8k"):
        assert r[cid]["duration_s"] == pytest.approx(source_s, rel=0.01)
    assert r["missing"]["duration_s"] == 0.0


def test_summary_counts(mixed):
    s = mixed.summary
    want_status = Counter(status for status, _ in mixed.expected.values())
    want_reasons = Counter(reason for status, reason in mixed.expected.values() if status == STATUS_ERROR)
    assert (s.done, s.skipped) == (len(mixed.expected), 0)
    assert dict(s.statuses) == dict(want_status)
    assert dict(s.reasons) == dict(want_reasons) and s.reasons["unreadable"] == 2  # the cut FLAC is ok now
    assert s.audio_s == pytest.approx(sum(r["duration_s"] for r in mixed.records.values()))
    assert s.speech_s == pytest.approx(sum(r["speech_s"] for r in mixed.records.values()))
    assert f"done {len(mixed.expected)} (ok 5, no_speech 1, errors {want_status[STATUS_ERROR]})" in s.text()


def test_one_record_per_clip_and_the_sidecar(mixed):
    ids = [c.id for c in read_manifest(mixed.manifest)]
    assert [r["id"] for r in _lines(mixed.path)] == ids  # manifest order, each once
    meta = read_meta(mixed.out_dir, ENC)
    assert (meta["encoder"], meta["dim"], meta["data"]) == (ENC, DIM, "custom")
    assert meta["config_hash"] == config_hash(embedding_options(mixed.cfg))
    assert meta["weights"].startswith("resemblyzer/pretrained.pt sha256:")


def test_embeddings_are_the_encoder_on_the_vad_speech(mixed, segmenter, encoder):
    """What the pipeline stored is what VAD + encoder give for the same file, by hand."""
    ok = [cid for cid, (status, _) in mixed.expected.items() if status == STATUS_OK]
    paths = {mixed.female.id: mixed.female.path, mixed.male.id: mixed.male.path,
             "stereo_48k": mixed.root / "stereo48k.wav", "rate_8k": mixed.root / "rate8k.wav",
             "truncated": mixed.root / "truncated.flac"}  # what decodes of the cut FLAC
    speech = segmenter.speech_only([load_audio(paths[cid]) for cid in ok])
    vectors = encoder.embed(speech)
    for cid, s, v in zip(ok, speech, vectors):
        assert mixed.records[cid]["speech_s"] == pytest.approx(len(s) / SAMPLE_RATE_HZ, abs=1e-3)
        np.testing.assert_allclose(mixed.records[cid]["embedding"], v, atol=1e-5, err_msg=cid)


def test_resampled_copies_keep_the_speaker(mixed, segmenter, encoder):
    (orig,) = encoder.embed(segmenter.speech_only([mixed.wave]))
    cos = {cid: float(np.dot(orig, mixed.records[cid]["embedding"])) for cid in ("stereo_48k", "rate_8k")}
    other = float(np.dot(mixed.records[mixed.female.id]["embedding"], mixed.records[mixed.male.id]["embedding"]))
    assert cos["stereo_48k"] > 0.98 and cos["rate_8k"] > 0.85, cos
    assert min(cos.values()) > other, (cos, other)


def test_rerun_skips_everything_and_changes_nothing(mixed, make_cfg):
    before = mixed.path.read_bytes()
    summary = run_extract(_cfg(make_cfg, mixed.manifest, mixed.out_dir, *mixed.overrides))
    assert (summary.done, summary.skipped) == (0, len(mixed.expected))
    assert mixed.path.read_bytes() == before


def test_cli_run_matches_the_in_process_run(mixed, run_cli, tmp_path):
    """One real ``python -m src.extract``: same records, Hydra log in the run dir."""
    out_dir, log_dir = tmp_path / "out", tmp_path / "log"
    run_cli("src.extract", "data=manifest", f"data.manifest_path={mixed.manifest}", f"paths.embeddings_dir={out_dir}",
            "progress=false", "num_threads=1", *mixed.overrides, f"hydra.run.dir={log_dir}")
    _assert_same_embeddings(_by_id(_lines(embeddings_path(out_dir, ENC))), mixed.records)
    assert read_meta(out_dir, ENC)["config_hash"] == read_meta(mixed.out_dir, ENC)["config_hash"]
    log_text = (log_dir / "extract.log").read_text()
    assert f"done {len(mixed.expected)} (ok 5, no_speech 1," in log_text
    assert (log_dir / ".hydra" / "overrides.yaml").is_file()


def test_other_options_are_refused_until_overwrite(tiny_manifest, make_cfg, tmp_path):
    out_dir = tmp_path / "out"
    first = run_extract(_cfg(make_cfg, tiny_manifest, out_dir))
    assert first.statuses[STATUS_OK] == 3
    with pytest.raises(EmbeddingsError, match="other options"):
        run_extract(_cfg(make_cfg, tiny_manifest, out_dir, "vad.threshold=0.6"))
    again = run_extract(_cfg(make_cfg, tiny_manifest, out_dir, "vad.threshold=0.6", "overwrite=true"))
    assert (again.done, again.skipped) == (3, 0)
    assert json.loads(meta_path(embeddings_path(out_dir, ENC)).read_text())["options"]["vad"]["threshold"] == 0.6
    assert len(_lines(embeddings_path(out_dir, ENC))) == 3


# --------------------------------------------------------------------------- kill & resume, shards

@pytest.fixture(scope="module")
def medium(tmp_path_factory, clips_by_duration, manifest_of, make_cfg):
    """12 short real clips (about 2-3 s each), and one uninterrupted in-process run of them."""
    root = tmp_path_factory.mktemp("medium")
    clips = clips_by_duration[:24:2]
    assert len({c.speaker for c in clips}) > 6 and {c.gender for c in clips} == {"female", "male"}
    manifest = manifest_of(clips, root / "manifest.csv")
    ref_dir = root / "reference"
    summary = run_extract(_cfg(make_cfg, manifest, ref_dir))
    assert summary.statuses[STATUS_OK] == len(clips)
    return SimpleNamespace(root=root, clips=clips, manifest=manifest, ref_dir=ref_dir,
                           reference=_by_id(read_records(ref_dir, ENC)))


def test_killed_run_resumes_to_the_same_records(medium, make_cfg, tmp_path):
    out_dir = tmp_path / "killed"
    path = embeddings_path(out_dir, ENC)
    overrides = ("chunk_clips=2", "encoder.batch_size=2")
    total = len(medium.clips)
    cmd = [sys.executable, "-m", "src.extract", "data=manifest", f"data.manifest_path={medium.manifest}",
           f"paths.embeddings_dir={out_dir}", "progress=false", "num_threads=1", *overrides,
           f"hydra.run.dir={tmp_path / 'log'}"]
    with open(tmp_path / "stderr.txt", "w") as err:
        proc = subprocess.Popen(cmd, cwd=REPO_DIR, stdout=subprocess.DEVNULL, stderr=err,
                                env={**os.environ, "PYTHONWARNINGS": "ignore"})
        deadline = time.monotonic() + 180
        try:
            while time.monotonic() < deadline and proc.poll() is None:
                if path.exists() and path.read_bytes().count(b"\n") >= 2:
                    break
                time.sleep(0.01)
            still_running = proc.poll() is None
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.kill()
            proc.wait(30)
    assert still_running, f"the run ended before it could be killed:\n{(tmp_path / 'stderr.txt').read_text()[-3000:]}"
    assert proc.returncode == -signal.SIGKILL
    written = path.read_bytes().count(b"\n")
    assert 2 <= written < total, written

    # a torn write: half of the record of a clip the killed run never reached
    done = {r["id"] for r in iter_lines(path, strict=False)}
    next_id = next(c.id for c in medium.clips if c.id not in done)
    torn = json.dumps(medium.reference[next_id], separators=(",", ":"))
    with open(path, "a") as f:
        f.write(torn[: len(torn) // 2])

    summary = run_extract(_cfg(make_cfg, medium.manifest, out_dir, *overrides))
    assert (summary.skipped, summary.done) == (written, total - written)
    records = _lines(path)  # strict: no torn line is left
    assert len(records) == total
    _assert_same_embeddings(_by_id(records), medium.reference)
    assert read_meta(out_dir, ENC)["config_hash"] == read_meta(medium.ref_dir, ENC)["config_hash"]


def test_two_shards_add_up_to_a_single_run(medium, manifest_of, make_cfg, tmp_path):
    clips = medium.clips[:8]
    manifest = manifest_of(clips, tmp_path / "manifest.csv")
    out_dir = tmp_path / "out"
    summaries = [run_extract(_cfg(make_cfg, manifest, out_dir, "num_shards=2", f"shard={i}")) for i in (0, 1)]
    assert [s.done for s in summaries] == [4, 4]
    parts = shard_paths(out_dir, ENC)
    assert parts == [embeddings_path(out_dir, ENC, i, 2) for i in (0, 1)]
    assert [r["id"] for r in _lines(parts[0])] == [c.id for c in clips[0::2]]
    assert [r["id"] for r in _lines(parts[1])] == [c.id for c in clips[1::2]]
    want = {c.id: medium.reference[c.id] for c in clips}
    _assert_same_embeddings(_by_id(read_records(out_dir, ENC)), want)

    assert run_extract(_cfg(make_cfg, manifest, out_dir, "merge=true")) is None
    main = embeddings_path(out_dir, ENC)
    assert shard_paths(out_dir, ENC) == [] and main.exists()
    merged = _lines(main)
    assert sorted(r["id"] for r in merged) == sorted(want)
    _assert_same_embeddings(_by_id(merged), want)
    assert read_meta(out_dir, ENC)["config_hash"] == read_meta(medium.ref_dir, ENC)["config_hash"]
    rerun = run_extract(_cfg(make_cfg, manifest, out_dir))  # a plain run now finds everything done
    assert (rerun.done, rerun.skipped) == (0, 8)


@pytest.mark.slow  # three Python processes importing torch + librosa: ~20-30 s on 2 shared cores
def test_joblib_multirun_writes_both_shards(medium, manifest_of, run_cli, tmp_path):
    """The real ``-m hydra/launcher=joblib`` sweep over two shards, as the README shows it."""
    clips = medium.clips[:2]
    manifest = manifest_of(clips, tmp_path / "manifest.csv")
    out_dir, sweep_dir = tmp_path / "out", tmp_path / "sweep"
    run_cli("src.extract", "-m", "hydra/launcher=joblib", "num_shards=2", "shard=range(0,2)",
            f"paths.embeddings_dir={out_dir}", "data=manifest", f"data.manifest_path={manifest}",
            "progress=false", "num_threads=1", f"hydra.sweep.dir={sweep_dir}")
    parts = [embeddings_path(out_dir, ENC, i, 2) for i in (0, 1)]
    assert shard_paths(out_dir, ENC) == parts
    for i, part in enumerate(parts):
        assert [r["id"] for r in _lines(part)] == [clips[i].id]
        assert meta_path(part).exists()
        assert (sweep_dir / f"shard-{i}" / "extract.log").is_file()
    _assert_same_embeddings(_by_id(read_records(out_dir, ENC)), {c.id: medium.reference[c.id] for c in clips})
