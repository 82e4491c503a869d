"""Corpus adapters: turn a corpus tree into a manifest (see :mod:`src.data.manifest`).

One function per source. Each returns the manifest rows (dicts of strings) and
writes them with :func:`write_manifest`, sorted by ``path``. Paths are relative
to the manifest's folder (``os.path.relpath``), so the manifest may live outside
the corpus. Every adapter raises :class:`ManifestError` for a missing root or
speaker table and for a tree with no usable clip, and logs clip and speaker
counts per gender.

* :func:`librispeech_manifest`: ``<root>/<subset>/<speaker>/<chapter>/*.flac`` + ``SPEAKERS.TXT``.
* :func:`vctk_manifest`: ``<root>/wav48_silence_trimmed/<spk>/*_mic1.flac`` (0.92) or
  ``<root>/wav48/<spk>/*.wav`` + ``speaker-info.txt``.
* :func:`commonvoice_manifest`: ``<root>/clips/*.mp3`` + ``validated.tsv``, or the
  Kaggle ``cv-valid-*.csv`` tables.
* :func:`folder_manifest`: ``<root>/<gender>/<speaker>/*.{wav,flac,mp3,ogg}``.
"""

from __future__ import annotations

import csv
import logging
import os
from collections import Counter
from pathlib import Path

from src.data.manifest import ManifestError, write_manifest
from src.labels import CLASSES, normalise_gender

log = logging.getLogger(__name__)

Row = dict[str, str]
AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg")
VCTK_AUDIO_DIRS = ("wav48_silence_trimmed", "wav48")  # 0.92 first, then the older release


# --------------------------------------------------------------------------- shared helpers

def _require_dir(root: str | Path, corpus: str) -> Path:
    """``root`` as a Path, or a ManifestError when it is not a folder."""
    root = Path(root)
    if not root.is_dir():
        raise ManifestError(f"{corpus}: corpus root not found: {root}")
    return root


def _relative_path(audio_path: Path, out_path: Path) -> str:
    """``audio_path`` relative to the manifest's folder, with ``/`` separators."""
    rel = os.path.relpath(os.path.abspath(audio_path), os.path.abspath(out_path.parent))
    return Path(rel).as_posix()


def _log_counts(corpus: str, rows: list[Row], out_path: Path) -> None:
    """One log line: clips and speakers per gender."""
    clips = Counter(r["gender"] for r in rows)
    speakers = Counter(g for g, _ in {(r["gender"], r["speaker"]) for r in rows})
    per_gender = ", ".join(f"{g}: {clips[g]} clips / {speakers[g]} speakers" for g in CLASSES)
    log.info("%s: wrote %d clips to %s (%s)", corpus, len(rows), out_path, per_gender)


def _finish(corpus: str, rows: list[Row], root: Path, out_path: str | Path) -> list[Row]:
    """Sort ``rows`` by path, write them to ``out_path``, log the counts, return them."""
    if not rows:
        raise ManifestError(f"{corpus}: no usable clip found under {root}")
    rows.sort(key=lambda r: r["path"])
    genders_of: dict[str, set[str]] = {}
    for r in rows:
        genders_of.setdefault(r["speaker"], set()).add(r["gender"])
    mixed = sorted(s for s, g in genders_of.items() if len(g) > 1)
    if mixed:
        log.warning("%s: %d speaker(s) have clips of both genders (e.g. %s)",
                    corpus, len(mixed), ", ".join(mixed[:5]))
    out_path = write_manifest(rows, out_path)
    _log_counts(corpus, rows, out_path)
    return rows


def _warn_unlisted(corpus: str, unlisted: Counter, table_path: Path) -> None:
    """Warn about clips skipped because their speaker is not in the speaker table."""
    if unlisted:
        log.warning("%s: skipped %d clip(s) of %d speaker(s) missing from %s (e.g. %s)",
                    corpus, sum(unlisted.values()), len(unlisted), table_path,
                    ", ".join(sorted(unlisted)[:5]))


# --------------------------------------------------------------------------- LibriSpeech

