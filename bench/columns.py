#!/usr/bin/env python
"""Load time of an encoder's embeddings for training: JSONL parsed into Python lists (the old
``read_records`` + ``records_to_set``) against the cached columnar form (``load_embedding_set``).

    python bench/columns.py                          # 1,000,000 synthetic records, 64-d
    python bench/columns.py --records 200000 --dim 256
    python bench/columns.py --skip-lists             # do not time the list path (it needs ~30 bytes
                                                     # of RAM per float: 1M x 256-d is ~8 GB)

Synthetic records are written to a temp folder as ``python -m src.extract`` writes them (one JSON
line each, an ``ok`` status, random float embeddings rounded to 6 digits, path, speaker, gender,
speech_s, groups), then, side by side in one process:

(a) lists: ``records_to_set(read_records(...))``, every record a dict with a list of floats;
(b) first load: the streaming reader plus writing the cache (what a first training run pays);
(c) cached load: ``load_embedding_set`` reading the ``.columns.npz``.

Prints each time and the ratios (a)/(c) and (b)/(c); peak RSS growth of each is printed too.
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO_DIR = Path(__file__).resolve().parent.parent
if str(REPO_DIR) not in sys.path:
    sys.path.insert(0, str(REPO_DIR))

import numpy as np  # noqa: E402

ENC = "resemblyzer"


def write_records(path: Path, n: int, dim: int, seed: int = 0) -> float:
    """``n`` synthetic records as the extractor writes them; returns seconds taken."""
    from src.embeddings.store import JsonlWriter, config_hash

    rng = np.random.default_rng(seed)
    options = {"encoder": ENC, "bench": True}
    start = time.perf_counter()
    meta = {"encoder": ENC, "dim": dim, "config_hash": config_hash(options), "options": options}
    with JsonlWriter(path, meta) as w:
        w._f.close()
        with open(path, "a", encoding="utf-8", buffering=1 << 20) as f:
            block = 10_000
            for lo in range(0, n, block):
                emb = np.round(rng.normal(size=(min(block, n - lo), dim)), 6)
                for k, v in enumerate(emb):
                    i = lo + k
                    rec = {"id": f"clip-{i:08d}", "path": f"/data/corpus/speaker-{i % 5000:05d}/clip-{i:08d}.flac",
                           "speaker": f"speaker-{i % 5000:05d}", "gender": "female" if i % 2 else "male",
                           "encoder": ENC, "dim": dim, "groups": {"corpus": "synthetic", "age_group": "adult"},
                           "duration_s": 3.2, "speech_s": 2.9, "status": "ok", "embedding": v.tolist()}
                    f.write(json.dumps(rec, separators=(",", ":")) + "\n")
        w._f = open(path, "a", encoding="utf-8")
    return time.perf_counter() - start


def max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(fn):
    gc.collect()
    rss0 = max_rss_mb()
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start, max_rss_mb() - rss0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench/columns.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--records", type=int, default=1_000_000, help="synthetic records [%(default)s]")
    p.add_argument("--dim", type=int, default=64, help="embedding size [%(default)s]")
    p.add_argument("--skip-lists", action="store_true", help="do not time (a), the list path")
    p.add_argument("--tmp-dir", default=None, help="where the JSONL goes (default: the system temp dir)")
    args = p.parse_args(argv)

    from src.embeddings.dataset import load_embedding_set, records_to_set
    from src.embeddings.store import columns_path, embeddings_path, read_records

    with tempfile.TemporaryDirectory(prefix="bench-columns-", dir=args.tmp_dir) as tmp:
        d = Path(tmp)
        path = embeddings_path(d, ENC)
        write_s = write_records(path, args.records, args.dim)
        size_mb = path.stat().st_size / 2**20
        print(f"{args.records:,} records, {args.dim}-d: JSONL {size_mb:.0f} MB written in {write_s:.1f} s")
        # the cached form first (it costs nothing in RSS kept), the list path last (it holds the most)
        first, first_s, first_rss = timed(lambda: load_embedding_set(d, ENC))
        cache_mb = columns_path(d, ENC).stat().st_size / 2**20
        del first
        cached, cached_s, cached_rss = timed(lambda: load_embedding_set(d, ENC))
        n_rows = len(cached)
        del cached
        lists_s = lists_rss = None
        if not args.skip_lists:
            _, lists_s, lists_rss = timed(lambda: records_to_set(read_records(d, ENC), source="bench"))
    print("(a) JSONL -> Python lists -> arrays (old read_records path): "
          + (f"{lists_s:7.2f} s  (peak RSS +{lists_rss:.0f} MB)" if lists_s is not None else "skipped"))
    print(f"(b) first load: streaming reader + writing the cache:         {first_s:7.2f} s  "
          f"(peak RSS +{first_rss:.0f} MB; cache {cache_mb:.0f} MB)")
    print(f"(c) cached columnar load:                                     {cached_s:7.2f} s  "
          f"(peak RSS +{cached_rss:.0f} MB; {n_rows:,} rows)")
    if lists_s is not None:
        print(f"ratio (a)/(c): {lists_s / cached_s:.1f}x faster from the cache")
    print(f"ratio (b)/(c): {first_s / cached_s:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
