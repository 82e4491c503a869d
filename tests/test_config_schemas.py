"""Each setting is defined once: the groups with a Python schema have no YAML file, and where a verb's
YAML holds options that code reads as a dataclass, the dataclass's defaults are the YAML's values.
:func:`src.settings.from_cfg` is the one conversion (types, nested dataclasses, tuples)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from src.analysis.audit import AuditParams
from src.analysis.speaking_time import BootstrapParams
from src.config_store import GROUP_SCHEMAS
from src.data.augment import AugmentParams
from src.embeddings.extract import ExtractOptions
from src.inference.params import SettingError, TimelineParams
from src.serving.service import ServeSettings
from src.settings import from_cfg
from src.training.embedding_head import HeadParams

REPO_DIR = Path(__file__).resolve().parents[1]
VERBS_OF_GROUP = {"stream": "stream", "speech": "train", "timeline_params": "predict", "quality": "predict",
                  "trainer": "train", "vad": "extract"}

# (verb, the node the dataclass is read from, the dataclass, its fields that do not come from that node: why)
VERB_SCHEMAS = [
    ("serve", None, ServeSettings, {"run_name": "the run's folder name", "model_card": "the run's card",
                                    "examples": "the page's clips: the YAML names some, the Python API none"}),
    ("extract", None, ExtractOptions, {"encoder_batch_size": "the encoder group's batch_size"}),
    ("augment", "augment", AugmentParams, {}),
    ("audit", None, AuditParams, {}),
    ("report", None, BootstrapParams, {"unit": "bootstrap_unit in the YAML"}),
    ("train", None, HeadParams, {"stratify_by": "the data group's", "holdout": "holdout_corpus",
                                 "balance_within": "the data group's"}),
]


def composed(verb: str, *overrides: str):
    GlobalHydra.instance().clear()
    with initialize_config_module(version_base="1.3", config_module="conf"):
        return compose(verb, overrides=list(overrides))


def defaults_of(cls) -> dict:
    return {f.name: (f.default if f.default is not dataclasses.MISSING else f.default_factory())
            for f in dataclasses.fields(cls) if f.init}


def test_every_group_schema_is_used_by_a_verb_and_has_no_yaml():
    assert set(VERBS_OF_GROUP) == {g for g, _ in GROUP_SCHEMAS}
    for (group, name), cls in GROUP_SCHEMAS.items():
        assert not (REPO_DIR / "conf" / group / f"{name}.yaml").exists(), f"conf/{group}/{name}.yaml repeats {cls}"
        node = composed(VERBS_OF_GROUP[group])[group]
        assert from_cfg(cls, node) == cls(), f"{group}: the composed group is not {cls.__name__}'s defaults"
        assert set(node) == {f.name for f in dataclasses.fields(cls)}


@pytest.mark.parametrize("verb,path,cls,elsewhere", VERB_SCHEMAS, ids=[v[2].__name__ for v in VERB_SCHEMAS])
def test_a_verbs_dataclass_defaults_equal_its_yaml(verb, path, cls, elsewhere):
    cfg = composed(verb, "input=x.jsonl") if verb == "report" else composed(verb)
    node = cfg[path] if path else cfg
    built = from_cfg(cls, node, **{k: v for k, v in defaults_of(cls).items() if k in elsewhere})
    for name, default in defaults_of(cls).items():
        if name in elsewhere:
            continue
        assert name in node, f"{cls.__name__}.{name} has no line in conf/{verb}.yaml"
        assert getattr(built, name) == default, (
            f"conf/{verb}.yaml says {name}={node[name]!r}, {cls.__name__} says {default!r}: define it once")


def test_from_cfg_converts_types_and_nested_dataclasses():
    cfg = composed("serve", "max_upload_mb=5", "stream.hop_s=0.2", "allowed_origins=[http://a.example]")
    s = from_cfg(ServeSettings, cfg, run_name="r")
    assert s.max_upload_mb == 5.0 and isinstance(s.max_upload_mb, float)
    assert s.stream.hop_s == 0.2 and s.allowed_origins == ("http://a.example",) and s.run_name == "r"
    assert [e.title for e in from_cfg(ServeSettings, cfg).examples] == [e.title for e in cfg.examples]
    assert from_cfg(AugmentParams, OmegaConf.create({"snr_db": [1, 2]})).snr_db == (1.0, 2.0)


def test_a_group_value_out_of_range_or_of_the_wrong_type_fails_at_compose_time():
    with pytest.raises(SettingError, match="hop_s"):
        from_cfg(TimelineParams, composed("predict", "timeline_params.hop_s=0").timeline_params)
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException, match="trainer.lr=fast"):  # the schema's type
        composed("train", "trainer.lr=fast")
    with pytest.raises(ConfigCompositionException, match="lrr"):  # the schema's keys
        composed("train", "trainer.lrr=0.1")
    with pytest.raises(ConfigCompositionException, match="vad.threshold"):
        composed("extract", "vad.threshold=high")