def _read_librispeech_speakers(table_path: Path) -> dict[str, str]:
    """Speaker id -> ``female``/``male`` from ``SPEAKERS.TXT``.

    Lines starting with ``;`` are comments; columns are ``ID | SEX | SUBSET |
    MINUTES | NAME`` (a name may itself contain ``|``, so split at most 4 times).
    """
    genders: dict[str, str] = {}
    with open(table_path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, start=1):
            if not line.strip() or line.lstrip().startswith(";"):
                continue
            fields = [c.strip() for c in line.split("|", 4)]
            gender = normalise_gender(fields[1]) if len(fields) > 1 else None
            if gender is None:
                raise ManifestError(f"{table_path}:{line_no}: expected 'ID | SEX | ...' "
                                    f"with SEX F or M, got {line.strip()!r}")
            genders[fields[0]] = gender
    return genders


def _librispeech_subsets(root: Path) -> list[Path]:
    """Subset folders: ``root`` itself when it holds speaker folders, else its children that do."""
    def holds_speakers(d: Path) -> bool:
        return any(c.is_dir() and c.name.isdigit() for c in d.iterdir())

    if holds_speakers(root):
        return [root]
    return sorted(d for d in root.iterdir() if d.is_dir() and holds_speakers(d))


def librispeech_manifest(root: str | Path, out_path: str | Path) -> list[Row]:
    """Manifest of a LibriSpeech tree.

    Args:
        root: the ``LibriSpeech`` folder holding subsets (``train-clean-100``, ...)
            or one subset folder; ``SPEAKERS.TXT`` is looked for in ``root`` then
            its parent.
        out_path: the manifest CSV to write.

    Returns:
        Rows ``path, speaker (librispeech-<id>), gender, corpus, subset``. Clips
        of speakers missing from ``SPEAKERS.TXT`` are skipped with a warning.
    """
    root = _require_dir(root, "librispeech")
    out_path = Path(out_path)
    table_path = next((d / "SPEAKERS.TXT" for d in (root, root.parent)
                       if (d / "SPEAKERS.TXT").is_file()), None)
    if table_path is None:
        raise ManifestError(f"librispeech: SPEAKERS.TXT not found in {root} or {root.parent}")
    genders = _read_librispeech_speakers(table_path)
    subsets = _librispeech_subsets(root)
    if not subsets:
        raise ManifestError(
            f"librispeech: no <subset>/<speaker>/<chapter>/*.flac tree under {root}")
    rows: list[Row] = []
    unlisted: Counter = Counter()
    for subset_dir in subsets:
        for audio_path in subset_dir.glob("*/*/*.flac"):
            speaker_id = audio_path.parent.parent.name
            if speaker_id not in genders:
                unlisted[speaker_id] += 1
                continue
            rows.append({"path": _relative_path(audio_path, out_path),
                         "speaker": f"librispeech-{speaker_id}", "gender": genders[speaker_id],
                         "corpus": "librispeech", "subset": subset_dir.name})
    _warn_unlisted("librispeech", unlisted, table_path)
    return _finish("librispeech", rows, root, out_path)


# --------------------------------------------------------------------------- VCTK

def _vctk_speaker_id(raw: str) -> str:
    """``225`` or ``p225`` -> ``p225``; other ids (``s5``) unchanged."""
    raw = raw.strip()
    return f"p{raw}" if raw.isdigit() else raw


def _read_vctk_speakers(table_path: Path) -> dict[str, Row]:
    """Speaker id (``p225``) -> ``{gender, age, accent}`` from ``speaker-info.txt``.

    Whitespace-separated ``ID AGE GENDER ACCENTS REGION/COMMENTS`` after a header
    line starting with ``ID``; the region (several words) is not kept.
    """
    speakers: dict[str, Row] = {}
    with open(table_path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, start=1):
            fields = line.split()
            if not fields or fields[0].upper() == "ID":
                continue
            gender = normalise_gender(fields[2]) if len(fields) > 2 else None
            if gender is None:
                raise ManifestError(f"{table_path}:{line_no}: expected 'ID AGE GENDER ...' "
                                    f"with GENDER F or M, got {line.strip()!r}")
            age_years = fields[1] if fields[1].isdigit() else ""
            accent = fields[3] if len(fields) > 3 else ""
            speakers[_vctk_speaker_id(fields[0])] = {"gender": gender, "age": age_years,
                                                     "accent": accent}
    return speakers


