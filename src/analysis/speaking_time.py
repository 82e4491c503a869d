"""Speaking time of women and men across an archive, from ``predict``'s results.

Each file's speech is split by voice: its timeline's ``speaking_time_s`` (female / male / unknown
seconds) where ``predict`` ran with the timeline, else all its speech under its label (``mixed``
without a timeline cannot happen; ``unknown``, ``no_speech`` and ``error`` count as unknown). Shares
are ``female_s / (female_s + male_s)``: unknown speech is reported, not guessed.

Tables: per file, per folder at every depth under the inputs' common folder, per age group (where the
model answers one), per value of a grouping column (``by``, from the predictions or a joined
manifest) and in total. Each share has a bootstrap interval: resampling speakers when a ``speaker``
column exists (files of one speaker are not independent), else files.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

VOICES = ("female", "male", "unknown")
TIME_COLUMNS = tuple(f"{v}_s" for v in VOICES)
DRAWS_PER_BLOCK = 4_000_000  # bootstrap indices held at once (32 MB): 100,000 files resample 40 at a time


class ReportError(ValueError):
    """Predictions or options the report cannot use (the message says what to change)."""


@dataclass(frozen=True)
class BootstrapParams:
    """How intervals are drawn: ``n_boot`` resamples, ``confidence`` (two-sided), ``unit`` ``auto``
    (speakers when a ``speaker`` column exists, else files), ``speakers`` or ``files``."""

    n_boot: int = 1000
    confidence: float = 0.95
    unit: str = "auto"
    seed: int = 0

    def __post_init__(self):
        if self.n_boot < 1:
            raise ReportError(f"n_boot={self.n_boot}: at least 1 resample")
        if not 0 < self.confidence < 1:
            raise ReportError(f"confidence={self.confidence}: between 0 and 1 (e.g. 0.95)")
        if self.unit not in ("auto", "speakers", "files"):
            raise ReportError(f"bootstrap_unit={self.unit}: auto, speakers or files")


def _voice_times(rec: dict) -> dict[str, float]:
    """Seconds of speech per voice of one predictions record (JSONL dict or CSV row)."""
    spoken = rec.get("speaking_time_s")
    if isinstance(spoken, str):  # a CSV cell
        spoken = json.loads(spoken) if spoken.strip() else None
    if not spoken and any(rec.get(f"speaking_time_{v}_s") not in (None, "") for v in VOICES):
        spoken = {v: float(rec.get(f"speaking_time_{v}_s") or 0.0) for v in VOICES}
    if spoken:
        return {f"{v}_s": float(spoken.get(v, 0.0)) for v in VOICES}
    speech_s = float(rec.get("speech_s") or 0.0)
    label = rec.get("label") if rec.get("status") in ("ok", None, "") else "unknown"
    voice = label if label in ("female", "male") else "unknown"
    return {f"{v}_s": speech_s if v == voice else 0.0 for v in VOICES}


def read_predictions(path: str | Path) -> pd.DataFrame:
    """One row per file of a ``predict`` output (``.jsonl`` or ``.csv``): ``path``, ``label``, ``status``,
    ``age_group`` and the seconds ``female_s``, ``male_s``, ``unknown_s``.

    Raises:
        ReportError: no such file, another format, no ``path`` column, or a line that is not a record.
    """
    path = Path(path)
    if not path.is_file():
        raise ReportError(f"input={path}: no such file (give predict's output: .jsonl or .csv)")
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        records = []
        with open(path, encoding="utf-8") as f:
            for line_no, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except ValueError:
                    raise ReportError(f"{path}:{line_no}: not a JSON line (is this predict's output?)") from None
                if not isinstance(rec, dict):
                    raise ReportError(f"{path}:{line_no}: not a JSON object (is this predict's output?)")
                records.append(rec)
    elif suffix == ".csv":
        with open(path, encoding="utf-8", newline="") as f:
            records = list(csv.DictReader(f))
    else:
        raise ReportError(f"input={path}: a predictions file is .jsonl or .csv (predict format=jsonl or csv), "
                          f"not {suffix or 'a file without extension'}")
    if not records:
        raise ReportError(f"input={path}: no predictions in it")
    if any("path" not in r or "label" not in r for r in records):
        raise ReportError(f"input={path}: every record needs 'path' and 'label' (predict format=jsonl or csv)")
    rows = [{"path": str(r["path"]), "label": r["label"], "status": r.get("status") or "ok",
             "age_group": r.get("age_group") or None, **_voice_times(r)} for r in records]
    return pd.DataFrame(rows)


def join_manifest(pred: pd.DataFrame, table: Sequence[dict[str, str]]) -> pd.DataFrame:
    """Add a manifest's columns (speaker, year, channel ...) to the predictions, matched on ``path``.

    Raises:
        ReportError: no prediction's path is in the manifest.
    """
    extra = pd.DataFrame(list(table))
    extra = extra.drop(columns=[c for c in extra.columns if c != "path" and c in pred.columns])
    joined = pred.merge(extra.drop_duplicates("path"), on="path", how="left", indicator=True)
    if not (joined["_merge"] == "both").any():
        raise ReportError("manifest: none of the predictions' paths is in it (give the manifest predict read)")
    return joined.drop(columns="_merge")


def _share(female_s: np.ndarray, male_s: np.ndarray) -> np.ndarray:
    total = female_s + male_s
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, female_s / np.where(total > 0, total, 1.0), np.nan)


def bootstrap_share(df: pd.DataFrame, params: BootstrapParams, unit_column: str | None) -> tuple[float, float, int]:
    """The female share's interval: resample units (``unit_column``'s values, else rows) with
    replacement, ``params.n_boot`` times; returns (low, high, number of units)."""
    units = df[unit_column].fillna("").astype(str).to_numpy() if unit_column else np.arange(len(df)).astype(str)
    keys, idx = np.unique(units, return_inverse=True)
    female = np.bincount(idx, weights=df["female_s"].to_numpy(float), minlength=len(keys))
    male = np.bincount(idx, weights=df["male_s"].to_numpy(float), minlength=len(keys))
    if len(keys) == 0 or female.sum() + male.sum() == 0:
        return float("nan"), float("nan"), len(keys)
    rng = np.random.default_rng(params.seed)
    per_block = max(1, DRAWS_PER_BLOCK // len(keys))  # resamples drawn at once: memory stays bounded
    shares = []
    for start in range(0, params.n_boot, per_block):
        draws = rng.integers(0, len(keys), size=(min(per_block, params.n_boot - start), len(keys)))
        shares.append(_share(female[draws].sum(axis=1), male[draws].sum(axis=1)))
    shares = np.concatenate(shares)
    tail = (1 - params.confidence) / 2 * 100
    low, high = np.nanpercentile(shares, [tail, 100 - tail])
    return float(low), float(high), len(keys)


def summarise(df: pd.DataFrame, group_columns: Sequence[str], params: BootstrapParams,
              unit_column: str | None, progress: bool = False) -> pd.DataFrame:
    """Seconds per voice, the female share and its interval, per group (no columns: one total row)."""
    from tqdm import tqdm

    groups = df.groupby(list(group_columns), dropna=False, sort=True) if group_columns else [((), df)]
    rows = []
    for key, part in tqdm(groups, total=len(groups), unit="group", desc=f"bootstrap {', '.join(group_columns)}",
                          disable=not progress or len(groups) < 200):
        key = key if isinstance(key, tuple) else (key,)
        sums = {c: round(float(part[c].sum()), 3) for c in TIME_COLUMNS}
        share = _share(np.array([sums["female_s"]]), np.array([sums["male_s"]]))[0]
        low, high, n_units = bootstrap_share(part, params, unit_column)
        rows.append({**dict(zip(group_columns, key)), "files": len(part), "units": n_units, **sums,
                     "female_share": round(float(share), 4), "share_low": round(low, 4), "share_high": round(high, 4)})
    return pd.DataFrame(rows)


def folder_levels(paths: Sequence[str]) -> pd.DataFrame:
    """For each path, its folder at each depth under the paths' common folder: columns ``level_1`` ...
    (``a``, ``a/b`` ...; empty where a file sits higher)."""
    parents = [Path(p).parent for p in paths]
    root = Path(os.path.commonpath([str(p) for p in parents])) if parents else Path(".")
    rel = [p.relative_to(root).parts if p.is_relative_to(root) else p.parts for p in parents]
    depth = max((len(r) for r in rel), default=0)
    return pd.DataFrame({f"level_{d}": ["/".join(r[:d]) if len(r) >= d else "" for r in rel]
                         for d in range(1, depth + 1)}, index=range(len(paths)))


@dataclass
class SpeakingTimeReport:
    """The tables of a report (pandas frames) and which resampling unit its intervals used."""

    files: pd.DataFrame
    folders: pd.DataFrame
    total: pd.DataFrame
    unit: str
    age_groups: pd.DataFrame | None = None
    by: pd.DataFrame | None = None
    by_column: str | None = None


def speaking_time_report(pred: pd.DataFrame, params: BootstrapParams = BootstrapParams(),
                         by: str | None = None, progress: bool = False) -> SpeakingTimeReport:
    """Every table of the report from :func:`read_predictions` (perhaps :func:`join_manifest`-ed).

    Raises:
        ReportError: ``by`` is not a column; speakers asked for without a ``speaker`` column.
    """
    if by is not None and by not in pred.columns:
        raise ReportError(f"by={by}: no such column; the predictions (and manifest) have "
                          f"{', '.join(c for c in pred.columns if c not in TIME_COLUMNS)}")
    has_speaker = "speaker" in pred.columns and pred["speaker"].notna().any()
    if params.unit == "speakers" and not has_speaker:
        raise ReportError("bootstrap_unit=speakers: no 'speaker' column (join a manifest with one: manifest=...)")
    unit_column = "speaker" if params.unit == "speakers" or (params.unit == "auto" and has_speaker) else None
    files = pred[["path", "label", "status", "age_group", *TIME_COLUMNS]].copy()
    files["female_share"] = _share(files["female_s"].to_numpy(float), files["male_s"].to_numpy(float)).round(4)
    levels = folder_levels(pred["path"].tolist())
    folder_tables = []
    for col in levels.columns:
        with_level = pred.assign(folder=levels[col].to_numpy())
        table = summarise(with_level[with_level["folder"] != ""], ["folder"], params, unit_column, progress)
        folder_tables.append(table.assign(level=int(col.split("_")[1])))
    folders = (pd.concat(folder_tables, ignore_index=True)[["level", *folder_tables[0].columns[:-1]]]
               if folder_tables else pd.DataFrame())
    ages = None
    if pred["age_group"].notna().any():
        ages = summarise(pred.assign(age_group=pred["age_group"].fillna("unknown")), ["age_group"], params,
                         unit_column)
    by_table = summarise(pred, [by], params, unit_column, progress) if by else None
    return SpeakingTimeReport(files=files, folders=folders, total=summarise(pred, [], params, unit_column),
                              unit=unit_column + "s" if unit_column else "files", age_groups=ages, by=by_table,
                              by_column=by)


def plot_by(table: pd.DataFrame, column: str, path: Path, confidence: float) -> Path:
    """The female share per value of ``column`` with its interval, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = np.arange(len(table))
    share = table["female_share"].to_numpy(float)
    low = np.clip(share - table["share_low"].to_numpy(float), 0, None)
    high = np.clip(table["share_high"].to_numpy(float) - share, 0, None)
    fig, ax = plt.subplots(figsize=(max(4.0, 0.6 * len(table) + 2), 3.5))
    ax.errorbar(x, share, yerr=[low, high], fmt="o-", capsize=3)
    ax.set_xticks(x, [str(v) for v in table[column]], rotation=45 if len(table) > 6 else 0, ha="right")
    ax.set_ylim(0, 1)
    ax.axhline(0.5, color="grey", lw=0.8, ls=":")
    ax.set_xlabel(column)
    ax.set_ylabel(f"women's share of speaking time ({confidence:.0%} interval)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_report(report: SpeakingTimeReport, out_dir: Path, confidence: float) -> list[Path]:
    """The tables as CSV, the total as JSON and (with ``by``) the plot; returns the files written."""
    from src.data.files import atomic_write, write_json_atomic

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    tables = {"files": report.files, "folders": report.folders, "total": report.total,
              "age_groups": report.age_groups, f"by_{report.by_column}": report.by}
    for name, table in tables.items():
        if table is None:
            continue
        path = out_dir / f"{name}.csv"
        with atomic_write(path, newline="") as f:
            table.to_csv(f, index=False)
        written.append(path)
    total = report.total.iloc[0].to_dict()
    write_json_atomic(out_dir / "total.json", {**total, "interval_unit": report.unit, "confidence": confidence})
    written.append(out_dir / "total.json")
    if report.by is not None:
        written.append(plot_by(report.by, report.by_column, out_dir / f"by_{report.by_column}.png", confidence))
    return written


def _duration(seconds: float) -> str:
    return f"{seconds / 3600:.2f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


def summary_line(report: SpeakingTimeReport, confidence: float) -> str:
    """One sentence of the total."""
    t = report.total.iloc[0]
    return (f"{int(t['files'])} files: women {_duration(t['female_s'])}, men {_duration(t['male_s'])}, unknown "
            f"{_duration(t['unknown_s'])}; women's share {t['female_share']:.1%} ({confidence:.0%} interval "
            f"{t['share_low']:.1%} to {t['share_high']:.1%}, resampling {int(t['units'])} {report.unit})")
