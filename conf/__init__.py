"""Hydra's configs for ``pkg://conf``; the config groups whose schema and defaults are dataclasses
are registered here, so that each setting is defined once (in ``src/inference/params.py``)."""

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from src.inference.params import StreamParams, TimelineParams


def _schema(cls) -> object:
    """The dataclass as a typed config node (unknown keys and wrong types fail) that overrides may change."""
    node = OmegaConf.structured(cls)
    OmegaConf.set_readonly(node, False)  # the dataclasses are frozen; a command-line override is not
    return node


_store = ConfigStore.instance()
_store.store(group="stream", name="default", node=_schema(StreamParams))  # src.stream and the service's WebSocket
_store.store(group="timeline_params", name="default", node=_schema(TimelineParams))  # predict and ?timeline=true
