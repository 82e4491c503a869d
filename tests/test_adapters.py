"""Corpus adapters on tiny fake trees built from real sample audio, in the real table formats."""

from __future__ import annotations

import csv
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from src.data.adapters import commonvoice_manifest, folder_manifest, librispeech_manifest, vctk_manifest
from src.data.manifest import ManifestError, read_manifest
from src.prepare import prepare

REPO_DIR = Path(__file__).resolve().parents[1]
SAMPLE_AUDIO_DIR = REPO_DIR / "data" / "sample" / "audio"


def _real_audio(index: int = 0) -> Path:
    """The ``index``-th sample flac (cycling), so every fake clip is real audio."""
    files = sorted(SAMPLE_AUDIO_DIR.glob("**/*.flac"))
    assert files, f"no sample audio under {SAMPLE_AUDIO_DIR}"
    return files[index % len(files)]


def _place(dest: Path, index: int = 0) -> Path:
    """Copy a real sample clip to ``dest`` (whatever its suffix), creating folders."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_real_audio(index), dest)
    return dest


def _check_manifest(out_path: Path, rows: list[dict[str, str]]) -> None:
    """Rows are sorted, their relative paths resolve to files, and read_manifest accepts the CSV."""
    assert [r["path"] for r in rows] == sorted(r["path"] for r in rows)
    for r in rows:
        assert not Path(r["path"]).is_absolute()
        assert (out_path.parent / r["path"]).is_file(), r["path"]
    clips = read_manifest(out_path)
    assert len(clips) == len(rows)
    assert all(c.path.is_file() for c in clips)


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


# --------------------------------------------------------------------------- LibriSpeech

LIBRISPEECH_SPEAKERS = """\
; Some speakers were recorded more than once; see the LibriSpeech README.
;ID  |SEX| SUBSET           |MINUTES| NAME
14   | F | train-clean-360  | 25.03 | Kristin LeMoine
60   | M | train-clean-100  | 20.18 | |CBW|Simon
1069 | F | dev-clean        | 8.07  | Sample Reader
118  | M | train-clean-100  | 25.00 | Another Reader
"""


@pytest.fixture
def librispeech_dir(tmp_path: Path) -> Path:
    """``LibriSpeech/{dev-clean,train-clean-100}`` with SPEAKERS.TXT, plus an unlisted speaker."""
    root = tmp_path / "corpus" / "LibriSpeech"
    root.mkdir(parents=True)
    (root / "SPEAKERS.TXT").write_text(LIBRISPEECH_SPEAKERS, encoding="utf-8")
    (root / "CHAPTERS.TXT").write_text(";ID |READER| MINUTES| SUBSET\n", encoding="utf-8")
    _place(root / "dev-clean" / "1069" / "133699" / "1069-133699-0000.flac", 0)
    _place(root / "dev-clean" / "1069" / "133699" / "1069-133699-0001.flac", 1)
    _place(root / "train-clean-100" / "118" / "121721" / "118-121721-0000.flac", 2)
    _place(root / "train-clean-100" / "60" / "121082" / "60-121082-0000.flac", 3)
    _place(root / "train-clean-100" / "9999" / "1" / "9999-1-0000.flac", 4)  # not in SPEAKERS.TXT
    return root


def test_librispeech_parent_folder(librispeech_dir: Path, tmp_path: Path,
                                   caplog: pytest.LogCaptureFixture) -> None:
    out_path = tmp_path / "manifests" / "librispeech.csv"  # outside the corpus tree
    with caplog.at_level(logging.INFO, logger="src.data.adapters"):
        rows = librispeech_manifest(librispeech_dir, out_path)
    _check_manifest(out_path, rows)
    assert [(r["speaker"], r["gender"], r["subset"]) for r in rows] == [
        ("librispeech-1069", "female", "dev-clean"),
        ("librispeech-1069", "female", "dev-clean"),
        ("librispeech-118", "male", "train-clean-100"),
        ("librispeech-60", "male", "train-clean-100"),  # NAME with '|' in it
    ]
    assert {r["corpus"] for r in rows} == {"librispeech"}
    assert rows[0]["path"] == "../corpus/LibriSpeech/dev-clean/1069/133699/1069-133699-0000.flac"
    assert "9999" in caplog.text  # the unlisted speaker is named in a warning
    assert "female: 2 clips / 1 speakers, male: 2 clips / 2 speakers" in caplog.text
    assert _read_csv(out_path)[0].keys() >= {"path", "speaker", "gender", "corpus", "subset"}


def test_librispeech_subset_folder(librispeech_dir: Path, tmp_path: Path) -> None:
    out_path = tmp_path / "dev.csv"
    rows = librispeech_manifest(librispeech_dir / "dev-clean", out_path)  # SPEAKERS.TXT in parent
    _check_manifest(out_path, rows)
    assert {r["speaker"] for r in rows} == {"librispeech-1069"}
    assert {r["subset"] for r in rows} == {"dev-clean"}


def test_librispeech_errors(librispeech_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="root not found"):
        librispeech_manifest(tmp_path / "nowhere", tmp_path / "x.csv")
    (librispeech_dir / "SPEAKERS.TXT").unlink()
    with pytest.raises(ManifestError, match="SPEAKERS.TXT not found"):
        librispeech_manifest(librispeech_dir, tmp_path / "x.csv")
    (librispeech_dir / "SPEAKERS.TXT").write_text("14 | X | dev-clean | 1.0 | Nobody\n")
    with pytest.raises(ManifestError, match=r"SPEAKERS.TXT:1: .*SEX F or M"):
        librispeech_manifest(librispeech_dir, tmp_path / "x.csv")
    assert not (tmp_path / "x.csv").exists()


# --------------------------------------------------------------------------- VCTK

VCTK_SPEAKERS_092 = """\
ID  AGE  GENDER  ACCENTS  REGION COMMENTS 
p225  23  F    English    Southern  England
p226  22  M    English    Surrey
p227  38  M    English    Cumbria
p280  25  F    France  (mic2 files unavailable)
"""

VCTK_SPEAKERS_OLD = """\
ID  AGE  GENDER  ACCENTS  REGION
225  23  F    English    Southern  England
226  22  M    English    Surrey
"""


def _vctk_092(root: Path) -> Path:
    """VCTK 0.92: ``wav48_silence_trimmed/<spk>/<spk>_<nnn>_mic{1,2}.flac``."""
    (root).mkdir(parents=True)
    (root / "speaker-info.txt").write_text(VCTK_SPEAKERS_092, encoding="utf-8")
    audio_dir = root / "wav48_silence_trimmed"
    for i, (spk, utt) in enumerate([("p225", "001"), ("p225", "002"), ("p226", "001"),
                                    ("p227", "003")]):
        for mic in ("mic1", "mic2"):
            _place(audio_dir / spk / f"{spk}_{utt}_{mic}.flac", i)
    _place(audio_dir / "p280" / "p280_001_mic1.flac", 5)  # p280 has no mic2 files
    (audio_dir / "p225" / "log.txt").write_text("not audio\n")
    return root


def test_vctk_092(tmp_path: Path) -> None:
    root = _vctk_092(tmp_path / "VCTK-Corpus-0.92")
    out_path = tmp_path / "vctk.csv"
    rows = vctk_manifest(root, out_path)
    _check_manifest(out_path, rows)
    assert [(r["speaker"], r["gender"], r["age"], r["accent"]) for r in rows] == [
        ("vctk-p225", "female", "23", "English"),
        ("vctk-p225", "female", "23", "English"),
        ("vctk-p226", "male", "22", "English"),
        ("vctk-p227", "male", "38", "English"),
        ("vctk-p280", "female", "25", "France"),
    ]
    assert all(r["path"].endswith("_mic1.flac") for r in rows)
    assert {r["corpus"] for r in rows} == {"vctk"}
    assert [c.age for c in read_manifest(out_path)][:3] == [23.0, 23.0, 22.0]

    rows_mic2 = vctk_manifest(root, tmp_path / "vctk-mic2.csv", mic="mic2")
    assert len(rows_mic2) == 4 and all(r["path"].endswith("_mic2.flac") for r in rows_mic2)


def test_vctk_old_layout(tmp_path: Path) -> None:
    root = tmp_path / "VCTK-Corpus"
    root.mkdir()
    (root / "speaker-info.txt").write_text(VCTK_SPEAKERS_OLD, encoding="utf-8")
    _place(root / "wav48" / "p225" / "p225_001.wav", 0)
    _place(root / "wav48" / "p226" / "p226_001.wav", 1)
    out_path = root / "manifest.csv"  # inside the corpus this time
    rows = vctk_manifest(root, out_path)
    _check_manifest(out_path, rows)
    assert [(r["path"], r["speaker"], r["gender"]) for r in rows] == [
        ("wav48/p225/p225_001.wav", "vctk-p225", "female"),
        ("wav48/p226/p226_001.wav", "vctk-p226", "male"),
    ]


def test_vctk_errors(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="root not found"):
        vctk_manifest(tmp_path / "nowhere", tmp_path / "x.csv")
    root = _vctk_092(tmp_path / "vctk")
    with pytest.raises(ManifestError, match="no usable clip"):
        vctk_manifest(root, tmp_path / "x.csv", mic="mic3")
    (root / "speaker-info.txt").unlink()
    with pytest.raises(ManifestError, match="speaker table not found"):
        vctk_manifest(root, tmp_path / "x.csv")


# --------------------------------------------------------------------------- Common Voice

CV_COLUMNS = ["client_id", "path", "sentence_id", "sentence", "sentence_domain", "up_votes",
              "down_votes", "age", "gender", "accents", "variant", "locale", "segment"]
CLIENT_A = "a" * 12 + "0123456789" * 11 + "abcdef"  # 128 hex chars, like a real client_id
CLIENT_B = "b" * 12 + "9" * 116
CLIENT_C = "c" * 12 + "7" * 116
CLIENT_D = "d" * 12 + "5" * 116


def _cv_release(root: Path) -> Path:
    """A Common Voice release: ``clips/*.mp3`` + ``validated.tsv``, both gender vocabularies."""
    table = [  # client, clip, sentence (with a stray quote, as in real TSVs), age, gender
        (CLIENT_A, "common_voice_en_100.mp3", '"Hello, he said. Stray quote', "twenties", "male"),
        (CLIENT_A, "common_voice_en_101.mp3", "Second one.", "twenties", "male"),
        (CLIENT_B, "common_voice_en_200.mp3", "Third one.", "fourties", "female_feminine"),
        (CLIENT_C, "common_voice_en_300.mp3", "Fourth one.", "", "male_masculine"),
        (CLIENT_D, "common_voice_en_400.mp3", "Dropped.", "teens", "other"),
        (CLIENT_D, "common_voice_en_401.mp3", "Dropped.", "teens", "non-binary"),
        (CLIENT_D, "common_voice_en_402.mp3", "Dropped.", "", ""),
        (CLIENT_D, "common_voice_en_403.mp3", "Dropped.", "sixties", "do_not_wish_to_say"),
        (CLIENT_B, "common_voice_en_999.mp3", "Clip not downloaded.", "fourties", "female"),
    ]
    root.mkdir(parents=True)
    lines = ["\t".join(CV_COLUMNS)]
    for i, (client, clip, sentence, age, gender) in enumerate(table):
        if clip != "common_voice_en_999.mp3":
            _place(root / "clips" / clip, i)
        values = dict.fromkeys(CV_COLUMNS, "")
        values.update(client_id=client, path=clip, sentence_id=f"s{i}", sentence=sentence,
                      up_votes="2", down_votes="0", age=age, gender=gender,
                      accents="England English" if i == 0 else "", locale="en")
        lines.append("\t".join(values[c] for c in CV_COLUMNS))
    (root / "validated.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def test_commonvoice_release(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = _cv_release(tmp_path / "cv-corpus-17.0" / "en")
    out_path = tmp_path / "cv.csv"
    with caplog.at_level(logging.INFO, logger="src.data.adapters"):
        rows = commonvoice_manifest(root, out_path)
    _check_manifest(out_path, rows)
    assert [(r["speaker"], r["gender"], r["age"], r["age_group"]) for r in rows] == [
        ("cv-aaaaaaaaaaaa", "male", "", "twenties"),
        ("cv-aaaaaaaaaaaa", "male", "", "twenties"),
        ("cv-bbbbbbbbbbbb", "female", "", "fourties"),
        ("cv-cccccccccccc", "male", "", ""),
    ]
    assert rows[0]["path"] == "cv-corpus-17.0/en/clips/common_voice_en_100.mp3"
    assert rows[0]["accent"] == "England English"
    assert "dropped 4 row(s) whose gender is neither male nor female" in caplog.text
    assert "dropped 1 row(s) whose clip is missing" in caplog.text
    assert all(c.age is None for c in read_manifest(out_path, group_columns=["age_group"]))


def test_commonvoice_kaggle_csv(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = tmp_path / "common-voice"
    root.mkdir()
    table = [("cv-valid-train/sample-000000.mp3", "twenties", "female"),
             ("cv-valid-train/sample-000001.mp3", "", ""),
             ("cv-valid-train/sample-000002.mp3", "sixties", "male"),
             ("cv-valid-train/sample-000003.mp3", "thirties", "other")]
    with open(root / "cv-valid-train.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["filename", "text", "up_votes", "down_votes", "age", "gender", "accent",
                    "duration"])
        for i, (clip, age, gender) in enumerate(table):
            _place(root / clip, i)
            w.writerow([clip, 'a "quoted", text', 1, 0, age, gender, "us" if gender else "", ""])
    out_path = tmp_path / "kaggle.csv"
    with caplog.at_level(logging.INFO, logger="src.data.adapters"):
        rows = commonvoice_manifest(root, out_path, tsv="cv-valid-train.csv")
    _check_manifest(out_path, rows)
    assert [(r["speaker"], r["gender"], r["age_group"], r["accent"]) for r in rows] == [
        ("cv-sample-000000", "female", "twenties", "us"),
        ("cv-sample-000002", "male", "sixties", "us"),
    ]
    assert "speaker-disjoint splits are impossible" in caplog.text
    assert "dropped 2 row(s)" in caplog.text


def test_commonvoice_errors(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="root not found"):
        commonvoice_manifest(tmp_path / "nowhere", tmp_path / "x.csv")
    root = _cv_release(tmp_path / "cv")
    with pytest.raises(ManifestError, match="table not found"):
        commonvoice_manifest(root, tmp_path / "x.csv", tsv="train.tsv")
    (root / "other.tsv").write_text("sentence\tsource\nHi.\tme\n", encoding="utf-8")
    with pytest.raises(ManifestError, match="expected a Common Voice TSV"):
        commonvoice_manifest(root, tmp_path / "x.csv", tsv="other.tsv")


# --------------------------------------------------------------------------- plain folders

def _folder_tree(root: Path) -> Path:
    """``<root>/<gender>/<speaker>/...`` with mixed spellings, a stray folder and a stray file."""
    _place(root / "female" / "alice" / "a1.flac", 0)
    _place(root / "female" / "alice" / "session2" / "a2.wav", 1)
    _place(root / "F" / "carol" / "c1.ogg", 2)
    _place(root / "male" / "bob" / "b1.mp3", 3)
    _place(root / "unsorted" / "dave" / "d1.flac", 4)  # not a gender: skipped
    (root / "male" / "bob" / "notes.txt").write_text("not audio\n")
    return root


def test_folder(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = _folder_tree(tmp_path / "my-corpus")
    out_path = tmp_path / "folder.csv"
    with caplog.at_level(logging.INFO, logger="src.data.adapters"):
        rows = folder_manifest(root, out_path)
    _check_manifest(out_path, rows)
    assert [(r["path"], r["speaker"], r["gender"]) for r in rows] == [
        ("my-corpus/F/carol/c1.ogg", "carol", "female"),
        ("my-corpus/female/alice/a1.flac", "alice", "female"),
        ("my-corpus/female/alice/session2/a2.wav", "alice", "female"),
        ("my-corpus/male/bob/b1.mp3", "bob", "male"),
    ]
    assert "unsorted" in caplog.text


def test_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="root not found"):
        folder_manifest(tmp_path / "nowhere", tmp_path / "x.csv")
    _place(tmp_path / "flat" / "misc" / "spk" / "x.flac")
    with pytest.raises(ManifestError, match="no usable clip"):
        folder_manifest(tmp_path / "flat", tmp_path / "x.csv")


# --------------------------------------------------------------------------- entry point

def test_prepare_unknown_source(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="librispeech, vctk, commonvoice, folder"):
        prepare("timit", tmp_path, tmp_path / "x.csv")


def test_prepare_entry_point(tmp_path: Path) -> None:
    root = _folder_tree(tmp_path / "my-corpus")
    out_path = tmp_path / "out" / "manifest.csv"
    result = subprocess.run(
        [sys.executable, "-m", "src.prepare", "source=folder", f"root={root}", f"out={out_path}"],
        cwd=REPO_DIR, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    rows = _read_csv(out_path)
    assert [r["speaker"] for r in rows] == ["carol", "alice", "alice", "bob"]
    assert len(read_manifest(out_path)) == 4
    assert "wrote 4 clips" in result.stdout
    assert not (REPO_DIR / "prepare.log").exists()  # no log file dropped in the cwd


def test_prepare_help() -> None:
    result = subprocess.run([sys.executable, "-m", "src.prepare", "--help"],
                            cwd=REPO_DIR, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "librispeech | vctk | commonvoice | folder" in result.stdout  # the verb's own options, one line each
    assert "mic1 | mic2" in result.stdout
