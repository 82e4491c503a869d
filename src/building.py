"""The one place where configs become objects (Hydra ``instantiate`` lives here only).

Components never see a ``DictConfig``: entry points call these helpers and pass
plain, typed values on.
"""

from __future__ import annotations

import logging

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from src.data.manifest import Clip, read_manifest
from src.data.speech import SpeechParams
from src.embeddings.store import Source
from src.encoders.base import Encoder
from src.settings import from_cfg
from src.vad.params import VadParams, VadSettings
from src.vad.silero import SileroSegmenter

log = logging.getLogger(__name__)


def build_encoder(encoder_cfg: DictConfig) -> Encoder:
    """Instantiate ``encoder.model`` and check it matches the config's name and dim.

    Raises:
        EncoderLoadError: the weights cannot be loaded (raised as is, not wrapped by Hydra).
    """
    from hydra.errors import InstantiationException

    from src.encoders.base import EncoderLoadError

    try:
        enc = instantiate(encoder_cfg.model)
    except InstantiationException as e:
        if isinstance(e.__cause__, EncoderLoadError):
            raise e.__cause__ from None
        raise
    if enc.name != encoder_cfg.name or enc.dim != encoder_cfg.dim:
        raise ValueError(f"encoder config {encoder_cfg.name}/{encoder_cfg.dim} built "
                         f"{enc.name}/{enc.dim}: fix conf/encoder/{encoder_cfg.name}.yaml")
    return enc


def shard_device(device: str, shard: int, num_gpus: int) -> str:
    """``auto`` on a box with several GPUs -> ``cuda:{shard % num_gpus}`` (shards spread over
    them); anything else is returned as is."""
    if device == "auto" and num_gpus > 1:
        return f"cuda:{shard % num_gpus}"
    return device


def shard_encoder_config(encoder_cfg: DictConfig, device: str, shard: int) -> DictConfig:
    """The encoder config of one shard: with ``device=auto`` and several GPUs, its own GPU."""
    chosen = shard_device(device, shard, torch.cuda.device_count() if device == "auto" else 0)
    if chosen == device or "device" not in encoder_cfg.model:
        return encoder_cfg
    cfg = OmegaConf.create(OmegaConf.to_container(encoder_cfg, resolve=True))
    cfg.model.device = chosen
    log.info("shard %d: encoder on %s", shard, chosen)
    return cfg


def vad_params(vad_cfg: DictConfig) -> VadParams:
    """Silero's parameters from the ``vad`` group (:class:`VadSettings` without its ``batch_size``)."""
    return from_cfg(VadSettings, vad_cfg).params


def build_segmenter(vad_cfg: DictConfig) -> SileroSegmenter:
    """The batched Silero segmenter."""
    settings = from_cfg(VadSettings, vad_cfg)
    return SileroSegmenter(settings.params, batch_size=settings.batch_size, backend=settings.backend)


def load_clips(data_cfg: DictConfig) -> list[Clip]:
    """Read the data source's manifest (with its metadata join and group columns)."""
    return read_manifest(data_cfg.manifest_path, list(data_cfg.group_columns or []),
                         data_cfg.get("metadata_path"), skip_bad_rows=bool(data_cfg.get("skip_bad_rows", False)))


def embedding_options(cfg: DictConfig) -> dict:
    """The options that shape embeddings, hashed into the store's sidecar."""
    enc = OmegaConf.to_container(cfg.encoder.model, resolve=True)
    enc.pop("device", None)
    return {"encoder": cfg.encoder.name, "model": enc, "vad": vad_params(cfg.vad).__dict__,
            "min_clip_s": cfg.min_clip_s, "min_speech_s": cfg.min_speech_s}


MODEL_META_KEYS = ("name", "kind")  # model-config keys that describe the config rather than the model
END_TO_END_KEYS = ("age_loss_weight", "age_bands")  # an end-to-end model config's training keys (its age head)


