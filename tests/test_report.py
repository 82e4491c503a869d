"""``report``: speaking time by voice per file, folder level, age group, grouping column and in total,
with bootstrap intervals, from real predictions of the shipped model on bundled-sample clips."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from src.analysis.speaking_time import BootstrapParams, ReportError, read_predictions, summarise
from src.cli import UsageError
from src.inference.outputs import write_results
from src.inference.sharded import result_from_record
from src.predict import run_predict
from src.report import run_report

from conftest import CLI_TIMEOUT_S, REPO_DIR, clip_row

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def predicted(tmp_path_factory, sample_clips, manifest_of, make_cfg):
    """The two shortest clips of each corpus of the sample, their manifest (speaker, corpus) and the
    shipped model's predictions of them as JSONL and as CSV."""
    root = tmp_path_factory.mktemp("report")
    by_corpus: dict[str, list] = {}
    for c in sorted(sample_clips, key=lambda c: (c.groups["corpus"], Path(c.path).stat().st_size)):
        by_corpus.setdefault(c.groups["corpus"], []).append(c)
    clips = [c for group in by_corpus.values() for c in group[:2]]
    assert len(by_corpus) >= 3
    manifest = manifest_of([], root / "manifest.csv", [clip_row(c, corpus=c.groups["corpus"]) for c in clips])
    jsonl = root / "pred.jsonl"
    assert run_predict(make_cfg(f"input={manifest}", f"output={jsonl}", "num_workers=1",
                                config_name="predict")) == len(clips)
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    csv_path = root / "pred.csv"
    with open(csv_path, "w", newline="") as f:
        write_results([result_from_record({"id": "", **r}) for r in records], "csv", f)
    return {"root": root, "manifest": manifest, "jsonl": jsonl, "csv": csv_path, "records": records,
            "clips": clips, "corpora": sorted(by_corpus)}


def _report(make_cfg, *overrides: str):
    from hydra import compose, initialize_config_module

    with initialize_config_module(version_base="1.3", config_module="conf"):
        return run_report(compose("report", overrides=list(overrides)))


def test_report_tables_add_up_to_the_predictions(predicted, make_cfg, tmp_path):
    out = tmp_path / "rep"
    rep = _report(make_cfg, f"input={predicted['jsonl']}", f"manifest={predicted['manifest']}", "by=corpus",
                  f"output_dir={out}")
    recs = {r["path"]: r for r in predicted["records"]}
    # per file: the timeline's seconds per voice
    for _, row in rep.files.iterrows():
        spoken = recs[row.path]["speaking_time_s"]
        assert (row.female_s, row.male_s, row.unknown_s) == tuple(spoken.get(v, 0.0) for v in ("female", "male",
                                                                                                   "unknown"))
    total = rep.total.iloc[0]
    for col in ("female_s", "male_s", "unknown_s"):
        expected = sum(r["speaking_time_s"].get(col[:-2], 0.0) for r in predicted["records"])
        assert total[col] == pytest.approx(expected, abs=1e-3)
        # each folder level and the grouping column partition the total
        for level, part in rep.folders.groupby("level"):
            assert part[col].sum() == pytest.approx(expected, abs=1e-2), level
        assert rep.by[col].sum() == pytest.approx(expected, abs=1e-2)
    assert sorted(rep.by.corpus) == predicted["corpora"]
    assert rep.unit == "speakers" and total.units == len({c.speaker for c in predicted["clips"]})
    share = total.female_s / (total.female_s + total.male_s)
    assert total.female_share == pytest.approx(share, abs=1e-4)
    assert 0 <= total.share_low <= share <= total.share_high <= 1 and total.share_low < total.share_high
    assert rep.age_groups is not None and rep.age_groups.files.sum() == len(predicted["records"])
    png = out / "by_corpus.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    assert json.loads((out / "total.json").read_text())["interval_unit"] == "speakers"
    assert len(pd.read_csv(out / "files.csv")) == len(predicted["records"])

    # predict's CSV gives the same totals (and without a manifest, files are the resampling unit)
    from_csv = _report(make_cfg, f"input={predicted['csv']}", f"output_dir={tmp_path / 'csv'}")
    assert from_csv.unit == "files"
    for col in ("female_s", "male_s", "unknown_s", "female_share"):
        assert from_csv.total.iloc[0][col] == pytest.approx(total[col], abs=1e-3)


