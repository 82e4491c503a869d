"""The result formats and the stream's text, on hand-made results (no model: fast)."""

from __future__ import annotations

import csv
import io
import re

import pytest

from src.cli import UsageError
from src.inference.outputs import csv_row, parse_rttm, segment_rows, textgrid, write_results
from src.inference.pipeline import GenderResult, Segment, majority_label, merge_gaps, speaking_time
from src.inference.streaming import StreamEvent
from src.labels import MIXED, UNKNOWN


def two_voices() -> GenderResult:
    timeline = [Segment(0.5, 2.0, "female", 0.1, 1.5), Segment(2.0, 2.5, UNKNOWN, 0.5, 0.5),
                Segment(2.5, 6.0, "male", 0.9, 3.5)]
    return GenderResult(MIXED, None, None, 5.5, 7.25, timeline=timeline, speaking_time_s=speaking_time(timeline),
                        path="/x/talk show.wav", model="default")


def test_rttm_never_names_unknown_as_a_speaker():
    out = io.StringIO()
    write_results([two_voices()], "rttm", out)
    rows = parse_rttm(out.getvalue())
    assert [(r["file"], r["label"], r["start_s"], r["duration_s"]) for r in rows] == [
        ("talk_show", "female", 0.5, 1.5), ("talk_show", "male", 2.5, 3.5)]


def test_segments_csv_gives_each_label_its_own_probability():
    out = io.StringIO()
    write_results([two_voices()], "segments", out)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert list(rows[0]) == ["file", "start", "end", "label", "p"]
    assert [(r["label"], r["p"]) for r in rows] == [("female", "0.9"), (UNKNOWN, ""), ("male", "0.9")]
    assert segment_rows(two_voices())[2]["end"] == 6.0


def test_textgrid_tier_covers_the_file_without_gaps():
    text = textgrid(two_voices())
    assert text.startswith('File type = "ooTextFile"\nObject class = "TextGrid"')
    xs = [(float(a), float(b)) for a, b in re.findall(r"xmin = ([\d.]+)\n\s+xmax = ([\d.]+)\n\s+text", text)]
    labels = re.findall(r'text = "(.*)"', text)
    assert labels == ["", "female", UNKNOWN, "male", ""]
    assert xs[0][0] == 0.0 and xs[-1][1] == 7.25
    assert all(b1 == a2 for (_, b1), (a2, _) in zip(xs, xs[1:]))  # contiguous, as Praat requires
    assert f"intervals: size = {len(xs)}" in text


def test_textgrid_is_one_recording_per_document():
    with pytest.raises(ValueError, match="output_dir"):
        write_results([two_voices(), two_voices()], "textgrid", io.StringIO())


def test_csv_leaves_what_was_not_computed_blank():
    plain = GenderResult("male", 0.1, 0.9, 3.0, 4.0, path="a.wav", model="default")
    row = csv_row(plain)
    assert row["speaking_time_male_s"] is None and row["segments"] is None  # no timeline: blank, not 0.0
    mixed = csv_row(two_voices())
    assert (mixed["speaking_time_female_s"], mixed["speaking_time_male_s"], mixed["segments"]) == (1.5, 3.5, 3)
    out = io.StringIO()
    write_results([plain], "csv", out)
    got = next(csv.DictReader(io.StringIO(out.getvalue())))
    assert got["speaking_time_female_s"] == "" and got["p_male"] == "0.9" and got["model"] == "default"


def test_neighbours_of_one_label_merge_and_speaking_time_counts_speech_only():
    segs = [Segment(0.0, 1.0, "male", 0.8, 1.0), Segment(1.5, 2.5, "male", 1.0, 1.0),
            Segment(2.5, 3.0, "female", 0.2, 0.5), Segment(5.0, 6.0, "female", 0.0, 1.0)]
    merged = merge_gaps(segs, max_gap_s=1.0)
    assert [(s.start_s, s.end_s, s.label) for s in merged] == [(0.0, 2.5, "male"), (2.5, 3.0, "female"),
                                                               (5.0, 6.0, "female")]  # a 2 s pause still splits
    assert merged[0].p_male == pytest.approx(0.9) and merged[0].speech_s == 2.0
    assert speaking_time(merged) == {"male": 2.0, "female": 1.5}  # the 0.5 s pause is not speech


def test_majority_of_speaking_time_or_mixed():
    assert majority_label({"male": 9.6, "female": 4.2, UNKNOWN: 3.0}) == "male"
    assert majority_label({"male": 5.0, "female": 4.5}) == MIXED
    assert majority_label({UNKNOWN: 2.0}) == UNKNOWN


def test_stream_text_shows_the_held_label_with_its_own_probability():
    agree = StreamEvent(12.6, "female", 0.06, 1.2, p_label=0.94, heard="female")
    assert agree.text().split() == ["12.6s", "Female", "0.94"]
    waiting = StreamEvent(12.9, "female", 0.81, 1.2, p_label=0.94, heard="male")  # a change not yet confirmed
    assert waiting.text().split()[:3] == ["12.9s", "Female", "0.94"] and "(hearing male 0.81)" in waiting.text()
    quiet = StreamEvent(13.2, "female", None, 0.1, p_label=0.94)
    assert quiet.text().endswith("(silence)") and "Female 0.94" in quiet.text()
    assert StreamEvent(20.0, UNKNOWN, None, 0.0).text().split() == ["20.0s", "Unknown", "(silence)"]


def test_output_dir_names_never_collide():
    from pathlib import Path

    from src.predict import output_names

    files = [Path("/in/a/call.wav"), Path("/in/b/call.flac"), Path("/in/b/other.wav")]
    assert output_names(files) == {"/in/a/call.wav": "a__call", "/in/b/call.flac": "b__call",
                                   "/in/b/other.wav": "other"}
    # the probe's three: a/call.flac and a__call.flac were both a__call (3 results written, 2 files)
    files = [Path("/in/a/call.flac"), Path("/in/b/call.flac"), Path("/in/a__call.flac"), Path("/in/a/call.wav")]
    names = output_names(files)
    assert len(set(names.values())) == 4 and names["/in/b/call.flac"] == "b__call", names
    assert all(re.fullmatch(r"a__call-[0-9a-f]{8}", names[str(f)]) for f in files if str(f) != "/in/b/call.flac")
    with pytest.raises(UsageError, match="/in/a/call.wav is listed 2 times"):
        output_names([Path("/in/a/call.wav"), Path("/in/b/x.wav"), Path("/in/a/call.wav")])
