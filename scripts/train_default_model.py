"""Rebuild the shipped default model in ``models/default/`` from ``../shared/data``.

    python scripts/train_default_model.py [--encoder resemblyzer] [--model logreg]

Extracts the embeddings of every shared source with audio (``data=mix``: dev, speechocean762,
speechocean762_extra; the bundled sample is a subset of the first two), trains one run on their
mix (speakers listed in ``data/audit/suspect-speakers.csv`` left out, see the README's label
audit), and copies what inference needs (``config.yaml``, ``best.pt``, ``metrics.json``) into
``models/default/``. The model card ``models/default/MODEL_CARD.md`` is written by hand from the
run's metrics and the leave-one-corpus-out study; this script prints the run's figures for it.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from hydra import compose, initialize_config_module

from src.extract import run_extract
from src.train import run_train

REPO_DIR = Path(__file__).resolve().parents[1]
KEEP = ("config.yaml", "best.pt", "metrics.json")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--encoder", default="resemblyzer")
    ap.add_argument("--model", default="logreg")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=REPO_DIR / "models" / "default")
    ap.add_argument("--run-dir", type=Path, default=REPO_DIR / "runs" / "default-model-build")
    args = ap.parse_args()
    common = [f"encoder={args.encoder}", "data=mix", f"paths.data_dir={REPO_DIR / 'data'}"]
    with initialize_config_module(version_base="1.3", config_module="conf"):
        run_extract(compose("extract", overrides=[*common, "progress=false"]))
        cfg = compose("train", overrides=[*common, f"model={args.model}", f"seed={args.seed}",
                                          f"exclude_path={REPO_DIR / 'data/audit/suspect-speakers.csv'}"])
    if args.run_dir.exists():
        shutil.rmtree(args.run_dir)
    metrics = run_train(cfg, args.run_dir)
    args.out.mkdir(parents=True, exist_ok=True)
    for name in KEEP:
        shutil.copyfile(args.run_dir / name, args.out / name)
    test = metrics["test"]
    print(json.dumps({"test": {k: test[k] for k in ("n", "accuracy", "balanced_accuracy", "ece")},
                      "by_age_group": test["selective_by_group"].get("age_group"),
                      "age_head": metrics.get("age_group", {}).get("test"), "splits": metrics["splits"]}, indent=1))
    print(f"-> {args.out} ({sum((args.out / n).stat().st_size for n in KEEP) / 1e3:.0f} kB)")


if __name__ == "__main__":
    main()
