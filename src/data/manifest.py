"""Manifests: the CSV contract every data source is turned into.

Contract: ``path,speaker,gender[,id][,age][,split][,group columns...]``.

* ``path`` is relative to the manifest's folder (absolute paths are kept).
* ``gender`` is normalised to ``female``/``male``; the values that mean "neither
  or not said" (``other``, empty, ...) are dropped and counted in the log; any
  other spelling is an error naming the row.
* ``id`` defaults to ``path``; ids must be unique.
* ``age`` is in years (empty when unknown); ``split`` is ``train``/``val``/``test``.
* Any other column can be used as a group column for per-group metrics.
"""

from __future__ import annotations

import csv
import io
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from src.data.files import atomic_write
from src.labels import SPLITS, normalise_gender

log = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("path", "speaker", "gender")
MAX_AGE_YEARS = 120.0  # an age over this (or under 0, or not finite) is a typo, not a speaker
DROPPED_GENDERS = {"", "other", "non-binary", "nonbinary", "intersex", "transgender",
                   "do_not_wish_to_say", "unknown", "n/a", "na", "none"}


class ManifestError(ValueError):
    """A manifest that cannot be used; the message names the file and the row."""


class ManifestNotFound(ManifestError, FileNotFoundError):
    """The manifest file does not exist (a usage error: the path is wrong)."""


@dataclass(frozen=True)
class Clip:
    """One row of a manifest, resolved."""

    id: str
    path: Path
    speaker: str
    gender: str
    age: float | None = None
    split: str | None = None
    groups: dict[str, str] = field(default_factory=dict, compare=False, hash=False)


def _parse_age(raw: str, where: str) -> float | None:
    """Age in years from a CSV cell, ``None`` when empty."""
    raw = (raw or "").strip()
    if not raw:
        return None
    try:
        age = float(raw)
    except ValueError:
        raise ManifestError(f"{where}: age {raw!r} is not a number of years") from None
    if not (math.isfinite(age) and 0.0 <= age <= MAX_AGE_YEARS):
        raise ManifestError(f"{where}: age {raw!r} is not an age in years (0 to {MAX_AGE_YEARS:g}; "
                            "leave the cell empty when unknown)")
    return age


