"""Typed settings from Hydra configs: :func:`from_cfg` turns a config node into its schema
dataclass, the one conversion every verb uses (no field copied by hand), and the resolvers the
YAML files use (``${gender_home:}``, ``${run_key:...}``). The schemas themselves live beside the
code they configure; :mod:`src.config_store` registers them with Hydra."""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from pathlib import Path

from omegaconf import DictConfig, OmegaConf


def _convert(kind, value):
    """``value`` (plain YAML data) as the annotated type: nested dataclasses built, lists to
    tuples, ints to floats; anything else as it is (the dataclass checks its own ranges)."""
    if value is None:
        return None
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(kind) if a is not type(None)]
        return _convert(options[0], value) if len(options) == 1 else value
    if dataclasses.is_dataclass(kind) and isinstance(value, dict):
        return from_cfg(kind, value)
    if origin is tuple and isinstance(value, (list, tuple)):
        args = typing.get_args(kind)
        item = args[0] if args else typing.Any
        return tuple(_convert(item, v) for v in value)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def from_cfg(schema: type, node: DictConfig | dict, **extra):
    """The dataclass ``schema`` built from the fields of ``node`` that it declares (other keys of
    the node are the verb's, not the schema's), with ``extra`` for fields that do not come from the
    config (a run's name ...). A field the node lacks keeps the schema's default.

        settings = from_cfg(ServeSettings, cfg, run_name=run_dir.name)
        params = from_cfg(TimelineParams, cfg.timeline_params)
    """
    hints = typing.get_type_hints(schema)
    values = {}
    for f in dataclasses.fields(schema):
        if f.init and f.name in node and f.name not in extra:  # only the schema's keys are resolved
            value = node[f.name]
            if OmegaConf.is_config(value):
                value = OmegaConf.to_container(value, resolve=True)
            values[f.name] = _convert(hints[f.name], value)
    return schema(**values, **extra)


def project_dir() -> str:
    """Where ``runs/``, ``logs/``, ``models-embeddings/`` ... live: ``$GENDER_HOME``, else this checkout
    (:func:`src.checkout_dir`), else the current folder (an installed copy)."""
    from src import checkout_dir

    if os.environ.get("GENDER_HOME"):
        return str(Path(os.environ["GENDER_HOME"]).expanduser().resolve())
    return str(checkout_dir() or Path.cwd())


END_TO_END = "end_to_end"  # the checkpoint kind of a whole network from speech to logits (src/models/end_to_end.py)


def run_key(kind: str, model: str, encoder: str) -> str:
    """The key a run is named and found by (``runs/<key>-<time>/``, ``run=latest:<key>``): the
    encoder's name, or an end-to-end model's own name (it has no separate encoder)."""
    return model if kind == END_TO_END else encoder


def register_resolvers() -> None:
    """``${gender_home:}`` (conf/paths) and ``${run_key:kind,model,encoder}`` (conf/train.yaml)."""
    OmegaConf.register_new_resolver("gender_home", project_dir, replace=True)
    OmegaConf.register_new_resolver("run_key", run_key, replace=True)