def test_without_a_timeline_a_files_speech_goes_to_its_label(predicted, tmp_path):
    path = tmp_path / "no-timeline.jsonl"
    records = [{**r, "speaking_time_s": {}, "timeline": []} for r in predicted["records"]]
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    files = read_predictions(path).set_index("path")
    for r in records:
        voice = r["label"] if r["status"] == "ok" and r["label"] in ("female", "male") else "unknown"
        assert files.loc[r["path"], f"{voice}_s"] == r["speech_s"]
        assert files.loc[r["path"], ["female_s", "male_s", "unknown_s"]].sum() == r["speech_s"]


def test_speaker_bootstrap_is_wider_than_file_bootstrap_when_one_speaker_talks_most(monkeypatch):
    """Twenty files of one woman and one file each of ten men: the files are not twenty independent
    voices, and resampling speakers says so."""
    rows = [{"path": f"/a/w{i}.wav", "speaker": "w", "female_s": 10.0, "male_s": 0.0, "unknown_s": 0.0}
            for i in range(20)]
    rows += [{"path": f"/a/m{i}.wav", "speaker": f"m{i}", "female_s": 0.0, "male_s": 20.0, "unknown_s": 0.0}
             for i in range(10)]
    df = pd.DataFrame(rows)
    params = BootstrapParams(n_boot=2000)
    by_speaker = summarise(df, [], params, "speaker").iloc[0]
    by_file = summarise(df, [], params, None).iloc[0]
    assert by_speaker.female_share == by_file.female_share == 0.5
    assert (by_speaker.units, by_file.units) == (11, 30)
    assert by_speaker.share_high - by_speaker.share_low > 2 * (by_file.share_high - by_file.share_low)
    assert np.isclose(summarise(df, [], BootstrapParams(n_boot=2000), "speaker").iloc[0].share_low,
                      by_speaker.share_low)  # seeded: the same interval twice
    import src.analysis.speaking_time as st

    monkeypatch.setattr(st, "DRAWS_PER_BLOCK", 7 * 11)  # 7 resamples at a time: the same draws, in blocks
    blocked = summarise(df, [], params, "speaker").iloc[0]
    assert (blocked.share_low, blocked.share_high) == (by_speaker.share_low, by_speaker.share_high)


def test_bad_input_is_one_usage_line(predicted, make_cfg, tmp_path):
    with pytest.raises(UsageError, match="by=year: no such column; .*corpus"):
        _report(make_cfg, f"input={predicted['jsonl']}", f"manifest={predicted['manifest']}", "by=year",
                f"output_dir={tmp_path / 'a'}")
    with pytest.raises(UsageError, match="speakers: no 'speaker' column"):
        _report(make_cfg, f"input={predicted['jsonl']}", "bootstrap_unit=speakers", f"output_dir={tmp_path / 'b'}")
    other = tmp_path / "other.csv"
    other.write_text("path,year\n/elsewhere/x.wav,1990\n")
    with pytest.raises(UsageError, match="none of the predictions' paths"):
        _report(make_cfg, f"input={predicted['jsonl']}", f"manifest={other}", f"output_dir={tmp_path / 'c'}")
    with pytest.raises(ReportError, match="not a JSON line"):
        bad = tmp_path / "bad.jsonl"
        bad.write_text("{\"path\": 1, \"label\": \"male\"}\nnot json\n")
        read_predictions(bad)
    text = tmp_path / "pred.txt"
    text.write_text("female\n")
    with pytest.raises(ReportError, match=r"\.jsonl or \.csv"):
        read_predictions(text)
    with pytest.raises(ReportError, match="no such file"):
        read_predictions(tmp_path)  # a folder
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run([sys.executable, "-m", "src.report", f"input={tmp_path / 'missing.jsonl'}",
                           f"hydra.run.dir={tmp_path / 'log'}"], cwd=REPO_DIR, env=env, capture_output=True,
                          text=True, timeout=CLI_TIMEOUT_S)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip().count("\n") == 0 and "no such file" in proc.stderr
