"""The one write-then-rename helper: a file appears whole or not at all (fast, no audio)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from src.data.files import PART_SUFFIX, atomic_write, part_path, remove_orphaned_parts, write_json_atomic


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


def test_a_long_name_is_not_refused_because_of_the_part_suffix(tmp_path):
    """The probe's 246-character output name: the part file's name was over 255 bytes."""
    for name in ("x" * 246 + ".csv", "é" * 125 + ".csv"):  # 250 and 254 bytes
        path = tmp_path / name
        with atomic_write(path) as f:
            f.write("whole")
            part = Path(f.name)
            assert len(part.name.encode()) <= 255 and part.name.endswith(PART_SUFFIX)
        assert path.read_text() == "whole" and not list(tmp_path.glob("*" + PART_SUFFIX))


def test_part_files_a_killed_writer_left_are_removed_and_a_live_ones_kept(tmp_path):
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)  # a process that has ended (its pid not reused this instant)
    orphan = tmp_path / f".out.csv.{dead_pid}-0123abcd{PART_SUFFIX}"
    tail = f".{dead_pid}-0123abcd{PART_SUFFIX}"
    long_orphan = tmp_path / f".{'y' * (254 - len(tail))}{tail}"  # a shortened name, 255 bytes as part_path makes it
    live = part_path(tmp_path / "out.csv")  # this process: running
    other = tmp_path / f".other.csv.{dead_pid}-0123abcd{PART_SUFFIX}"
    for p in (orphan, long_orphan, live, other):
        p.write_text("half")
    assert remove_orphaned_parts(tmp_path, "out.csv") == [orphan]
    assert remove_orphaned_parts(tmp_path, "y" * 250 + ".csv") == [long_orphan]
    assert remove_orphaned_parts(tmp_path) == [other] and live.exists()
