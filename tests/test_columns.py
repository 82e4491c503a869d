"""The columnar cache of an encoder's embeddings: the same set as parsing the JSONL, rebuilt
whenever the JSONL changes, never trusted when stale."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

import src.embeddings.dataset as dataset
from src.data.files import PART_SUFFIX
from src.embeddings.dataset import DatasetError, load_embedding_set, records_to_set
from src.embeddings.store import EmbeddingsError, JsonlWriter, columns_path, config_hash, embeddings_path

ENC = "resemblyzer"
OPTIONS = {"encoder": ENC, "vad": {"threshold": 0.5}}


def _rec(i: int, gender: str | None = None, status: str = "ok", dim: int = 8) -> dict:
    rng = np.random.default_rng(i)
    rec = {"id": f"c{i:04d}", "path": f"/audio/{i}.flac", "speaker": f"s{i % 7}",
           "gender": gender or ("female" if i % 2 else "male"), "status": status, "speech_s": 1.5 + i,
           "embedding": [round(float(x), 6) for x in rng.normal(size=dim)] if status == "ok" else None}
    if i % 3 == 0:
        rec["age"] = 20 + i
        rec["groups"] = {"corpus": "vctk", "age_group": "adult"}
    if i % 4 == 0:
        rec["split"] = "train"
    return rec


def _write(path, recs, options=OPTIONS):
    with JsonlWriter(path, {"encoder": ENC, "dim": 8, "config_hash": config_hash(options), "options": options}) as w:
        for r in recs:
            w.write(r)


def _assert_same(a, b):
    for f in ("x", "y", "ids", "paths", "speakers", "speech_s", "split"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f), err_msg=f)
    np.testing.assert_array_equal(np.isnan(a.age), np.isnan(b.age))
    np.testing.assert_array_equal(a.age[~np.isnan(a.age)], b.age[~np.isnan(b.age)])
    assert a.groups.keys() == b.groups.keys()
    for g in a.groups:
        np.testing.assert_array_equal(a.groups[g], b.groups[g])
    assert a.x.dtype == np.float32


@pytest.fixture
def store(tmp_path):
    recs = [_rec(i) for i in range(40)] + [_rec(40, status="no_speech")]
    _write(embeddings_path(tmp_path, ENC), recs[:30])
    _write(embeddings_path(tmp_path, ENC, 1, 2), recs[25:])  # overlaps the main file: first occurrence wins
    return tmp_path, recs


def _no_parsing(monkeypatch):
    def boom(*a, **k):
        raise AssertionError("the JSONL was parsed")
    monkeypatch.setattr(dataset, "iter_records", boom)


def test_cached_set_equals_the_parsed_one_and_is_used(store, monkeypatch):
    d, recs = store
    parsed = records_to_set(recs, source="x")
    first = load_embedding_set(d, ENC)
    assert columns_path(d, ENC).exists()
    _assert_same(first, parsed)
    _no_parsing(monkeypatch)
    _assert_same(load_embedding_set(d, ENC), parsed)


def test_any_change_to_the_jsonl_rebuilds(store, monkeypatch):
    d, recs = store
    load_embedding_set(d, ENC)
    _write(embeddings_path(d, ENC), [_rec(50)])  # appended: size and mtime change
    again = load_embedding_set(d, ENC)
    assert "c0050" in set(again.ids) and len(again) == 41
    same_size = embeddings_path(d, ENC)
    text = same_size.read_text().replace('"speaker":"s0"', '"speaker":"s9"', 1)
    same_size.write_text(text)
    os.utime(same_size, ns=(1, 1))  # same size, other mtime
    assert "s9" in set(load_embedding_set(d, ENC).speakers)


def test_other_options_in_the_sidecar_rebuild_or_refuse(store):
    d, _ = store
    load_embedding_set(d, ENC)
    side = embeddings_path(d, ENC).with_suffix(".meta.json")
    meta = json.loads(side.read_text())
    meta["config_hash"] = "0" * 16
    side.write_text(json.dumps(meta))
    with pytest.raises(EmbeddingsError, match="different options"):  # main and shard now disagree
        load_embedding_set(d, ENC)


def test_checks_hold_on_the_cached_path(tmp_path, monkeypatch):
    _write(embeddings_path(tmp_path, ENC), [_rec(i, gender="female") for i in range(4)])
    with pytest.raises(DatasetError, match="only one class"):
        load_embedding_set(tmp_path, ENC)
    assert len(load_embedding_set(tmp_path, ENC, both_classes=False)) == 4  # now from the cache
    _no_parsing(monkeypatch)
    with pytest.raises(DatasetError, match="only one class"):
        load_embedding_set(tmp_path, ENC)


def test_a_corrupt_line_is_an_error_and_nothing_is_cached(tmp_path):
    path = embeddings_path(tmp_path, ENC)
    _write(path, [_rec(0), _rec(1)])
    with open(path, "a") as f:
        f.write('{"id": "c0002", "embedding": [0.1,\n')
    with pytest.raises(EmbeddingsError, match="corrupt record"):
        load_embedding_set(tmp_path, ENC)
    assert not columns_path(tmp_path, ENC).exists()


def test_mixed_dimensions_are_refused_by_the_streaming_reader():
    with pytest.raises(DatasetError, match=r"mixed dimension \{8: 3, 4: 1\} \(e.g. \['c0003'\]\)"):
        records_to_set([_rec(0), _rec(1), _rec(2), _rec(3, dim=4)])


def test_an_unwritable_folder_loads_uncached(store, monkeypatch):
    d, recs = store

    def no_write(*a, **k):
        raise PermissionError("read-only file system")

    monkeypatch.setattr(dataset.np, "savez", no_write)
    _assert_same(load_embedding_set(d, ENC), records_to_set(recs))
    assert not columns_path(d, ENC).exists() and not list(d.glob("*" + PART_SUFFIX))


def test_real_embeddings_load_the_same_from_the_cache(tmp_path_factory, monkeypatch):
    """The sample's real Resemblyzer embeddings (extracted with the real VAD): parsed and cached agree."""
    import shutil

    from test_train import sample_embeddings

    d = tmp_path_factory.mktemp("columns-real")
    for p in sample_embeddings(tmp_path_factory).glob(f"{ENC}-embeddings*.json*"):
        shutil.copy2(p, d / p.name)
    from src.embeddings.store import read_records
    parsed = records_to_set(read_records(d, ENC))
    assert len(parsed) > 50 and parsed.dim == 256 and set(parsed.groups) >= {"corpus"}
    _assert_same(load_embedding_set(d, ENC), parsed)
    _no_parsing(monkeypatch)
    _assert_same(load_embedding_set(d, ENC), parsed)