def model_kind(model_cfg: DictConfig) -> str:
    """``end_to_end`` for a network trained from audio (``kind: end_to_end`` in its yaml), else
    ``embedding_head`` (a classifier on an encoder's embeddings)."""
    from src.models.checkpoint import EMBEDDING_HEAD, KINDS

    kind = str(model_cfg.get("kind") or EMBEDDING_HEAD)
    if kind not in KINDS:
        raise ValueError(f"model={model_cfg.get('name')}: kind {kind!r} is not one of {KINDS}")
    return kind


def build_end_to_end(model_cfg: DictConfig, n_age_bands: int) -> tuple[torch.nn.Module, str, dict]:
    """An end-to-end network with an age head of ``n_age_bands`` (0: none), with its class path and
    kwargs (for the checkpoint)."""
    kwargs = {k: v for k, v in OmegaConf.to_container(model_cfg, resolve=True).items()
              if k != "_target_" and k not in MODEL_META_KEYS + END_TO_END_KEYS}
    kwargs["n_age_bands"] = n_age_bands
    return instantiate({"_target_": model_cfg._target_, **kwargs}), model_cfg._target_, kwargs


def speech_params(speech_cfg: DictConfig) -> SpeechParams:
    """The ``speech`` group (end-to-end training from audio) as typed parameters."""
    return from_cfg(SpeechParams, speech_cfg)


def build_model(model_cfg: DictConfig, in_dim: int) -> tuple[object, str, dict]:
    """The classifier for ``in_dim`` inputs, with its class path and kwargs (for the checkpoint).

    A torch ``nn.Module`` gets ``in_dim``; a scikit-learn-style estimator (``model=logreg``,
    ``pitch``, ...) is built from its own arguments only.
    """
    from hydra.utils import get_class

    kwargs = {k: v for k, v in OmegaConf.to_container(model_cfg, resolve=True).items()
              if k != "_target_" and k not in MODEL_META_KEYS}
    if issubclass(get_class(model_cfg._target_), torch.nn.Module):
        kwargs["in_dim"] = in_dim
    return instantiate({"_target_": model_cfg._target_, **kwargs}), model_cfg._target_, kwargs


def source_data_config(source: str | DictConfig, paths_cfg: DictConfig) -> DictConfig:
    """One source of a ``data=mix``, resolved against ``paths_cfg`` as written (so its embeddings
    folder is ``models-embeddings/<its name>``), with the resolved paths under ``paths``.

    Args:
        source: a ``data=`` key (``conf/data/<key>.yaml``) or a whole data config (``name``,
            ``manifest_path``, ...) written inline.

    Raises:
        ValueError: no such data config.
    """
    from importlib.resources import files

    if OmegaConf.is_config(source) or isinstance(source, dict):
        data = OmegaConf.create(OmegaConf.to_container(source, resolve=False) if OmegaConf.is_config(source)
                                else source)
        if not data.get("name"):
            raise ValueError(f"an inline data source needs a name: {dict(data)}")
    else:
        path = files("conf") / "data" / f"{source}.yaml"
        if not path.is_file():
            known = sorted(p.name[:-5] for p in (files("conf") / "data").iterdir() if p.name.endswith(".yaml"))
            raise ValueError(f"data source {source!r} is not a data config (conf/data/): one of {known}")
        data = OmegaConf.load(str(path))
    root = OmegaConf.create({"paths": OmegaConf.to_container(paths_cfg, resolve=False), "data": data})
    OmegaConf.resolve(root)
    return root


def data_sources(data_cfg: DictConfig, paths_cfg: DictConfig) -> list[Source]:
    """The sources a ``data=`` config trains on: ``data=mix`` lists several (``data.sources``),
    any other data config is one."""
    if data_cfg.get("sources"):
        cfgs = [source_data_config(n, paths_cfg) for n in data_cfg.sources]
        return [Source(c.data.name, str(c.paths.embeddings_dir), c.data.get("corpus"), c.data.get("age_group"),
                       c.data.get("augments")) for c in cfgs]
    return [Source(data_cfg.name, str(paths_cfg.embeddings_dir), data_cfg.get("corpus"), data_cfg.get("age_group"))]
