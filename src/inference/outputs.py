"""Writing prediction results: JSONL, CSV, one explained line of text per file, or the segments of
each file as RTTM, a segments CSV (file, start, end, label, p) or a Praat TextGrid (as
inaSpeechSegmenter offers). The verb writes them whole or not at all (:func:`src.data.files.atomic_write`)."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from pathlib import Path
from typing import TextIO

from src.inference.pipeline import GenderResult, Segment
from src.labels import CLASSES, UNKNOWN

FORMATS = ("jsonl", "csv", "rttm", "text", "segments", "textgrid")
TIMELINE_FORMATS = ("rttm", "segments", "textgrid")  # these need the timeline
ONE_FILE_FORMATS = ("textgrid",)  # one document per recording: several inputs need output_dir=
SUFFIXES = {"jsonl": ".jsonl", "csv": ".csv", "rttm": ".rttm", "text": ".txt", "segments": ".segments.csv",
            "textgrid": ".TextGrid"}
SEGMENT_FIELDS = ("file", "start", "end", "label", "p")
CSV_FIELDS = ("path", "label", "p_female", "p_male", "speech_s", "duration_s", "status", "reason",
              "speaking_time_female_s", "speaking_time_male_s", "speaking_time_unknown_s", "segments",
              "age_band", "p_age_band", "age_group", "p_age_group", "model", "quality")


def file_id(path: str | None) -> str:
    """RTTM's file id: the file name without extension, spaces replaced."""
    return Path(path or "stream").stem.replace(" ", "_")


def rttm_lines(result: GenderResult) -> list[str]:
    """One ``SPEAKER`` line per timeline segment with a label (the label stands in the speaker
    field); ``unknown`` stretches are not a speaker and are left out."""
    return [f"SPEAKER {file_id(result.path)} 1 {s.start_s:.3f} {s.end_s - s.start_s:.3f} <NA> <NA> "
            f"{s.label} <NA> <NA>" for s in result.timeline if s.label != UNKNOWN]


def p_label(segment: Segment) -> float | None:
    """The probability of a segment's own label (``None`` for ``unknown``)."""
    if segment.label not in CLASSES:
        return None
    return round(segment.p_male if segment.label == "male" else 1.0 - segment.p_male, 4)


def segment_rows(result: GenderResult) -> list[dict]:
    """``format=segments``: one row per segment (file, start and end in s, label, p of the label)."""
    return [{"file": result.path, "start": s.start_s, "end": s.end_s, "label": s.label, "p": p_label(s)}
            for s in result.timeline]


def _praat_text(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def textgrid(result: GenderResult, tier: str = "gender") -> str:
    """A Praat TextGrid (long text format) with one interval tier: each segment's label, and empty
    intervals for the stretches between them (Praat wants the tier to cover the whole file)."""
    end_s = max([result.duration_s] + [s.end_s for s in result.timeline])
    intervals, t = [], 0.0
    for s in result.timeline:
        if s.start_s > t + 1e-6:
            intervals.append((t, s.start_s, ""))
        intervals.append((max(t, s.start_s), s.end_s, s.label))
        t = s.end_s
    if end_s > t + 1e-6 or not intervals:
        intervals.append((t, end_s, ""))
    lines = ['File type = "ooTextFile"', 'Object class = "TextGrid"', "", "xmin = 0", f"xmax = {end_s:g}",
             "tiers? <exists>", "size = 1", "item []:", "    item [1]:", '        class = "IntervalTier"',
             f"        name = {_praat_text(tier)}", "        xmin = 0", f"        xmax = {end_s:g}",
             f"        intervals: size = {len(intervals)}"]
    for i, (a, b, text) in enumerate(intervals, 1):
        lines += [f"        intervals [{i}]:", f"            xmin = {a:g}", f"            xmax = {b:g}",
                  f"            text = {_praat_text(text)}"]
    return "\n".join(lines) + "\n"


def csv_row(result: GenderResult) -> dict:
    """A flat row: speaking times per label and the segment count (blank when no timeline was made)."""
    row = {k: getattr(result, k) for k in CSV_FIELDS[:8]}
    has_timeline = bool(result.timeline)
    for label in (*CLASSES, UNKNOWN):
        row[f"speaking_time_{label}_s"] = result.speaking_time_s.get(label, 0.0) if has_timeline else None
    row["segments"] = len(result.timeline) if has_timeline else None
    for k in ("age_band", "p_age_band", "age_group", "p_age_group", "model"):
        row[k] = getattr(result, k)
    row["quality"] = ";".join(result.quality)
    return row


def text_line(result: GenderResult) -> str:
    """One line a person reads: the answer, how sure, the age group, how much speech, which model."""
    name = Path(result.path).name if result.path else "audio"
    if result.status in ("error", "no_speech"):
        return f"{name}: {result.status} ({result.reason}) [model: {result.model}]"
    if result.label not in (*CLASSES, UNKNOWN):  # mixed: speaking time per voice instead of one label
        return (f"{name}: {result.label} ({result.reason}), from {result.speech_s:.1f} s of speech "
                f"[model: {result.model}]")
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
    fields = {"csv": CSV_FIELDS, "segments": SEGMENT_FIELDS}.get(fmt)
    writer = csv.DictWriter(out, fieldnames=fields) if fields else None
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
        elif fmt == "segments":
            writer.writerows(segment_rows(r))
        elif fmt == "textgrid":
            if n:
                raise ValueError("a TextGrid holds one recording: give output_dir= for several")
            out.write(textgrid(r))
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
