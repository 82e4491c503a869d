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
import logging
from dataclasses import dataclass, field
from pathlib import Path

from src.labels import SPLITS, normalise_gender

log = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("path", "speaker", "gender")
DROPPED_GENDERS = {"", "other", "non-binary", "nonbinary", "intersex", "transgender",
                   "do_not_wish_to_say", "unknown", "n/a", "na", "none"}


class ManifestError(ValueError):
    """A manifest that cannot be used; the message names the file and the row."""


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
        return float(raw)
    except ValueError:
        raise ManifestError(f"{where}: age {raw!r} is not a number of years") from None


def _read_rows(manifest_path: Path) -> tuple[list[str], list[dict[str, str]], list[int]]:
    """Header, rows and each row's line number in the file (blank lines are skipped but counted)."""
    if not manifest_path.is_file():
        raise ManifestError(f"manifest not found: {manifest_path}")
    with open(manifest_path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        rows, line_nos = [], []
        for row in reader:
            rows.append(row)
            line_nos.append(reader.line_num)
        header = reader.fieldnames or []
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise ManifestError(f"{manifest_path}: missing column(s) {missing}; header is {header}")
    return header, rows, line_nos


def _join_metadata(rows: list[dict[str, str]], metadata_path: Path, columns: list[str]) -> None:
    """Add ``columns`` of a second CSV (joined on ``path``) to ``rows``, in place."""
    with open(metadata_path, newline="", encoding="utf-8-sig") as f:
        meta = {r["path"]: r for r in csv.DictReader(f)}
    for r in rows:
        extra = meta.get(r["path"], {})
        for c in columns:
            if not r.get(c):
                r[c] = extra.get(c, "")


def read_manifest(manifest_path: str | Path, group_columns: list[str] | tuple[str, ...] = (),
                  metadata_path: str | Path | None = None) -> list[Clip]:
    """Read and validate a manifest.

    Args:
        manifest_path: the CSV.
        group_columns: columns kept in ``Clip.groups`` for per-group metrics.
        metadata_path: optional second CSV joined on ``path`` to fill ``age``,
            ``split`` and the group columns.

    Raises:
        ManifestError: naming the row, for a missing column, an unknown gender
            spelling, an empty path or speaker, a bad split or age, a duplicate id.
    """
    manifest_path = Path(manifest_path)
    header, rows, line_nos = _read_rows(manifest_path)
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
        raw_gender = (r.get("gender") or "").strip()
        gender = normalise_gender(raw_gender)
        if gender is None:
            if raw_gender.lower() in DROPPED_GENDERS:
                dropped += 1
                continue
            raise ManifestError(f"{where}: unknown gender {raw_gender!r} (expected male/female)")
        path, speaker = (r.get("path") or "").strip(), (r.get("speaker") or "").strip()
        if not path or not speaker:
            raise ManifestError(f"{where}: empty path or speaker")
        clip_id = (r.get("id") or "").strip() or path
        if clip_id in seen:
            raise ManifestError(f"{where}: duplicate id {clip_id!r} (first on line {seen[clip_id]})")
        seen[clip_id] = line_no
        split = (r.get("split") or "").strip() or None
        if split is not None and split not in SPLITS:
            raise ManifestError(f"{where}: split {split!r} is not one of {SPLITS}")
        clips.append(Clip(
            id=clip_id, path=(root / path) if not Path(path).is_absolute() else Path(path),
            speaker=speaker, gender=gender, age=_parse_age(r.get("age", ""), where), split=split,
            groups={c: (r.get(c) or "").strip() for c in group_columns},
        ))
    if dropped:
        log.warning("%s: dropped %d row(s) whose gender is neither male nor female", manifest_path, dropped)
    log.info("%s: %d clips, %d speakers", manifest_path, len(clips), len({c.speaker for c in clips}))
    return clips


def write_manifest(rows: list[dict[str, object]], manifest_path: str | Path) -> Path:
    """Write manifest rows (dicts with at least the required columns) to CSV."""
    manifest_path = Path(manifest_path)
    manifest_path.parent.mkdir(parents=True, exist_ok=True)
    columns = list(REQUIRED_COLUMNS)
    for r in rows:
        columns += [k for k in r if k not in columns]
    with open(manifest_path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=columns)
        w.writeheader()
        w.writerows(rows)
    return manifest_path