def _decode(manifest_path: Path) -> str:
    """The manifest's text; a file that is not UTF-8 is a :class:`ManifestError` saying what to do."""
    data = manifest_path.read_bytes()
    if data[:2] in (b"\xff\xfe", b"\xfe\xff") or (data[:200].count(b"\x00") > len(data[:200]) // 4):
        raise ManifestError(f"{manifest_path}: the file is UTF-16 (Excel's 'Unicode text'?); manifests are "
                            f"UTF-8 CSV: save it as 'CSV UTF-8' or convert it, e.g. "
                            f"`iconv -f UTF-16 -t UTF-8 {manifest_path.name} > fixed.csv`")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line_no = data[:e.start].count(b"\n") + 1
        raise ManifestError(f"{manifest_path}:{line_no}: byte 0x{data[e.start]:02x} is not UTF-8 (Latin-1 or "
                            f"Windows-1252?); manifests are UTF-8 CSV: convert it, e.g. "
                            f"`iconv -f latin1 -t UTF-8 {manifest_path.name} > fixed.csv`") from None


def _records(text: str) -> Iterator[tuple[int, int, list[str] | None, str | None]]:
    """``(first_line, last_line, cells, error)`` per CSV record, lines counted from 1.

    Quoting is strict: a quote error is yielded as ``error`` (cells ``None``) on the line
    its record starts, and parsing goes on from the next line, so one stray quote never
    swallows the rows after it unnoticed. Blank lines yield nothing.
    """
    lines = io.StringIO(text, newline="").readlines()
    start = 0
    while start < len(lines):
        reader = csv.reader(lines[start:], strict=True)
        first = start  # 0-based index of the line the next record starts on
        try:
            for cells in reader:
                last = start + reader.line_num
                if cells:
                    yield first + 1, last, cells, None
                first = last
        except csv.Error as e:
            yield first + 1, first + 1, None, f"cannot be parsed as CSV ({e}): a stray quote?"
            start = first + 1
            continue
        return


def _read_rows(manifest_path: Path, bad_rows: list[str] | None = None,
               required: tuple[str, ...] = REQUIRED_COLUMNS) -> tuple[list[str], list[dict[str, str]], list[int]]:
    """Header, rows and each row's line number in the file (blank lines are skipped but counted).

    A record that is not one row of the header's cells (a quote error, a missing or extra
    cell, a key cell spanning lines) raises :class:`ManifestError` naming the file and line,
    or, when ``bad_rows`` is a list, is appended to it (as ``file:line: why``) and skipped.
    """
    if not manifest_path.is_file():
        raise ManifestNotFound(f"manifest not found: {manifest_path}")
    records = _records(_decode(manifest_path))
    first = next(records, None)
    if first is None:
        raise ManifestError(f"{manifest_path}: empty file; the header must name {list(REQUIRED_COLUMNS)}")
    if first[3] is not None:
        raise ManifestError(f"{manifest_path}:{first[0]}: the header {first[3]}")
    header = [c.strip() for c in first[2]]
    twice = sorted({c for c in header if c and header.count(c) > 1})
    if twice:
        raise ManifestError(f"{manifest_path}:{first[0]}: the header names column(s) {twice} more than once; "
                            f"which one holds the data? Rename or remove the others (header: {header})")
    missing = [c for c in required if c not in header]
    if missing:
        raise ManifestError(f"{manifest_path}: missing column(s) {missing}; header is {header}")
    key_columns = [i for i, c in enumerate(header) if c in (*required, "id")]
    rows, line_nos = [], []
    for first_line, last_line, cells, error in records:
        where = f"{manifest_path}:{first_line}"
        if error is None and len(cells) != len(header):
            error = (f"has {len(cells)} cell(s) but the header has {len(header)} {header}: "
                     f"a missing or extra comma, or an unquoted comma in a cell?")
        if error is None and last_line > first_line and any("\n" in cells[i] or "\r" in cells[i]
                                                            for i in key_columns):
            error = f"a quoted cell runs from line {first_line} to {last_line}: a stray quote?"
        if error is not None:
            _bad_row(f"{where}: row {error}", bad_rows)
            continue
        rows.append(dict(zip(header, cells)))
        line_nos.append(first_line)
    return header, rows, line_nos


def read_paths(manifest_path: str | Path) -> list[Path]:
    """The ``path`` column of a CSV (relative to its folder), read as strictly as :func:`read_manifest`
    reads a manifest (no other column needed); ``predict`` reads its input manifest with this.

    Raises:
        ManifestError: naming the file (and line) for a file that is not UTF-8, no ``path`` column,
            a column named twice, a bad row (a stray quote, a missing or extra cell) or an empty path.
    """
    manifest_path = Path(manifest_path)
    _, rows, line_nos = _read_rows(manifest_path, required=("path",))
    out = []
    for line_no, r in zip(line_nos, rows):
        path = r["path"].strip()
        if not path:
            raise ManifestError(f"{manifest_path}:{line_no}: empty path")
        out.append(Path(path) if Path(path).is_absolute() else manifest_path.parent / path)
    return out


def read_table(manifest_path: str | Path) -> list[dict[str, str]]:
    """Every column of a CSV with a ``path`` column, read as strictly as :func:`read_paths`, each
    ``path`` resolved as :func:`read_paths` resolves it (so it matches what ``predict`` wrote)."""
    manifest_path = Path(manifest_path)
    paths = read_paths(manifest_path)
    _, rows, _ = _read_rows(manifest_path, required=("path",))
    return [{**r, "path": str(p)} for r, p in zip(rows, paths)]


def _bad_row(message: str, bad_rows: list[str] | None) -> None:
    """Raise ``message`` as a :class:`ManifestError`, or list it in ``bad_rows`` when skipping."""
    if bad_rows is None:
        raise ManifestError(message + " (to skip and list such rows instead: skip_bad_rows, "
                                      "`+data.skip_bad_rows=true`)")
    bad_rows.append(message)


def _join_metadata(rows: list[dict[str, str]], metadata_path: Path, columns: list[str]) -> None:
    """Add ``columns`` of a second CSV (joined on ``path``) to ``rows``, in place."""
    _, meta_rows, _ = _read_rows(metadata_path, required=("path",))
    meta = {r["path"]: r for r in meta_rows}
    for r in rows:
        extra = meta.get(r["path"], {})
        for c in columns:
            if not r.get(c):
                r[c] = extra.get(c, "")


def read_manifest(manifest_path: str | Path, group_columns: list[str] | tuple[str, ...] = (),
                  metadata_path: str | Path | None = None, skip_bad_rows: bool = False) -> list[Clip]:
    """Read and validate a manifest.

    Args:
        manifest_path: the CSV (UTF-8, a BOM allowed).
        group_columns: columns kept in ``Clip.groups`` for per-group metrics.
        metadata_path: optional second CSV joined on ``path`` to fill ``age``,
            ``split`` and the group columns.
        skip_bad_rows: skip a bad row (and list every one in a warning) instead of stopping.

    Raises:
        ManifestError: naming the file and line, for a file that is not UTF-8, a missing
            column, and (unless ``skip_bad_rows``) a row that is not one row of the header's
            cells (a quote error, a missing or extra cell), an unknown gender spelling, an
            empty path or speaker, a bad split or age, a duplicate id.
    """
    manifest_path = Path(manifest_path)
    bad_rows: list[str] | None = [] if skip_bad_rows else None
    header, rows, line_nos = _read_rows(manifest_path, bad_rows)
    if metadata_path:
        _join_metadata(rows, Path(metadata_path), ["age", "split", *group_columns])
    missing_groups = [c for c in group_columns if c not in header and not metadata_path]
    if missing_groups:
        raise ManifestError(f"{manifest_path}: group column(s) {missing_groups} not in header {header}")
    root = manifest_path.parent
    clips: list[Clip] = []
    seen: dict[str, int] = {}
    dropped = 0
    for line_no, r in zip(line_nos, rows):
        where = f"{manifest_path}:{line_no}"
        try:
            clip = _clip(r, where, root, group_columns, seen)
        except ManifestError as e:
            _bad_row(str(e), bad_rows)
            continue
        if clip is None:
            dropped += 1
            continue
        seen[clip.id] = line_no
        clips.append(clip)
    if dropped:
        log.warning("%s: dropped %d row(s) whose gender is neither male nor female", manifest_path, dropped)
    if bad_rows:
        log.warning("%s: skipped %d bad row(s) (skip_bad_rows):\n  %s", manifest_path, len(bad_rows),
                    "\n  ".join(bad_rows))
    log.info("%s: %d clips, %d speakers", manifest_path, len(clips), len({c.speaker for c in clips}))
    return clips


def _clip(r: dict[str, str], where: str, root: Path, group_columns, seen: dict[str, int]) -> Clip | None:
    """One row as a :class:`Clip`; ``None`` for a gender that is dropped (``other``, empty ...)."""
    raw_gender = (r.get("gender") or "").strip()
    gender = normalise_gender(raw_gender)
    if gender is None:
        if raw_gender.lower() in DROPPED_GENDERS:
            return None
        raise ManifestError(f"{where}: unknown gender {raw_gender!r} (expected male/female)")
    path, speaker = (r.get("path") or "").strip(), (r.get("speaker") or "").strip()
    if not path or not speaker:
        raise ManifestError(f"{where}: empty path or speaker")
    clip_id = (r.get("id") or "").strip() or path
    if clip_id in seen:
        raise ManifestError(f"{where}: duplicate id {clip_id!r} (first on line {seen[clip_id]})")
    split = (r.get("split") or "").strip() or None
    if split is not None and split not in SPLITS:
        raise ManifestError(f"{where}: split {split!r} is not one of {SPLITS}")
    return Clip(id=clip_id, path=(root / path) if not Path(path).is_absolute() else Path(path),
                speaker=speaker, gender=gender, age=_parse_age(r.get("age", ""), where), split=split,
                groups={c: (r.get(c) or "").strip() for c in group_columns})


def write_manifest(rows: list[dict[str, object]], manifest_path: str | Path) -> Path:
    """Write manifest rows (dicts with at least the required columns) to CSV, whole or not at all."""
    manifest_path = Path(manifest_path)
    manifest_path.parent.mkdir(parents=True, exist_ok=True)
    columns = list(REQUIRED_COLUMNS)
    for r in rows:
        columns += [k for k in r if k not in columns]
    with atomic_write(manifest_path, newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns)
        w.writeheader()
        w.writerows(rows)
    return manifest_path
