"""Every config group with a Python schema, registered with Hydra's ConfigStore in one place.

A group registered here has no YAML file: its dataclass is its schema and its defaults, so each
setting is defined once, next to the code that uses it, with a type that a wrong override fails
(``trainer.lr=fast`` is a one-line error at compose time). ``conf/`` holds only YAML and imports
nothing. Importing :mod:`src.cli` (every verb does) registers them; so does importing this module
before composing a config by hand (``hydra.compose``, the tests). Verbs turn nodes into the
dataclasses with :func:`src.settings.from_cfg`.

The verbs' own top-level settings (``conf/serve.yaml``'s limits, ``conf/extract.yaml``'s options ...)
stay in their YAML files, which ``--help`` reads; their dataclasses (:class:`ServeSettings`,
:class:`ExtractOptions` ...) are built with ``from_cfg`` too, and ``tests/test_config_schemas.py``
checks that each dataclass's defaults equal the composed YAML.
"""

from __future__ import annotations

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from src.data.speech import SpeechParams
from src.inference.params import QualityParams, StreamParams, TimelineParams
from src.settings import register_resolvers
from src.training.params import TrainerParams
from src.vad.params import VadSettings

# (group, option name) -> schema: the option is the dataclass's defaults
GROUP_SCHEMAS = {
    ("stream", "default"): StreamParams,  # src.stream and the service's WebSocket
    ("speech", "default"): SpeechParams,  # end-to-end training from audio
    ("timeline_params", "default"): TimelineParams,  # predict and ?timeline=true
    ("quality", "default"): QualityParams,  # predict, stream, serve: quality caps
    ("trainer", "default"): TrainerParams,  # the torch training loop
    ("vad", "silero"): VadSettings,  # Silero VAD (extract, end-to-end training)
}


def _writable(node) -> None:
    OmegaConf.set_readonly(node, False)  # the dataclasses are frozen; a command-line override is not
    for key in node:
        if OmegaConf.is_config(node[key]):
            _writable(node[key])


def schema_node(cls) -> object:
    """The dataclass as a typed config node (unknown keys and wrong types fail) that overrides may change."""
    node = OmegaConf.structured(cls)
    _writable(node)
    return node


def register() -> None:
    """Register the resolvers and every group schema (idempotent)."""
    register_resolvers()
    store = ConfigStore.instance()
    for (group, name), cls in GROUP_SCHEMAS.items():
        store.store(group=group, name=name, node=schema_node(cls))


register()
