"""Files that appear whole or not at all: the one write-then-rename helper every stage uses.

A reader (another process, a resumed run, a user's ``tail``) never sees half a JSON, checkpoint,
column cache or output file: the bytes go to a temporary file beside the target, which replaces
the target only when the writer finishes without an error. A killed or failed writer leaves the
old file (if any) untouched and removes its temporary file.
"""

from __future__ import annotations

import json
import logging
import os
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

log = logging.getLogger(__name__)

#: Temporary files end in this suffix (and start with a dot, so globs for outputs skip them).
PART_SUFFIX = ".part"
NAME_MAX_BYTES = 255  # the longest file name ext4, XFS, APFS and NTFS allow
_PART_NAME = re.compile(r"^\.(?P<name>.*)\.(?P<pid>\d+)-[0-9a-f]{8}" + re.escape(PART_SUFFIX) + "$", re.S)


def part_path(path: str | Path) -> Path:
    """A fresh temporary name beside ``path`` (same folder, so the final rename is atomic):
    ``.<name>.<pid>-<random>.part``, the name shortened where the whole would pass
    :data:`NAME_MAX_BYTES`, so any name that may be written may be written through a part file."""
    path = Path(path)
    tail = f".{os.getpid()}-{uuid.uuid4().hex[:8]}{PART_SUFFIX}"
    room = NAME_MAX_BYTES - 1 - len(tail)
    name = path.name.encode()[:room].decode(errors="ignore")  # whole UTF-8 characters only
    return path.with_name(f".{name}{tail}")


def remove_orphaned_parts(folder: str | Path, name: str | None = None) -> list[Path]:
    """Delete the part files in ``folder`` (only those of ``name``, if given) whose writer process has
    ended: what a killed writer left. A part file of a running process (another writer) is kept.
    Returns the files removed."""
    folder = Path(folder)
    removed = []
    if not folder.is_dir():
        return removed
    for p in folder.glob("." + "*" + PART_SUFFIX):
        m = _PART_NAME.match(p.name)
        if not m or (name is not None and m["name"] != name and not (  # or the name shortened
                len(p.name.encode()) > NAME_MAX_BYTES - 4 and name.startswith(m["name"]))):
            continue
        if _running(int(m["pid"])):
            continue
        p.unlink(missing_ok=True)
        removed.append(p)
    if removed:
        log.info("removed %d part file(s) a stopped run left in %s/", len(removed), folder)
    return removed


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # someone else's process (or a pid we cannot check): not ours to judge
    return True


@contextmanager
def atomic_write(path: str | Path, mode: str = "w", encoding: str = "utf-8",
                 newline: str | None = None) -> Iterator[IO[Any]]:
    """Open ``path`` for writing (``mode`` ``"w"`` or ``"wb"``) so that it appears whole or not at all.

    >>> with atomic_write(out_dir / "metrics.json") as f:
    ...     json.dump(metrics, f)
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write mode is 'w' or 'wb', not {mode!r}")
    path = Path(path)
    tmp = part_path(path)
    text = {} if "b" in mode else {"encoding": encoding, "newline": newline}
    try:
        with open(tmp, mode, **text) as f:
            yield f
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_json_atomic(path: str | Path, obj: Any, indent: int | None = 2) -> None:
    """Write ``obj`` as JSON (numpy scalars as floats) through :func:`atomic_write`."""
    with atomic_write(path) as f:
        json.dump(obj, f, indent=indent, default=float)
