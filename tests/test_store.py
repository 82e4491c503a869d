"""The JSONL store: resume, torn-tail repair, sidecar check, shards, merge, corrupt lines."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from src.embeddings.shards import done_path, is_done, mark_done, merge_shards
from src.embeddings.store import (
    EmbeddingsError,
    JsonlWriter,
    config_hash,
    embeddings_path,
    iter_lines,
    meta_path,
    read_meta,
    read_records,
    remove_outputs,
    repair_truncated_tail,
    shard_paths,
    stats_path,
    written_ids,
)

ENC = "resemblyzer"
OPTIONS = {"encoder": ENC, "vad": {"threshold": 0.5}, "min_clip_s": 0.5}


def _meta(options=OPTIONS) -> dict:
    return {"encoder": ENC, "dim": 4, "config_hash": config_hash(options), "options": options}


def _rec(i: int, dim: int = 4, pad: int = 0) -> dict:
    rng = np.random.default_rng(i)
    rec = {"id": f"clip-{i:03d}", "status": "ok", "embedding": [round(float(x), 6) for x in rng.normal(size=dim)]}
    if pad:
        rec["note"] = "x" * pad
    return rec


def _line(rec: dict) -> str:
    return json.dumps(rec, separators=(",", ":")) + "\n"


def _write(path: Path, recs: list[dict], meta: dict | None = None) -> Path:
    with JsonlWriter(path, meta or _meta()) as w:
        for r in recs:
            w.write(r)
    return path


def _ids(path: Path) -> list[str]:
    return [r["id"] for r in iter_lines(path)]


def test_paths():
    assert embeddings_path("d", ENC) == Path("d/resemblyzer-embeddings.jsonl")
    assert embeddings_path("d", ENC, 1, 3) == Path("d/resemblyzer-embeddings.shard-1-of-3.jsonl")
    assert embeddings_path("d", ENC, 0, 1) == embeddings_path("d", ENC)
    assert meta_path(embeddings_path("d", ENC)) == Path("d/resemblyzer-embeddings.meta.json")


def test_config_hash_is_stable_and_sensitive():
    assert config_hash({"a": 1, "b": {"c": 2}}) == config_hash({"b": {"c": 2}, "a": 1})
    assert config_hash({"a": 1, "b": {"c": 2}}) != config_hash({"a": 1, "b": {"c": 3}})
    assert config_hash({"x": float("inf")}) == config_hash({"x": float("inf")})


def test_writer_creates_folder_sidecar_and_one_line_per_record(tmp_path):
    path = _write(tmp_path / "new" / f"{ENC}-embeddings.jsonl", [_rec(0), _rec(1)])
    assert path.read_text().count("\n") == 2
    assert json.loads(meta_path(path).read_text()) == _meta()
    assert read_meta(path.parent, ENC) == _meta()
    assert list(iter_lines(path)) == [_rec(0), _rec(1)]


def test_resume_loads_written_ids_and_appends(tmp_path):
    path = _write(tmp_path / "e.jsonl", [_rec(i) for i in range(3)])
    with JsonlWriter(path, _meta()) as w:
        assert w.done_ids == {"clip-000", "clip-001", "clip-002"}
        w.write(_rec(3))
        assert "clip-003" in w.done_ids
    assert _ids(path) == [f"clip-{i:03d}" for i in range(4)]


def test_torn_last_line_is_cut_on_open_and_the_run_completes(tmp_path):
    path = _write(tmp_path / "e.jsonl", [_rec(i) for i in range(3)])
    torn = _line(_rec(3))
    with open(path, "a") as f:
        f.write(torn[: len(torn) // 2])  # a writer killed mid-line
    with pytest.raises(EmbeddingsError, match=rf"{path}:4:"):
        list(iter_lines(path))
    with JsonlWriter(path, _meta()) as w:
        assert w.done_ids == {"clip-000", "clip-001", "clip-002"}
        for i in range(5):  # the run: write whatever is not done yet
            if _rec(i)["id"] not in w.done_ids:
                w.write(_rec(i))
    assert _ids(path) == [f"clip-{i:03d}" for i in range(5)]
    assert list(iter_lines(path))[3] == _rec(3)


def test_repair_walks_back_over_long_lines(tmp_path):
    """Lines longer than the 64 KiB read-back step are cut at the right newline."""
    path = tmp_path / "e.jsonl"
    whole = _line(_rec(0, pad=150_000))
    torn = _line(_rec(1, pad=200_000))[:170_000]
    path.write_text(_line(_rec(5)) + whole + torn)
    assert repair_truncated_tail(path) == len(torn)
    assert path.read_text() == _line(_rec(5)) + whole
    assert repair_truncated_tail(path) == 0  # idempotent


def test_repair_of_a_single_torn_line_empties_the_file(tmp_path):
    path = tmp_path / "e.jsonl"
    path.write_text('{"id":"clip-000","embe')
    assert repair_truncated_tail(path) == len('{"id":"clip-000","embe')
    assert path.read_bytes() == b""
    assert repair_truncated_tail(tmp_path / "absent.jsonl") == 0


def test_other_config_hash_is_refused(tmp_path):
    path = _write(tmp_path / "e.jsonl", [_rec(0)])
    other = _meta({**OPTIONS, "min_clip_s": 1.0})
    with pytest.raises(EmbeddingsError, match="other options") as info:
        JsonlWriter(path, other).open()
    assert str(path) in str(info.value)
    assert _ids(path) == ["clip-000"]  # nothing was touched
    with JsonlWriter(path, _meta()) as w:  # the same options resume fine
        assert w.done_ids == {"clip-000"}


def test_corrupt_middle_line_names_file_and_line(tmp_path, caplog):
    path = tmp_path / "e.jsonl"
    path.write_text(_line(_rec(0)) + '{"id": "clip-001", "embedding": [0.1, 0.2\n' + _line(_rec(2)))
    with pytest.raises(EmbeddingsError, match=rf"{path}:2: corrupt record"):
        list(iter_lines(path))
    assert [r["id"] for r in iter_lines(path, strict=False)] == ["clip-000", "clip-002"]
    assert f"{path}:2" in caplog.text


def test_record_without_id_is_corrupt(tmp_path):
    path = tmp_path / "e.jsonl"
    path.write_text(_line(_rec(0)) + "\n" + '["not", "a", "record"]\n' + '{"no_id": 1}\n')
    with pytest.raises(EmbeddingsError, match=rf"{path}:3:"):
        list(iter_lines(path))
    assert [r["id"] for r in iter_lines(path, strict=False)] == ["clip-000"]


def test_read_records_strict_on_a_corrupt_main_file(tmp_path):
    main = embeddings_path(tmp_path, ENC)
    main.write_text(_line(_rec(0)) + "garbage\n" + _line(_rec(1)))
    with pytest.raises(EmbeddingsError, match=rf"{main}:2:"):
        read_records(tmp_path, ENC)
    assert [r["id"] for r in read_records(tmp_path, ENC, strict=False)] == ["clip-000", "clip-001"]


def test_read_records_joins_main_and_shards_first_occurrence_wins(tmp_path):
    _write(embeddings_path(tmp_path, ENC), [_rec(0), _rec(1)])
    _write(embeddings_path(tmp_path, ENC, 0, 2), [_rec(2), {**_rec(1), "status": "shadowed"}])
    _write(embeddings_path(tmp_path, ENC, 1, 2), [_rec(3)])
    _write(embeddings_path(tmp_path, "ecapa"), [_rec(9)])  # another encoder's file is not joined
    recs = read_records(tmp_path, ENC)
    assert [r["id"] for r in recs] == ["clip-000", "clip-001", "clip-002", "clip-003"]
    assert recs[1] == _rec(1)


def test_read_records_refuses_files_made_with_different_options(tmp_path):
    _write(embeddings_path(tmp_path, ENC), [_rec(0)])
    _write(embeddings_path(tmp_path, ENC, 1, 2), [_rec(1)], _meta({**OPTIONS, "min_clip_s": 2.0}))
    with pytest.raises(EmbeddingsError, match=r"made with different options \(config hashes .*shard-1-of-2"):
        read_records(tmp_path, ENC)


def test_read_records_without_files(tmp_path):
    with pytest.raises(EmbeddingsError, match="no embeddings for encoder 'resemblyzer'"):
        read_records(tmp_path, ENC)


def _done(path: Path, ids: list[int] | None = None, options=OPTIONS) -> Path:
    """Mark a shard file done, as a shard that finished does."""
    n, i = int(path.name.split("-of-")[1].split(".")[0]), int(path.name.split("shard-")[1].split("-")[0])
    mark_done(path, config_hash(options), [f"clip-{k:03d}" for k in (ids or [])], i, n)
    return path


def test_merge_shards(tmp_path):
    _done(_write(embeddings_path(tmp_path, ENC, 0, 2), [_rec(0), _rec(2)]))
    s1 = _write(embeddings_path(tmp_path, ENC, 1, 2), [_rec(1), _rec(3)])
    with open(s1, "a") as f:
        f.write(_line(_rec(5))[:20])  # a torn last line (the shard was killed once, then finished)
    _done(s1)
    before = {r["id"]: r for r in read_records(tmp_path, ENC, strict=False)}
    main = merge_shards(tmp_path, ENC)
    assert main == embeddings_path(tmp_path, ENC)
    assert shard_paths(tmp_path, ENC) == [] and sorted(p.name for p in tmp_path.iterdir()) == [
        f"{ENC}-embeddings.jsonl", f"{ENC}-embeddings.meta.json",
        f"{ENC}-embeddings.shard-0-of-2.done.json", f"{ENC}-embeddings.shard-1-of-2.done.json"]
    assert json.loads(meta_path(main).read_text())["config_hash"] == _meta()["config_hash"]
    after = read_records(tmp_path, ENC)
    assert {r["id"]: r for r in after} == before and len(before) == 4
    assert merge_shards(tmp_path, ENC) == main and read_records(tmp_path, ENC) == after  # nothing left to do


def test_merge_into_an_existing_main_file_skips_its_ids(tmp_path):
    _write(embeddings_path(tmp_path, ENC), [_rec(0)])
    _done(_write(embeddings_path(tmp_path, ENC, 0, 2), [{**_rec(0), "status": "dup"}, _rec(1)]))
    _done(_write(embeddings_path(tmp_path, ENC, 1, 2), [_rec(2)]))
    merge_shards(tmp_path, ENC)
    assert list(iter_lines(embeddings_path(tmp_path, ENC))) == [_rec(0), _rec(1), _rec(2)]


def test_merge_refuses_shards_made_with_different_options(tmp_path):
    _done(_write(embeddings_path(tmp_path, ENC, 0, 2), [_rec(0)]))
    other = {**OPTIONS, "min_clip_s": 2.0}
    _done(_write(embeddings_path(tmp_path, ENC, 1, 2), [_rec(1)], _meta(other)), options=other)
    with pytest.raises(EmbeddingsError, match="different options"):
        merge_shards(tmp_path, ENC)
    assert len(shard_paths(tmp_path, ENC)) == 2  # nothing deleted


def test_remove_outputs_only_touches_one_encoder(tmp_path):
    _write(embeddings_path(tmp_path, ENC), [_rec(0)])
    _write(embeddings_path(tmp_path, ENC, 1, 2), [_rec(1)])
    other = _write(embeddings_path(tmp_path, "ecapa"), [_rec(2)])
    remove_outputs(tmp_path, ENC)
    assert sorted(tmp_path.iterdir()) == sorted([other, meta_path(other)])


def test_a_corrupt_middle_line_does_not_count_as_done(tmp_path, caplog):
    """Resuming skips the clips written, not the one whose line is unreadable (it is redone)."""
    path = tmp_path / "e.jsonl"
    path.write_text(_line(_rec(0)) + _line(_rec(1))[:30] + "\n" + _line(_rec(2)))
    with JsonlWriter(path, _meta()) as w:
        assert w.done_ids == {"clip-000", "clip-002"}
    assert f"{path}:2" in caplog.text
    with pytest.raises(EmbeddingsError, match="delete that line"):
        list(iter_lines(path))


# --------------------------------------------------------------------------- merging on a cluster

def test_merge_refuses_while_a_shard_is_still_writing_and_force_keeps_its_file(tmp_path):
    """A requeued shard is still appending when someone merges: refused; with force, the
    finished shard is merged, the running one's file stays and its later records survive."""
    _done(_write(embeddings_path(tmp_path, ENC, 0, 2), [_rec(0), _rec(2)]))
    running = embeddings_path(tmp_path, ENC, 1, 2)
    with JsonlWriter(running, _meta()) as w:
        w.write(_rec(1))
        with pytest.raises(EmbeddingsError, match=r"shard\(s\) \[1\] of 2 .* have not finished"):
            merge_shards(tmp_path, ENC)
        assert len(shard_paths(tmp_path, ENC)) == 2 and not embeddings_path(tmp_path, ENC).exists()
        merge_shards(tmp_path, ENC, force=True)
        assert shard_paths(tmp_path, ENC) == [running]  # the finished shard's file went, the running one's stayed
        w.write(_rec(3))  # the shard goes on writing after the forced merge
    _done(running)
    merge_shards(tmp_path, ENC)
    assert sorted(_ids(embeddings_path(tmp_path, ENC))) == [f"clip-{i:03d}" for i in range(4)]
    assert shard_paths(tmp_path, ENC) == []


