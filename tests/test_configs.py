"""Every config group option composes into ``extract.yaml`` and resolves; keys match file stems."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
from hydra.utils import get_class
from omegaconf import OmegaConf
from omegaconf.errors import MissingMandatoryValue

from src.building import build_segmenter, embedding_options, load_clips, vad_params
from src.embeddings.store import config_hash
from src.encoders.fusion import FusionEncoder
from src.vad.params import VadParams

from conftest import REPO_DIR, SAMPLE_MANIFEST_PATH

CONF_DIR = REPO_DIR / "conf"
ENCODER_KEYS = sorted(p.stem for p in (CONF_DIR / "encoder").glob("*.yaml"))
DATA_KEYS = sorted(p.stem for p in (CONF_DIR / "data").glob("*.yaml"))


def test_the_groups_are_there():
    assert "resemblyzer" in ENCODER_KEYS and len(ENCODER_KEYS) >= 2
    assert {"sample", "manifest"} <= set(DATA_KEYS)


@pytest.mark.parametrize("key", ENCODER_KEYS)
def test_encoder_config_composes_and_is_named_after_its_file(make_cfg, key):
    cfg = make_cfg(f"encoder={key}", hydra_config=True)
    assert cfg.encoder.name == key
    assert cfg.hydra.runtime.choices.encoder == key
    assert isinstance(cfg.encoder.dim, int) and cfg.encoder.dim > 0
    assert isinstance(cfg.encoder.batch_size, int) and cfg.encoder.batch_size > 0
    for node in (*(cfg[k] for k in cfg if k != "hydra"), cfg.hydra.run, cfg.hydra.sweep):
        if OmegaConf.is_config(node):
            OmegaConf.to_container(node, resolve=True)  # every interpolation resolves
    assert cfg.hydra.run.dir.startswith(f"{cfg.paths.log_dir}/extract/{key}-")
    # the class the config builds, without building it (hub weights are not needed here)
    cls = get_class(cfg.encoder.model._target_)
    if cls is FusionEncoder:  # a concatenation of keyed encoders, named after its parts
        parts = [get_class(p._target_) for p in cfg.encoder.model.parts]
        assert key == "_".join(p.name for p in parts) == cfg.encoder.model.name
        assert sum(p.dim for p in parts) == cfg.encoder.dim
        for part in cfg.encoder.model.parts:
            assert part.device == cfg.device
    else:
        assert Path(inspect.getfile(cls)).stem == key, "one key everywhere: src/encoders/<key>.py"
        assert cls.name == key
    if isinstance(getattr(cls, "dim", None), int):
        assert cls.dim == cfg.encoder.dim
    params = inspect.signature(cls).parameters
    unknown = set(cfg.encoder.model) - {"_target_"} - set(params)
    assert not unknown, f"conf/encoder/{key}.yaml passes {unknown} that {cls.__name__} does not take"
    assert cfg.encoder.model.device == cfg.device
    assert embedding_options(cfg)["encoder"] == key and "device" not in embedding_options(cfg)["model"]


@pytest.mark.parametrize("key", DATA_KEYS)
def test_data_config_composes(make_cfg, key, tmp_path):
    overrides = [f"data={key}"]
    if key == "manifest":
        cfg = make_cfg(*overrides)
        with pytest.raises(MissingMandatoryValue):
            _ = cfg.data.manifest_path
        overrides.append(f"data.manifest_path={tmp_path / 'm.csv'}")
    cfg = make_cfg(*overrides)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    data = resolved["data"]
    assert {"name", "manifest_path", "metadata_path", "group_columns"} <= set(data)
    assert isinstance(data["group_columns"], list)
    assert resolved["paths"]["embeddings_dir"] == f"{resolved['paths']['root_dir']}/models-embeddings/{data['name']}"
    if key == "sample":
        assert Path(data["manifest_path"]) == SAMPLE_MANIFEST_PATH
        clips = load_clips(cfg.data)
        assert len(clips) == 63 and all(set(c.groups) == set(data["group_columns"]) for c in clips)
    elif data.get("features_dir"):  # a feature-only source (no audio, no manifest): trained, not extracted
        assert data["manifest_path"] is None
    elif data.get("sources"):  # a mix: each source is a data config of its own
        from src.building import data_sources

        sources = data_sources(cfg.data, cfg.paths)
        names = [s if isinstance(s, str) else s["name"] for s in data["sources"]]  # a key or an inline config
        assert [s.name for s in sources] == names
        assert all(s.name in DATA_KEYS for s, given in zip(sources, data["sources"]) if isinstance(given, str))
        assert [s.embeddings_dir for s in sources] == [f"{REPO_DIR}/models-embeddings/{n}" for n in names]
        assert {s.augments for s in sources} - {None} <= set(names)  # copies of sources of the same mix
    elif key != "manifest":
        manifest = REPO_DIR / data["manifest_path"]
        if not manifest.is_file():
            pytest.skip(f"{manifest} is not on this machine")
        with pytest.MonkeyPatch.context() as mp:
            mp.chdir(REPO_DIR)  # the shared-data paths are relative to the repo root
            clips = load_clips(cfg.data)
        assert clips and all(set(c.groups) == set(data["group_columns"]) for c in clips)


def test_vad_config_is_silero_parameters(make_cfg):
    cfg = make_cfg()
    from silero_vad import get_speech_timestamps

    params = vad_params(cfg.vad)
    names = set(cfg.vad) - {"batch_size", "backend", "retry_threshold"}  # how it runs, not Silero's parameters
    assert names == set(VadParams.__dataclass_fields__)
    assert names <= set(inspect.signature(get_speech_timestamps).parameters), "Silero's own names"
    assert all(getattr(params, k) == cfg.vad[k] for k in names)
    seg = build_segmenter(cfg.vad)
    assert seg.batch_size == cfg.vad.batch_size and seg.params == params and seg.backend == cfg.vad.backend == "onnx"


def test_config_hash_follows_what_shapes_embeddings(make_cfg):
    def h(*o):
        return config_hash(embedding_options(make_cfg(*o)))

    base = h()
    assert h("chunk_clips=3", "encoder.batch_size=2", "progress=true", "device=cuda", "num_threads=4") == base
    for changed in ("vad.threshold=0.6", "min_clip_s=1.0", "min_speech_s=0.5", "encoder.model.target_dbfs=-20"):
        assert h(changed) != base, changed


def test_joblib_launcher_composes(make_cfg):
    cfg = make_cfg("hydra/launcher=joblib", "num_shards=2", hydra_config=True)
    assert cfg.hydra.launcher._target_.endswith("JoblibLauncher")
    assert OmegaConf.to_container(cfg.hydra.sweep, resolve=True)["subdir"] == "shard-0"


def test_stream_and_timeline_settings_are_defined_once():
    """serve's WebSocket streams and its ?timeline=true uploads use the same settings as the stream
    and predict verbs: one config group each, whose schema and defaults are the dataclasses."""
    from hydra import compose, initialize_config_module
    from hydra.errors import ConfigCompositionException

    from src.inference.params import StreamParams, TimelineParams

    def cfg(name, *overrides):
        with initialize_config_module(version_base="1.3", config_module="conf"):
            return compose(name, overrides=list(overrides))

    serve, stream, predict = cfg("serve"), cfg("stream"), cfg("predict")
    assert serve.stream == stream.stream and StreamParams(**serve.stream) == StreamParams()
    assert serve.timeline_params == predict.timeline_params
    assert TimelineParams(**predict.timeline_params) == TimelineParams()
    assert serve.stream.change_hops == 3  # the value the streaming benchmark tuned (serve said 2 before)
    assert cfg("serve", "stream.change_hops=2").stream.change_hops == 2  # still overridable
    with pytest.raises(ConfigCompositionException, match="chnage_hops"):  # a misspelt key fails at compose time
        cfg("serve", "stream.chnage_hops=2")
    # which model answers, and how sure it must be: one group, the same in the three verbs
    for key in ("run", "unknown_below", "device"):
        assert serve[key] == stream[key] == predict[key], key
    assert cfg("predict", "run=default", "input=x").run == "default"


def test_paths_resolve_from_the_project_not_the_current_folder(make_cfg, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    paths = OmegaConf.to_container(make_cfg().paths, resolve=True)
    assert paths["root_dir"] == str(REPO_DIR) and paths["runs_dir"] == str(REPO_DIR / "runs")
    assert paths["log_dir"] == str(REPO_DIR / "logs")
    monkeypatch.setenv("GENDER_HOME", str(tmp_path / "home"))
    paths = OmegaConf.to_container(make_cfg().paths, resolve=True)
    assert paths["runs_dir"] == str(tmp_path / "home" / "runs")


MODEL_KEYS = sorted(p.stem for p in (CONF_DIR / "model").glob("*.yaml"))


@pytest.mark.parametrize("key", MODEL_KEYS)
def test_model_config_composes_and_is_named_after_its_file(make_cfg, key):
    """Model configs are found by glob, like encoder configs: each composes into ``train``, is named
    after its file, has a known kind and passes only arguments its class takes."""
    from hydra import compose, initialize_config_module

    from src.building import END_TO_END_KEYS, MODEL_META_KEYS, model_kind
    from src.models.checkpoint import END_TO_END

    with initialize_config_module(version_base="1.3", config_module="conf"):
        cfg = compose("train", overrides=[f"model={key}"])
    assert cfg.model.name == key
    kind = model_kind(cfg.model)
    cls = get_class(cfg.model._target_)
    params = inspect.signature(cls).parameters
    meta = set(MODEL_META_KEYS) | (set(END_TO_END_KEYS) if kind == END_TO_END else set())
    unknown = set(cfg.model) - {"_target_"} - meta - set(params)
    assert not unknown, f"conf/model/{key}.yaml passes {unknown} that {cls.__name__} does not take"
    if kind == END_TO_END:
        assert "n_age_bands" in params and cfg.run_key == key, "an end-to-end run is named after its model"
