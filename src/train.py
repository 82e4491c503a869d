"""``python -m src.train``: train the classifier on one encoder's embeddings.

    python -m src.train encoder=resemblyzer                # bundled sample
    python -m src.train encoder=resemblyzer data=dev
    python -m src.train -m encoder=ecapa,resemblyzer,wav2vec2

Writes ``runs/<encoder>-<YYYY-MM-DD_HH-MM-SS>/``; watch it with ``tensorboard --logdir runs``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from src.building import build_model, set_threads, trainer_params
from src.embeddings.store import read_meta
from src.training.dataset import load_embedding_set
from src.training.run import train_run

log = logging.getLogger(__name__)


def run_train(cfg: DictConfig, run_dir: str | Path) -> dict:
    """Train on ``cfg``'s encoder and data into ``run_dir``; returns the metrics."""
    set_threads(cfg.num_threads)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    emb_dir = cfg.paths.embeddings_dir
    data = load_embedding_set(emb_dir, cfg.encoder.name)
    meta = read_meta(emb_dir, cfg.encoder.name)
    info = {"data": cfg.data.name, "embeddings_dir": str(emb_dir), "run_dir": str(run_dir),
            "model": cfg.model._target_.rsplit(".", 1)[-1]}
    return train_run(data, run_dir, lambda dim: build_model(cfg.model, dim), trainer_params(cfg.trainer),
                     seed=cfg.seed, val_frac=cfg.val_frac, test_frac=cfg.test_frac, threshold=cfg.threshold,
                     encoder_meta=meta, info=info)


@hydra.main(version_base="1.3", config_path="pkg://conf", config_name="train")
def main(cfg: DictConfig) -> float:
    metrics = run_train(cfg, HydraConfig.get().runtime.output_dir)
    return metrics["val"]["log_loss"]


if __name__ == "__main__":
    main()
