"""``python -m src.train``: train the classifier on one encoder's embeddings.

    python -m src.train encoder=resemblyzer                # bundled sample
    python -m src.train encoder=resemblyzer data=dev
    python -m src.train -m encoder=ecapa,resemblyzer,wav2vec2
    python -m src.train model=logreg                       # or svm, forest, boosting, mlp5
    python -m src.train encoder=acoustic model=pitch       # the pitch baseline
    python -m src.train data=commonvoice_mel128 encoder=mel128 model=mlp5 [data.protocol=official]

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


def prepare_feature_source(data_cfg: DictConfig, encoder: str, embeddings_dir: str | Path) -> None:
    """Write (or keep) the embeddings store of a feature-only source such as ``commonvoice_mel128``."""
    from src.data.features import MEL128_ENCODER, prepare_commonvoice_mel128

    if data_cfg.name != "commonvoice_mel128":
        raise ValueError(f"data={data_cfg.name}: no adapter for this feature-only source")
    if encoder != MEL128_ENCODER:
        raise ValueError(f"data=commonvoice_mel128 holds {MEL128_ENCODER} features: use encoder={MEL128_ENCODER}")
    prepare_commonvoice_mel128(data_cfg.features_dir, embeddings_dir, protocol=data_cfg.protocol,
                               split_seed=data_cfg.split_seed, max_rows=data_cfg.max_rows)


def run_train(cfg: DictConfig, run_dir: str | Path) -> dict:
    """Train on ``cfg``'s encoder and data into ``run_dir``; returns the metrics."""
    set_threads(cfg.num_threads)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    emb_dir = cfg.paths.embeddings_dir
    if cfg.data.get("features_dir"):  # a feature-only source: its store is written from the features
        prepare_feature_source(cfg.data, cfg.encoder.name, emb_dir)
    data = load_embedding_set(emb_dir, cfg.encoder.name)
    meta = read_meta(emb_dir, cfg.encoder.name)
    info = {"data": cfg.data.name, "embeddings_dir": str(emb_dir), "run_dir": str(run_dir),
            "model": cfg.model.get("name") or cfg.model._target_.rsplit(".", 1)[-1],
            "model_class": cfg.model._target_}
    if cfg.data.get("protocol"):  # a feature-only source's split protocol (random | official)
        info["protocol"] = cfg.data.protocol
    return train_run(data, run_dir, lambda dim: build_model(cfg.model, dim), trainer_params(cfg.trainer),
                     seed=cfg.seed, val_frac=cfg.val_frac, test_frac=cfg.test_frac, threshold=cfg.threshold,
                     encoder_meta=meta, info=info)


@hydra.main(version_base="1.3", config_path="pkg://conf", config_name="train")
def main(cfg: DictConfig) -> float:
    metrics = run_train(cfg, HydraConfig.get().runtime.output_dir)
    return metrics["val"]["log_loss"]


if __name__ == "__main__":
    main()