def vctk_manifest(root: str | Path, out_path: str | Path, mic: str = "mic1") -> list[Row]:
    """Manifest of a VCTK tree.

    Args:
        root: the VCTK folder holding ``wav48_silence_trimmed/`` (0.92, flac files
            ``p225_001_mic1.flac``) or ``wav48/`` (older, ``p225_001.wav``), and
            ``speaker-info.txt``.
        out_path: the manifest CSV to write.
        mic: 0.92 only: which microphone's copy to keep (``mic1`` or ``mic2``;
            p280 and p315 have no ``mic2`` files).

    Returns:
        Rows ``path, speaker (vctk-p225), gender, age (years), accent, corpus``.
        Clips of speakers missing from ``speaker-info.txt`` are skipped with a warning.
    """
    root = _require_dir(root, "vctk")
    out_path = Path(out_path)
    table_path = root / "speaker-info.txt"
    if not table_path.is_file():
        raise ManifestError(f"vctk: speaker table not found: {table_path}")
    speakers = _read_vctk_speakers(table_path)
    audio_dir = next((root / d for d in VCTK_AUDIO_DIRS if (root / d).is_dir()), None)
    if audio_dir is None:
        raise ManifestError(f"vctk: neither {' nor '.join(VCTK_AUDIO_DIRS)} found in {root}")
    pattern = f"*/*_{mic}.flac" if audio_dir.name == "wav48_silence_trimmed" else "*/*.wav"
    rows: list[Row] = []
    unlisted: Counter = Counter()
    for audio_path in audio_dir.glob(pattern):
        speaker_id = _vctk_speaker_id(audio_path.parent.name)
        if speaker_id not in speakers:
            unlisted[speaker_id] += 1
            continue
        info = speakers[speaker_id]
        rows.append({"path": _relative_path(audio_path, out_path), "speaker": f"vctk-{speaker_id}",
                     "gender": info["gender"], "age": info["age"], "accent": info["accent"],
                     "corpus": "vctk"})
    _warn_unlisted("vctk", unlisted, table_path)
    return _finish("vctk", rows, root, out_path)


# --------------------------------------------------------------------------- Common Voice

def _read_table(table_path: Path) -> tuple[list[str], list[Row]]:
    """Header and rows of a Common Voice TSV (no quoting: sentences hold stray quotes)
    or of a Kaggle-style CSV (ordinary quoting); the delimiter is read off the header."""
    with open(table_path, newline="", encoding="utf-8") as f:
        is_tsv = "\t" in f.readline()
        f.seek(0)
        reader = (csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE) if is_tsv
                  else csv.DictReader(f))
        rows = list(reader)
        return list(reader.fieldnames or []), rows


