"""Files that appear whole or not at all: the one write-then-rename helper every stage uses.

A reader (another process, a resumed run, a user's ``tail``) never sees half a JSON, checkpoint,
column cache or output file: the bytes go to a temporary file beside the target, which replaces
the target only when the writer finishes without an error. A killed or failed writer leaves the
old file (if any) untouched and removes its temporary file.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

#: Temporary files end in this suffix (and start with a dot, so globs for outputs skip them).
PART_SUFFIX = ".part"


def part_path(path: str | Path) -> Path:
    """A fresh temporary name beside ``path`` (same folder, so the final rename is atomic)."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}{PART_SUFFIX}")


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