def test_merge_with_three_of_four_shards_missing_is_refused(tmp_path):
    _done(_write(embeddings_path(tmp_path, ENC, 2, 4), [_rec(2)]))
    with pytest.raises(EmbeddingsError, match=r"shard\(s\) \[0, 1, 3\] of 4"):
        merge_shards(tmp_path, ENC)
    assert not embeddings_path(tmp_path, ENC).exists()
    assert merge_shards(tmp_path, ENC, force=True).exists()
    assert _ids(embeddings_path(tmp_path, ENC)) == ["clip-002"]


def test_merge_of_two_sweeps_needs_num_shards(tmp_path):
    _done(_write(embeddings_path(tmp_path, ENC, 0, 2), [_rec(0)]))
    _done(_write(embeddings_path(tmp_path, ENC, 1, 2), [_rec(1)]))
    _done(_write(embeddings_path(tmp_path, ENC, 0, 3), [_rec(5)]))
    with pytest.raises(EmbeddingsError, match=r"sweeps of \[2, 3\] shards"):
        merge_shards(tmp_path, ENC)
    merge_shards(tmp_path, ENC, num_shards=2)
    assert _ids(embeddings_path(tmp_path, ENC)) == ["clip-000", "clip-001"]
    assert shard_paths(tmp_path, ENC) == [embeddings_path(tmp_path, ENC, 0, 3)]