def commonvoice_manifest(root: str | Path, out_path: str | Path,
                         tsv: str = "validated.tsv") -> list[Row]:
    """Manifest of a Common Voice release (or of the old Kaggle re-packaging).

    Args:
        root: the release folder: ``clips/*.mp3`` and ``tsv`` whose ``path`` column
            names files in ``clips/``; or the Kaggle folder, whose CSV
            (``filename,text,up_votes,down_votes,age,gender,accent,duration``) names
            files relative to ``root`` (``cv-valid-train/sample-000000.mp3``).
        out_path: the manifest CSV to write.
        tsv: the table inside ``root`` (``validated.tsv``, ``train.tsv``,
            ``cv-valid-train.csv``, ...); the format is told by its header.

    Returns:
        Rows ``path, speaker, gender, age (empty), age_group, accent, corpus``.
        ``speaker`` is ``cv-`` + the first 12 characters of ``client_id``; the
        Kaggle CSV has no client id, so each clip is its own speaker (``cv-<stem>``)
        and speaker-disjoint splits are impossible. ``age_group`` is Common Voice's
        decade band (``teens``, ``twenties``, ``fourties``, ...); ``age`` stays empty
        because a band is not a number of years. Rows whose gender is neither male
        nor female (``other``, ``non-binary``, empty, ...) and rows whose clip is
        missing are dropped and counted in the log.
    """
    root = _require_dir(root, "commonvoice")
    out_path = Path(out_path)
    table_path = root / tsv
    if not table_path.is_file():
        raise ManifestError(f"commonvoice: table not found: {table_path}")
    header, table = _read_table(table_path)
    if {"client_id", "path", "gender"} <= set(header):
        kaggle, audio_dir, path_column = False, root / "clips", "path"
    elif {"filename", "gender"} <= set(header):
        kaggle, audio_dir, path_column = True, root, "filename"
        log.warning("commonvoice: %s has no client_id: each clip is its own speaker, "
                    "so speaker-disjoint splits are impossible", table_path)
    else:
        raise ManifestError(f"commonvoice: {table_path}: expected a Common Voice TSV "
                            f"(client_id, path, gender, ...) or a Kaggle CSV "
                            f"(filename, gender, ...); header is {header}")
    accent_column = "accents" if "accents" in header else "accent"
    rows: list[Row] = []
    dropped_genders: Counter = Counter()
    missing_clips = 0
    for r in table:
        raw_gender = (r.get("gender") or "").strip()
        gender = normalise_gender(raw_gender)
        if gender is None:
            dropped_genders[raw_gender or "<empty>"] += 1
            continue
        audio_path = audio_dir / (r.get(path_column) or "").strip()
        if not audio_path.is_file():
            missing_clips += 1
            continue
        speaker = audio_path.stem if kaggle else r["client_id"].strip()[:12]
        rows.append({"path": _relative_path(audio_path, out_path), "speaker": f"cv-{speaker}",
                     "gender": gender, "age": "", "age_group": (r.get("age") or "").strip(),
                     "accent": (r.get(accent_column) or "").strip(), "corpus": "commonvoice"})
    if dropped_genders:
        log.info("commonvoice: dropped %d row(s) whose gender is neither male nor female (%s)",
                 sum(dropped_genders.values()),
                 ", ".join(f"{g}: {n}" for g, n in sorted(dropped_genders.items())))
    if missing_clips:
        log.warning("commonvoice: dropped %d row(s) whose clip is missing under %s",
                    missing_clips, audio_dir)
    return _finish("commonvoice", rows, root, out_path)


# --------------------------------------------------------------------------- plain folders

def folder_manifest(root: str | Path, out_path: str | Path) -> list[Row]:
    """Manifest of a ``<root>/<gender>/<speaker>/...`` tree.

    Args:
        root: a folder whose subfolders are genders (``female``, ``male``, ``f``,
            ``m``, ... as :func:`normalise_gender` reads them; other folders are
            skipped with a warning), each holding one folder per speaker with
            audio files (``.wav``, ``.flac``, ``.mp3``, ``.ogg``, at any depth).
        out_path: the manifest CSV to write.

    Returns:
        Rows ``path, speaker (the speaker folder's name), gender``.
    """
    root = _require_dir(root, "folder")
    out_path = Path(out_path)
    rows: list[Row] = []
    for gender_dir in sorted(d for d in root.iterdir() if d.is_dir()):
        gender = normalise_gender(gender_dir.name)
        if gender is None:
            log.warning("folder: skipped %s: not a gender folder (expected female/male)",
                        gender_dir)
            continue
        loose = [p for p in gender_dir.iterdir()
                 if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES]
        if loose:
            log.warning("folder: skipped %d audio file(s) directly in %s (expected "
                        "<gender>/<speaker>/<file>)", len(loose), gender_dir)
        for speaker_dir in (d for d in gender_dir.iterdir() if d.is_dir()):
            for audio_path in speaker_dir.rglob("*"):
                if audio_path.is_file() and audio_path.suffix.lower() in AUDIO_SUFFIXES:
                    rows.append({"path": _relative_path(audio_path, out_path),
                                 "speaker": speaker_dir.name, "gender": gender})
    return _finish("folder", rows, root, out_path)
