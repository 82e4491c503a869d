"""The one write-then-rename helper: a file appears whole or not at all (fast, no audio)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from src.data.files import PART_SUFFIX, atomic_write, write_json_atomic


def test_a_finished_write_replaces_the_file_and_leaves_no_part(tmp_path):
    path = tmp_path / "metrics.json"
    path.write_text("old")
    with atomic_write(path) as f:
        f.write("new, ")
        parts = list(tmp_path.glob("*" + PART_SUFFIX))
        assert len(parts) == 1 and path.read_text() == "old", "the text goes to a part file first"
        f.write("whole")
    assert path.read_text() == "new, whole" and not list(tmp_path.glob("*" + PART_SUFFIX))


def test_a_failed_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "out.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(RuntimeError), atomic_write(path, newline="") as f:
        f.write("half a fi")
        raise RuntimeError("killed")
    assert path.read_text() == "a,b\n1,2\n" and sorted(tmp_path.iterdir()) == [path]


def test_binary_and_json(tmp_path):
    with atomic_write(tmp_path / "x.npz", "wb") as f:
        np.savez(f, x=np.arange(3))
    assert np.load(tmp_path / "x.npz")["x"].tolist() == [0, 1, 2]
    write_json_atomic(tmp_path / "m.json", {"acc": np.float32(0.5), "n": 3})
    assert json.loads((tmp_path / "m.json").read_text()) == {"acc": 0.5, "n": 3}
    with pytest.raises(ValueError, match="mode"):
        with atomic_write(tmp_path / "y", "a"):
            pass
