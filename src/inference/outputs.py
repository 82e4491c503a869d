"""Writing prediction results as JSONL, CSV, RTTM or one explained line of text per file."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from pathlib import Path
from typing import TextIO

from src.inference.pipeline import GenderResult

FORMATS = ("jsonl", "csv", "rttm", "text")
CSV_FIELDS = ("path", "label", "p_female", "p_male", "speech_s", "duration_s", "status", "reason",
              "speaking_time_female_s", "speaking_time_male_s", "speaking_time_unknown_s", "segments",
              "age_band", "p_age_band", "age_group", "p_age_group", "model", "quality")


def file_id(path: str | None) -> str:
    """RTTM's file id: the file name without extension, spaces replaced."""
    return Path(path or "stream").stem.replace(" ", "_")


def rttm_lines(result: GenderResult) -> list[str]:
    """One ``SPEAKER`` line per timeline segment (the label stands in the speaker field)."""
    return [f"SPEAKER {file_id(result.path)} 1 {s.start_s:.3f} {s.end_s - s.start_s:.3f} <NA> <NA> "
            f"{s.label} <NA> <NA>" for s in result.timeline]


def csv_row(result: GenderResult) -> dict:
    """A flat row: speaking times per label and the segment count."""
    row = {k: getattr(result, k) for k in CSV_FIELDS[:8]}
    for label in ("female", "male", "unknown"):
        row[f"speaking_time_{label}_s"] = result.speaking_time_s.get(label, 0.0)
    row["segments"] = len(result.timeline)
    for k in ("age_band", "p_age_band", "age_group", "p_age_group", "model"):
        row[k] = getattr(result, k)
    row["quality"] = ";".join(result.quality)
    return row


def text_line(result: GenderResult) -> str:
    """One line a person reads: the answer, how sure, the age group, how much speech, which model."""
    name = Path(result.path).name if result.path else "audio"
    if result.status != "ok":
        return f"{name}: {result.status} ({result.reason}) [model: {result.model}]"
    p = max(result.p_male, result.p_female)
    answer = (f"{result.label} (p = {p:.2f})" if result.label != "unknown"
              else f"unknown: {result.reason} (p(male) = {result.p_male:.2f})")
    age = f", {result.age_group} voice (p = {result.p_age_group:.2f})" if result.age_group else ""
    audio = f"; audio: {', '.join(result.quality)}" if result.quality else ""
    return f"{name}: {answer}{age}, from {result.speech_s:.1f} s of speech{audio} [model: {result.model}]"


def write_results(results: Iterable[GenderResult], fmt: str, out: TextIO) -> int:
    """Stream results to ``out`` as they come; returns how many were written."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}: one of {FORMATS}")
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS) if fmt == "csv" else None
    if writer:
        writer.writeheader()
    n = 0
    for r in results:
        if fmt == "jsonl":
            out.write(json.dumps(r.to_dict()) + "\n")
        elif fmt == "csv":
            writer.writerow(csv_row(r))
        elif fmt == "text":
            out.write(text_line(r) + "\n")
        else:
            out.writelines(line + "\n" for line in rttm_lines(r))
        out.flush()
        n += 1
    return n


def parse_rttm(text: str) -> list[dict]:
    """Read RTTM ``SPEAKER`` lines back (for checks): file, start_s, duration_s, label."""
    rows = []
    for line in text.splitlines():
        f = line.split()
        if f and f[0] == "SPEAKER":
            rows.append({"file": f[1], "start_s": float(f[3]), "duration_s": float(f[4]), "label": f[7]})
    return rows
