"""Rebuild the bundled sample in ``data/sample/`` from ``../shared/data``.

The sample is a few MB of real speech copied unchanged (same FLAC bytes) from the
shared dev sets, so the demo and the tests run on a fresh clone. It is chosen
deterministically: speakers sorted by id, shortest clips first.

    python scripts/make_sample.py [--shared ../shared/data] [--out data/sample]
"""

from __future__ import annotations

import argparse
import csv
import shutil
from collections import defaultdict
from pathlib import Path

# (corpus key in metadata.csv, speakers per gender, clips per speaker)
DEV_PLAN = [("librispeech", 10, 2), ("vctk", 3, 2), ("cmu_arctic", 1, 2)]
SO762_PLAN = [("child", 3, 2), ("adult", 3, 2)]
FIELDS = ["path", "speaker", "gender", "age", "age_group", "corpus", "duration_s"]


def _read(set_dir: Path) -> list[dict]:
    """Join manifest.csv and metadata.csv of one shared set on ``path``."""
    meta = {r["path"]: r for r in csv.DictReader(open(set_dir / "metadata.csv"))}
    rows = []
    for r in csv.DictReader(open(set_dir / "manifest.csv")):
        m = meta.get(r["path"], {})
        age = m.get("age", "")
        group = m.get("age_group") or ("adult" if age else "")
        rows.append({**r, "age": age, "age_group": group, "corpus": m.get("corpus", ""),
                     "_dir": set_dir})
    return rows


def _pick(rows: list[dict], key: str, value: str, per_gender: int, per_speaker: int) -> list[dict]:
    """Deterministically pick speakers of each gender whose ``key`` equals ``value``."""
    by_spk: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        if r[key] == value and 2.0 <= float(r["duration_s"]) <= 7.0:
            by_spk[r["speaker"]].append(r)
    picked = []
    for gender in ("female", "male"):
        spks = sorted(s for s, rs in by_spk.items()
                      if rs[0]["gender"] == gender)
        for s in spks[:per_gender]:
            picked += sorted(by_spk[s], key=lambda r: float(r["duration_s"]))[:per_speaker]
    return picked


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", type=Path, default=Path("../shared/data"))
    ap.add_argument("--out", type=Path, default=Path("data/sample"))
    args = ap.parse_args()
    dev, so = _read(args.shared / "dev"), _read(args.shared / "speechocean762-dev")
    chosen = [r for c, n, k in DEV_PLAN for r in _pick(dev, "corpus", c, n, k)]
    chosen += [r for g, n, k in SO762_PLAN for r in _pick(so, "age_group", g, n, k)]
    (args.out / "audio").mkdir(parents=True, exist_ok=True)
    out_rows = []
    for r in chosen:
        dst = Path("audio") / r["speaker"] / Path(r["path"]).name
        (args.out / dst).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(r["_dir"] / r["path"], args.out / dst)
        out_rows.append({**{k: r[k] for k in FIELDS}, "path": dst.as_posix()})
    with open(args.out / "manifest.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS)
        w.writeheader()
        w.writerows(out_rows)
    print(f"wrote {len(out_rows)} clips of {len({r['speaker'] for r in out_rows})} speakers to {args.out}")


if __name__ == "__main__":
    main()
