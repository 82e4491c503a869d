"""Hydra's configs for ``pkg://conf``; the config groups whose schema and defaults are dataclasses
are registered here, so that each setting is defined once (in ``src/inference/params.py`` and
``src/data/speech.py``), and so is the ``run_key`` resolver."""

import os
from pathlib import Path

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from src import checkout_dir
from src.data.speech import SpeechParams
from src.inference.params import QualityParams, StreamParams, TimelineParams


def _writable(node) -> None:
    OmegaConf.set_readonly(node, False)  # the dataclasses are frozen; a command-line override is not
    for key in node:
        if OmegaConf.is_config(node[key]):
            _writable(node[key])


def _schema(cls) -> object:
    """The dataclass as a typed config node (unknown keys and wrong types fail) that overrides may change."""
    node = OmegaConf.structured(cls)
    _writable(node)
    return node


def project_dir() -> str:
    """Where ``runs/``, ``logs/``, ``models-embeddings/`` ... live: ``$GENDER_HOME``, else this checkout
    (:func:`src.checkout_dir`), else the current folder (an installed copy)."""
    if os.environ.get("GENDER_HOME"):
        return str(Path(os.environ["GENDER_HOME"]).expanduser().resolve())
    return str(checkout_dir() or Path.cwd())


OmegaConf.register_new_resolver("gender_home", project_dir, replace=True)  # ${gender_home:} in conf/paths


def run_key(kind: str, model: str, encoder: str) -> str:
    """The key a run is named and found by (``runs/<key>-<time>/``, ``run=latest:<key>``): the
    encoder's name, or an end-to-end model's own name (it has no separate encoder)."""
    return model if kind == "end_to_end" else encoder


OmegaConf.register_new_resolver("run_key", run_key, replace=True)

_store = ConfigStore.instance()
_store.store(group="stream", name="default", node=_schema(StreamParams))  # src.stream and the service's WebSocket
_store.store(group="speech", name="default", node=_schema(SpeechParams))  # end-to-end training from audio
_store.store(group="timeline_params", name="default", node=_schema(TimelineParams))  # predict and ?timeline=true
_store.store(group="quality", name="default", node=_schema(QualityParams))  # predict, stream, serve: quality caps