def test_merge_adds_up_the_shards_stats(tmp_path):
    for i in range(2):
        part = _done(_write(embeddings_path(tmp_path, ENC, i, 2), [_rec(i)]))
        stats_path(tmp_path, ENC, i, 2).write_text(json.dumps(
            {"done": 1, "skipped": 0, "statuses": {"ok": 1}, "reasons": {}, "audio_s": 2.0 + i, "speech_s": 1.0,
             "wall_s": 0.5}))
        assert stats_path(tmp_path, ENC, i, 2) == part.with_suffix(".extract.json")
    merge_shards(tmp_path, ENC)
    total = json.loads(stats_path(tmp_path, ENC).read_text())
    assert (total["done"], total["statuses"], total["audio_s"], total["wall_s"], total["shards"]) == (
        2, {"ok": 2}, 5.0, 1.0, 2)
    assert not stats_path(tmp_path, ENC, 0, 2).exists()


def test_done_marker_names_the_options_and_the_ids(tmp_path):
    path = _write(embeddings_path(tmp_path, ENC, 0, 2), [_rec(0)])
    digest = config_hash(OPTIONS)
    assert not is_done(path, digest, ["clip-000"])
    _done(path, [0, 1])
    assert json.loads(done_path(path).read_text())["clips"] == 2
    assert is_done(path, digest, ["clip-001", "clip-000"])  # order does not matter
    assert not is_done(path, digest, ["clip-000"])  # other clips
    assert not is_done(path, config_hash({**OPTIONS, "min_clip_s": 1.0}), ["clip-000", "clip-001"])


def test_written_ids_checks_the_sidecar(tmp_path):
    path = _write(embeddings_path(tmp_path, ENC), [_rec(0), _rec(1)])
    assert written_ids(path, config_hash(OPTIONS)) == {"clip-000", "clip-001"}
    assert written_ids(tmp_path / "absent.jsonl", "x") == set()
    with pytest.raises(EmbeddingsError, match="other options"):
        written_ids(path, config_hash({**OPTIONS, "min_clip_s": 1.0}))
