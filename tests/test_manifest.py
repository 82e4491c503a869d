"""Manifest contract: the sample reads; bad rows fail fast naming the file and line."""

from __future__ import annotations

import csv
import logging
import re
from pathlib import Path

import pytest

from src.data.manifest import ManifestError, read_manifest, read_paths, write_manifest
from src.labels import CLASSES, SPLITS

from conftest import SAMPLE_GROUP_COLUMNS, SAMPLE_MANIFEST_PATH


def _csv(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _raises_at(path: Path, line_no: int, *fragments: str, **kwargs) -> None:
    """``read_manifest`` fails with a message naming ``path:line_no`` and the fragments."""
    with pytest.raises(ManifestError) as info:
        read_manifest(path, **kwargs)
    msg = str(info.value)
    assert f"{path}:{line_no}:" in msg, msg
    for frag in fragments:
        assert frag in msg, msg


def test_the_sample_reads(sample_clips):
    with open(SAMPLE_MANIFEST_PATH, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(sample_clips) == len(rows)
    assert {c.gender for c in sample_clips} == set(CLASSES)
    assert len({c.id for c in sample_clips}) == len(sample_clips)
    for clip, row in zip(sample_clips, rows):
        assert clip.id == row["path"]  # id defaults to the path
        assert clip.path == SAMPLE_MANIFEST_PATH.parent / row["path"] and clip.path.is_file()
        assert clip.groups == {c: row[c] for c in SAMPLE_GROUP_COLUMNS}
        assert clip.age == (float(row["age"]) if row["age"] else None)
    assert any(c.age is not None for c in sample_clips) and any(c.age is None for c in sample_clips)


def test_relative_and_absolute_paths(tmp_path):
    absolute = tmp_path / "elsewhere" / "b.wav"
    (tmp_path / "sub").mkdir()
    path = _csv(tmp_path / "sub" / "m.csv", f"path,speaker,gender\naudio/a.wav,s1,female\n{absolute},s2,male\n")
    a, b = read_manifest(path)
    assert a.path == tmp_path / "sub" / "audio" / "a.wav"
    assert b.path == absolute


def test_gender_spellings_are_normalised(tmp_path):
    path = _csv(tmp_path / "m.csv", "path,speaker,gender\n"
                "a.wav,s1,F\nb.wav,s2, Male \nc.wav,s3,woman\nd.wav,s4,male_masculine\n")
    assert [c.gender for c in read_manifest(path)] == ["female", "male", "female", "male"]


def test_unknown_gender_names_the_line(tmp_path):
    path = _csv(tmp_path / "m.csv", "path,speaker,gender\na.wav,s1,female\nb.wav,s2,femme\n")
    _raises_at(path, 3, "unknown gender", "'femme'")


def test_line_numbers_count_blank_lines(tmp_path):
    path = _csv(tmp_path / "m.csv", "path,speaker,gender\na.wav,s1,female\n\n\nb.wav,s2,femme\n")
    _raises_at(path, 5, "'femme'")


def test_other_and_empty_genders_are_dropped_and_counted(tmp_path, caplog):
    path = _csv(tmp_path / "m.csv", "path,speaker,gender\n"
                "a.wav,s1,female\nb.wav,s2,other\nc.wav,s3,\nd.wav,s4,male\ne.wav,s5,Unknown\n")
    with caplog.at_level(logging.WARNING, logger="src.data.manifest"):
        clips = read_manifest(path)
    assert [c.id for c in clips] == ["a.wav", "d.wav"]
    assert re.search(r"dropped 3 row\(s\)", caplog.text), caplog.text


def test_missing_column(tmp_path):
    path = _csv(tmp_path / "m.csv", "path,speaker,sex\na.wav,s1,female\n")
    with pytest.raises(ManifestError, match=r"missing column\(s\) \['gender'\]") as info:
        read_manifest(path)
    assert str(path) in str(info.value)


def test_missing_manifest(tmp_path):
    with pytest.raises(ManifestError, match="manifest not found"):
        read_manifest(tmp_path / "nope.csv")


def test_duplicate_id_names_both_lines(tmp_path):
    path = _csv(tmp_path / "m.csv", "path,speaker,gender\na.wav,s1,female\nb.wav,s2,male\na.wav,s1,female\n")
    _raises_at(path, 4, "duplicate id 'a.wav'", "first on line 2")


def test_explicit_ids_may_share_a_path_but_not_an_id(tmp_path):
    ok = _csv(tmp_path / "ok.csv", "id,path,speaker,gender\nx1,a.wav,s1,female\nx2,a.wav,s1,female\n")
    assert [c.id for c in read_manifest(ok)] == ["x1", "x2"]
    bad = _csv(tmp_path / "bad.csv", "id,path,speaker,gender\nx1,a.wav,s1,female\nx1,b.wav,s2,male\n")
    _raises_at(bad, 3, "duplicate id 'x1'")


def test_bad_split(tmp_path):
    path = _csv(tmp_path / "m.csv", "path,speaker,gender,split\na.wav,s1,female,train\nb.wav,s2,male,training\n")
    _raises_at(path, 3, "split 'training'")
    good = _csv(tmp_path / "good.csv", "path,speaker,gender,split\n"
                + "".join(f"{s}.wav,s{i},female,{s}\n" for i, s in enumerate(SPLITS)) + "n.wav,s9,male,\n")
    assert [c.split for c in read_manifest(good)] == [*SPLITS, None]


def test_bad_age(tmp_path):
    path = _csv(tmp_path / "m.csv", "path,speaker,gender,age\na.wav,s1,female,31\nb.wav,s2,male,thirty\n")
    _raises_at(path, 3, "age 'thirty'")


@pytest.mark.parametrize("age", ["nan", "NaN", "inf", "-inf", "Infinity", "-5", "121", "1e9"])
def test_a_non_finite_or_out_of_range_age_stops_naming_its_line(tmp_path, age):
    """The probe's ages: ``nan`` became adult and ``-5`` child, and NaN/Infinity reached the JSON records."""
    path = _csv(tmp_path / "m.csv", f"path,speaker,gender,age\na.wav,s1,female,31\nb.wav,s2,male,{age}\n")
    _raises_at(path, 3, f"age {age!r}", "0 to 120")
    ok = _csv(tmp_path / "ok.csv", "path,speaker,gender,age\na.wav,s1,female,0\nb.wav,s2,male,120\nc.wav,s3,male,\n")
    assert [c.age for c in read_manifest(ok)] == [0.0, 120.0, None]


def test_a_column_named_twice_stops_naming_the_header(tmp_path):
    """The probe's header with two ``gender`` columns: the last one was taken without a word."""
    path = _csv(tmp_path / "m.csv", "path,speaker,gender,gender\na.wav,s1,female,male\n")
    _raises_at(path, 1, "['gender'] more than once")
    meta = _csv(tmp_path / "meta.csv", "path,age,age\na.wav,30,40\n")
    good = _csv(tmp_path / "good.csv", "path,speaker,gender\na.wav,s1,female\n")
    with pytest.raises(ManifestError, match=r"meta.csv:1: .*\['age'\] more than once"):
        read_manifest(good, metadata_path=meta)


def test_predicts_manifest_reader_is_as_strict_as_extracts(real_manifest, tmp_path):
    """``predict input=<manifest.csv>`` read it leniently: a stray quote lost 3 of 5 rows with exit 0,
    and a UTF-16 or path-less manifest was a raw UnicodeDecodeError or KeyError."""
    lines = _sample_head(5)
    path = real_manifest(lines)
    assert read_paths(path) == [c.path for c in read_manifest(path)]
    assert all(p.is_file() for p in read_paths(path))
    lines[2] = lines[2].replace(",", ',"', 1)  # a stray quote on line 3
    with pytest.raises(ManifestError, match=rf"{re.escape(str(path))}:3: .*stray quote"):
        read_paths(real_manifest(lines))
    with pytest.raises(ManifestError, match="UTF-16"):
        read_paths(real_manifest(_sample_head(2), encoding="utf-16"))
    no_path = _csv(tmp_path / "no_path.csv", "file,gender\na.wav,female\n")
    with pytest.raises(ManifestError, match=r"missing column\(s\) \['path'\]"):
        read_paths(no_path)
    with pytest.raises(ManifestError, match="no_path2.csv:3: empty path"):
        read_paths(_csv(tmp_path / "no_path2.csv", "path\na.wav\n \n"))


def test_empty_speaker(tmp_path):
    path = _csv(tmp_path / "m.csv", "path,speaker,gender\na.wav,s1,female\nb.wav, ,male\n")
    _raises_at(path, 3, "empty path or speaker")


def test_group_column_not_in_header(tmp_path):
    path = _csv(tmp_path / "m.csv", "path,speaker,gender\na.wav,s1,female\n")
    with pytest.raises(ManifestError, match=r"group column\(s\) \['corpus'\]"):
        read_manifest(path, ["corpus"])


def test_metadata_join_fills_age_split_and_groups(tmp_path):
    path = _csv(tmp_path / "m.csv", "path,speaker,gender,corpus\n"
                "a.wav,s1,female,\nb.wav,s2,male,own\nc.wav,s3,male,\n")
    meta = _csv(tmp_path / "meta.csv", "path,age,split,corpus,accent\n"
                "a.wav,12,train,vctk,scottish\nb.wav,40,test,libri,irish\n")
    a, b, c = read_manifest(path, ["corpus", "accent"], metadata_path=meta)
    assert (a.age, a.split, a.groups) == (12.0, "train", {"corpus": "vctk", "accent": "scottish"})
    # a value already in the manifest wins over the metadata
    assert (b.age, b.split, b.groups) == (40.0, "test", {"corpus": "own", "accent": "irish"})
    # no metadata row: empty groups, unknown age and split
    assert (c.age, c.split, c.groups) == (None, None, {"corpus": "", "accent": ""})


def test_metadata_values_are_validated_too(tmp_path):
    path = _csv(tmp_path / "m.csv", "path,speaker,gender\na.wav,s1,female\nb.wav,s2,male\n")
    meta = _csv(tmp_path / "meta.csv", "path,split\nb.wav,dev\n")
    _raises_at(path, 3, "split 'dev'", metadata_path=meta)


def test_excel_bom_header(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("path,speaker,gender\na.wav,s1,female\n", encoding="utf-8-sig")
    assert [c.id for c in read_manifest(path)] == ["a.wav"]


def test_write_then_read_round_trip(tmp_path, sample_clips):
    rows = [{"path": str(c.path), "speaker": c.speaker, "gender": c.gender, "id": c.id,
             "age": "" if c.age is None else c.age, **c.groups} for c in sample_clips[:5]]
    path = write_manifest(rows, tmp_path / "out" / "m.csv")
    assert read_manifest(path, SAMPLE_GROUP_COLUMNS) == sample_clips[:5]


# ------------------------------------------------------------- hostile manifests: no row lost without a word

def _sample_head(n_rows: int) -> list[str]:
    """The header and the first ``n_rows`` rows of the bundled sample's manifest (real clips,
    their paths made absolute so the CSV may live in ``tmp_path``)."""
    header, *rows = SAMPLE_MANIFEST_PATH.read_text(encoding="utf-8").splitlines()[:n_rows + 1]
    return [header, *(f"{SAMPLE_MANIFEST_PATH.parent / row.split(',', 1)[0]},{row.split(',', 1)[1]}" for row in rows)]


@pytest.fixture
def real_manifest(tmp_path):
    def _make(lines: list[str], encoding: str = "utf-8") -> Path:
        path = tmp_path / "manifest.csv"
        path.write_text("\n".join(lines) + "\n", encoding=encoding)
        return path

    return _make


def test_a_stray_quote_stops_naming_its_line_and_loses_no_row(real_manifest):
    """The probe's case: a `"` opening row 2 of 5 used to swallow rows 2-5 into one cell."""
    lines = _sample_head(5)
    lines[2] = '"' + lines[2]
    path = real_manifest(lines)
    _raises_at(path, 3, "stray quote", "skip_bad_rows")
    clips = read_manifest(path, skip_bad_rows=True)  # the explicit option: skip it and list it
    assert [c.id for c in clips] == [line.split(",")[0] for line in lines[1:2] + lines[3:]]
    assert all(c.path.is_file() for c in clips)


def test_a_quote_closed_rows_later_is_caught_too(real_manifest):
    """A stray quote that a later quote closes makes a 3-cell row of 3 lines: still an error."""
    lines = ["path,speaker,gender", *(",".join(line.split(",")[:3]) for line in _sample_head(5)[1:])]
    lines[2] = '"' + lines[2]
    lines[4] = lines[4].replace(",", '",', 1)
    path = real_manifest(lines)
    _raises_at(path, 3, "runs from line 3 to 5", "stray quote")
    assert len(read_manifest(path, skip_bad_rows=True)) == 2  # rows 2 and 6; 3-5 listed as one bad row


@pytest.mark.parametrize("edit, fragment", [
    (lambda row: row.rsplit(",", 1)[0], "has 6 cell(s) but the header has 7"),        # a missing cell
    (lambda row: row + ",extra", "has 8 cell(s) but the header has 7"),                 # an extra cell
    (lambda row: row.replace(",", ',"x"', 1), "stray quote"),                         # text after a closing quote
])
def test_a_row_that_does_not_fit_the_header_stops_naming_its_line(real_manifest, caplog, edit, fragment):
    lines = _sample_head(4)
    lines[3] = edit(lines[3])
    path = real_manifest(lines)
    _raises_at(path, 4, fragment)
    with caplog.at_level(logging.WARNING, logger="src.data.manifest"):
        clips = read_manifest(path, skip_bad_rows=True)
    assert len(clips) == 3
    assert "skipped 1 bad row(s)" in caplog.text and f"{path}:4:" in caplog.text, caplog.text


@pytest.mark.parametrize("encoding, fragment", [("utf-16", "UTF-16"), ("latin-1", "not UTF-8")])
def test_a_manifest_that_is_not_utf8_says_what_to_do(real_manifest, encoding, fragment):
    lines = _sample_head(3)
    lines[3] = lines[3].replace("librispeech", "libréspeech")  # é is one byte in Latin-1, not UTF-8
    path = real_manifest(lines, encoding)
    with pytest.raises(ManifestError) as info:
        read_manifest(path)
    msg = str(info.value)
    assert str(path) in msg and fragment in msg and "iconv" in msg, msg
    if encoding == "latin-1":
        assert f"{path}:4:" in msg, msg  # the line of the first bad byte
    assert not isinstance(info.value, UnicodeDecodeError)


def test_bad_value_rows_are_skipped_and_listed_only_when_asked(real_manifest, caplog):
    lines = _sample_head(4)
    lines[2] = lines[2].replace("female", "femme", 1)
    path = real_manifest(lines)
    _raises_at(path, 3, "unknown gender 'femme'")
    with caplog.at_level(logging.WARNING, logger="src.data.manifest"):
        assert len(read_manifest(path, skip_bad_rows=True)) == 3
    assert f"{path}:3: unknown gender" in caplog.text, caplog.text
