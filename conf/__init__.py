"""Hydra's configs for ``pkg://conf``; the config groups whose schema and defaults are dataclasses
are registered here, so that each setting is defined once (in ``src/inference/params.py``)."""

import os
from pathlib import Path

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from src.inference.params import StreamParams, TimelineParams


def _schema(cls) -> object:
    """The dataclass as a typed config node (unknown keys and wrong types fail) that overrides may change."""
    node = OmegaConf.structured(cls)
    OmegaConf.set_readonly(node, False)  # the dataclasses are frozen; a command-line override is not
    return node


def project_dir() -> str:
    """Where ``runs/``, ``logs/``, ``models-embeddings/`` ... live: ``$GENDER_HOME``, else this checkout
    (the folder holding ``pyproject.toml`` above ``conf/``), else the current folder (an installed copy)."""
    if os.environ.get("GENDER_HOME"):
        return str(Path(os.environ["GENDER_HOME"]).expanduser().resolve())
    checkout = Path(__file__).resolve().parents[1]
    return str(checkout if (checkout / "pyproject.toml").is_file() else Path.cwd())


OmegaConf.register_new_resolver("gender_home", project_dir, replace=True)  # ${gender_home:} in conf/paths

_store = ConfigStore.instance()
_store.store(group="stream", name="default", node=_schema(StreamParams))  # src.stream and the service's WebSocket
_store.store(group="timeline_params", name="default", node=_schema(TimelineParams))  # predict and ?timeline=true
