"""Reproduce the quality figures in the README: train on ``../shared/data/dev`` with several
seeds (each a different speaker-disjoint split), test on its held-out speakers, and
evaluate every run on ``speechocean762-dev`` as a cross-corpus test (adults and children apart).

    python -m src.extract encoder=resemblyzer data=dev
    python -m src.extract encoder=resemblyzer data=speechocean762
    python scripts/quality_report.py [--encoder resemblyzer] [--seeds 0 1 2 3 4]

Prints markdown tables; the runs are left under runs/ for TensorBoard and analysis.
"""

from __future__ import annotations

import argparse
import logging
from datetime import datetime

import numpy as np
from hydra import compose, initialize_config_module

from src.evaluate import evaluate_run
from src.evaluation.metrics import DURATION_BUCKETS_S
from src.train import run_train


def train_seed(encoder: str, seed: int) -> tuple[str, dict]:
    """One dev run with ``seed``; returns its folder and metrics."""
    with initialize_config_module(version_base="1.3", config_module="conf"):
        cfg = compose("train", overrides=[f"encoder={encoder}", "data=dev", f"seed={seed}"])
    run_dir = f"{cfg.paths.runs_dir}/{encoder}-{datetime.now():%Y-%m-%d_%H-%M-%S}-seed{seed}"
    return run_dir, run_train(cfg, run_dir)


def fmt(values: list[float]) -> str:
    """``mean ± std`` in percent."""
    return f"{100 * np.mean(values):.2f} ± {100 * np.std(values):.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--encoder", default="resemblyzer")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    rows, cross = [], []
    for seed in args.seeds:
        run_dir, m = train_seed(args.encoder, seed)
        rows.append(m)
        cross.append(evaluate_run(run_dir, "models-embeddings/speechocean762", "speechocean762")["all"])
    print(f"\n### {args.encoder}: dev, speaker-disjoint test split, {len(rows)} seeds\n")
    print("| seed | test clips / speakers | accuracy | balanced accuracy | ROC-AUC | ECE before → after T |")
    print("|---|---|---|---|---|---|")
    for seed, m in zip(args.seeds, rows):
        t, n_spk = m["test"], sum(v["speakers"] for v in m["splits"]["test"].values())
        print(f"| {seed} | {t['n']} / {n_spk} | {100 * t['accuracy']:.2f} | {100 * t['balanced_accuracy']:.2f} | "
              f"{t['roc_auc']:.4f} | {t['ece_before_calibration']:.3f} → {t['ece']:.3f} |")
    print(f"| mean ± std | | {fmt([m['test']['accuracy'] for m in rows])} | "
          f"{fmt([m['test']['balanced_accuracy'] for m in rows])} | | |")
    print("\nTest accuracy by speech duration (all seeds pooled):\n")
    print("| bucket | clips | accuracy |\n|---|---|---|")
    for name, _, _ in DURATION_BUCKETS_S:
        n = sum(m["test"]["accuracy_by_duration"][name]["n"] for m in rows)
        ok = sum(m["test"]["accuracy_by_duration"][name]["n"] * (m["test"]["accuracy_by_duration"][name]["accuracy"]
                                                                 or 0) for m in rows)
        print(f"| {name} | {n} | {100 * ok / n:.2f} |" if n else f"| {name} | 0 | – |")
    print("\n### Cross-corpus: trained on dev, evaluated on speechocean762-dev (all 528 clips)\n")
    print("| group | clips | accuracy (mean ± std over seeds) |\n|---|---|---|")
    print(f"| all | {cross[0]['n']} | {fmt([c['accuracy'] for c in cross])} |")
    for g in sorted(cross[0]["accuracy_by_group"].get("age_group", {})):
        accs = [c["accuracy_by_group"]["age_group"][g]["accuracy"] for c in cross]
        print(f"| {g} | {cross[0]['accuracy_by_group']['age_group'][g]['n']} | {fmt(accs)} |")


if __name__ == "__main__":
    main()
