"""Misclassified clips copied where people can listen to them, with an index."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pandas as pd

from src.labels import SPLITS

log = logging.getLogger(__name__)

INDEX_NAME = "index.csv"


def mistake_file_name(row: pd.Series) -> str:
    """``<true>_as_<predicted>_p<confidence>_<original name>``: the label story in the name."""
    conf = row["p_male"] if row["predicted"] == "male" else 1.0 - row["p_male"]
    return f"{row['gender']}_as_{row['predicted']}_p{conf:.3f}_{Path(row['path']).name}"


def unique_names(names: list[str]) -> list[str]:
    """``names`` with ``_2``, ``_3``... before the extension of repeats (two speakers' ``arctic_a0001.wav``
    mistaken with the same confidence would otherwise overwrite one another)."""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        if seen[name] > 1:
            p = Path(name)
            name = f"{p.stem}_{seen[name]}{p.suffix}"
        out.append(name)
    return out


def dump_mistakes(predictions: pd.DataFrame, out_dir: str | Path, copy_audio: bool = True) -> dict[str, int]:
    """Write ``out_dir/<split>/`` with a copy of each misclassified clip and ``index.csv``
    sorted by confidence (most confident mistakes first). Returns mistakes per split.

    ``out_dir`` is emptied first so that it always describes one run.
    """
    out_dir = Path(out_dir)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    counts = {}
    for split in [s for s in (*SPLITS, "eval") if s in set(predictions["split"])]:
        wrong = predictions[(predictions["split"] == split) & (predictions["correct"].astype(int) == 0)].copy()
        d = out_dir / split
        d.mkdir(parents=True, exist_ok=True)
        wrong["confidence"] = wrong.apply(lambda r: r["p_male"] if r["predicted"] == "male" else 1 - r["p_male"],
                                          axis=1) if len(wrong) else []
        wrong["file"] = unique_names([mistake_file_name(r) for _, r in wrong.iterrows()])
        for _, r in wrong.iterrows():
            if copy_audio:
                try:
                    shutil.copyfile(r["path"], d / r["file"])
                except OSError as e:
                    log.warning("cannot copy %s: %s", r["path"], e)
        wrong.sort_values("confidence", ascending=False).to_csv(d / INDEX_NAME, index=False)
        counts[split] = len(wrong)
    log.info("misclassified clips in %s: %s", out_dir, counts)
    return counts
