"""``python -m src.train``: train the classifier on one encoder's embeddings.

    python -m src.train encoder=resemblyzer                # bundled sample
    python -m src.train encoder=resemblyzer data=dev
    python -m src.train -m encoder=ecapa,resemblyzer,wav2vec2
    python -m src.train model=logreg                       # or svm, forest, boosting, mlp5
    python -m src.train encoder=acoustic model=pitch       # the pitch baseline
    python -m src.train data=commonvoice_mel128 encoder=mel128 model=mlp5 [data.protocol=official]
    python -m src.train +experiment=cv_mel128              # Common Voice mel-128 MLP
    python -m src.train +experiment=cv_mel128_published    # the same, as published
    python -m src.train model=melcnn data=speechocean762           # end to end from audio, + age head
    python -m src.train model=crnn data=dev model.age_loss_weight=0

Writes ``runs/<encoder>-<YYYY-MM-DD_HH-MM-SS>/`` (an end-to-end model: ``runs/<model>-...``);
watch it with ``tensorboard --logdir runs``.
"""

from __future__ import annotations

import logging
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from src.building import build_model, data_sources, model_kind, vad_params
from src.cli import verb
from src.embeddings.dataset import exclude, load_sources, read_exclusions
from src.embeddings.store import read_meta
from src.models.checkpoint import END_TO_END
from src.runtime import set_threads
from src.settings import from_cfg
from src.training.embedding_head import HeadParams, train_run
from src.training.params import TrainerParams

log = logging.getLogger(__name__)


def trainer_params(trainer_cfg: DictConfig) -> TrainerParams:
    """The ``trainer`` group as typed parameters."""
    return from_cfg(TrainerParams, trainer_cfg)


def head_params(cfg: DictConfig) -> HeadParams:
    """The train config's splits, balancing, age head, OOD gate and ``unknown`` threshold, typed
    (the split and balancing columns come from the data source's config)."""
    holdout = cfg.get("holdout_corpus")
    return from_cfg(HeadParams, cfg, stratify_by=tuple(cfg.data.get("stratify_by") or ()),
                    holdout=("corpus", str(holdout)) if holdout else None,
                    balance_within=cfg.data.get("balance_within"))


def prepare_feature_source(data_cfg: DictConfig, encoder: str, embeddings_dir: str | Path) -> None:
    """Write (or keep) the embeddings store of a feature-only source such as ``commonvoice_mel128``."""
    from src.embeddings.features import MEL128_ENCODER, prepare_commonvoice_mel128

    if data_cfg.name != "commonvoice_mel128":
        raise ValueError(f"data={data_cfg.name}: no adapter for this feature-only source")
    if encoder != MEL128_ENCODER:
        raise ValueError(f"data=commonvoice_mel128 holds {MEL128_ENCODER} features: use encoder={MEL128_ENCODER}")
    prepare_commonvoice_mel128(data_cfg.features_dir, embeddings_dir, protocol=data_cfg.protocol,
                               split_seed=data_cfg.split_seed, max_rows=data_cfg.max_rows)


def run_end_to_end(cfg: DictConfig, run_dir: Path) -> dict:
    """Train an end-to-end network (``model=melcnn``, ``model=crnn``) from the data source's audio."""
    from src.building import build_end_to_end, build_segmenter, load_clips, speech_params
    from src.training.end_to_end import AgeHeadParams, end_to_end_run

    if not cfg.data.get("manifest_path"):
        raise ValueError(f"data={cfg.data.name} has no audio (no manifest_path): model={cfg.model.name} "
                         f"trains from audio")
    info = {"data": cfg.data.name, "manifest_path": str(cfg.data.manifest_path), "run_dir": str(run_dir),
            "model": cfg.model.name, "model_class": cfg.model._target_, "kind": END_TO_END}
    meta = {"encoder": cfg.run_key, "dim": None, "options": {"vad": vad_params(cfg.vad).__dict__}}
    return end_to_end_run(load_clips(cfg.data), build_segmenter(cfg.vad), run_dir,
                          lambda n_age_bands: build_end_to_end(cfg.model, n_age_bands), trainer_params(cfg.trainer),
                          speech_params(cfg.speech), AgeHeadParams(float(cfg.model.age_loss_weight),
                                                                   str(cfg.model.age_bands)),
                          seed=cfg.seed, val_frac=cfg.val_frac, test_frac=cfg.test_frac, threshold=cfg.threshold,
                          source=str(cfg.data.manifest_path), encoder_meta=meta, info=info)


def run_train(cfg: DictConfig, run_dir: str | Path) -> dict:
    """Train on ``cfg``'s encoder and data into ``run_dir``; returns the metrics."""
    set_threads(cfg.num_threads)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    if model_kind(cfg.model) == END_TO_END:  # a network from speech to logits: no embeddings
        return run_end_to_end(cfg, run_dir)
    emb_dir = cfg.paths.embeddings_dir
    if cfg.data.get("features_dir"):  # a feature-only source: its store is written from the features
        prepare_feature_source(cfg.data, cfg.encoder.name, emb_dir)
    sources = data_sources(cfg.data, cfg.paths)
    data = load_sources(sources, cfg.encoder.name)
    if cfg.get("exclude_path"):
        data = exclude(data, read_exclusions(cfg.exclude_path))
    metas = [read_meta(s.embeddings_dir, cfg.encoder.name) for s in sources]
    hashes = {s.name: m.get("config_hash") for s, m in zip(sources, metas)}
    if len(set(hashes.values())) > 1:
        raise ValueError(f"the sources' {cfg.encoder.name} embeddings were made with different options "
                         f"(config hashes {hashes}): extract them again with the same settings")
    info = {"data": cfg.data.name, "embeddings_dir": str(emb_dir), "run_dir": str(run_dir),
            "model": cfg.model.get("name") or cfg.model._target_.rsplit(".", 1)[-1],
            "model_class": cfg.model._target_}
    if len(sources) > 1:
        info["sources"] = {s.name: s.embeddings_dir for s in sources}
    if cfg.data.get("protocol"):  # a feature-only source's split protocol (random | official)
        info["protocol"] = cfg.data.protocol
    return train_run(data, run_dir, lambda dim: build_model(cfg.model, dim), trainer_params(cfg.trainer),
                     seed=cfg.seed, val_frac=cfg.val_frac, test_frac=cfg.test_frac, threshold=cfg.threshold,
                     encoder_meta=metas[0], info=info, heads=head_params(cfg))


def remove_unfinished(run_dir: Path) -> None:
    """A run folder with no checkpoint (the run failed before saving one): gone, so that ``run=latest``
    and the user never meet an empty run; its log went to the terminal."""
    import shutil

    from src.models.checkpoint import CHECKPOINT_NAME

    if run_dir.is_dir() and not (run_dir / CHECKPOINT_NAME).exists():
        shutil.rmtree(run_dir, ignore_errors=True)
        log.info("the run failed: its folder %s was removed", run_dir)


@verb("train")
def main(cfg: DictConfig) -> float:
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        metrics = run_train(cfg, run_dir)
    except BaseException:
        remove_unfinished(run_dir)
        raise
    return metrics["val"]["log_loss"]


if __name__ == "__main__":
    main()
