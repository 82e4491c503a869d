"""Shared fixtures for the extraction-pipeline tests.

Expensive objects (the real Silero VAD, the real Resemblyzer, the decoded sample) are
built once per session. Configs are built with Hydra's ``compose`` API and shrunk to a
few real clips written to ``tmp_path``; everything a test writes goes under
``tmp_path`` (embeddings, Hydra logs), never into the repository.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_module
from omegaconf import DictConfig

from src.config_store import register
from src.data.audio import load_audio
from src.data.manifest import Clip, read_manifest, write_manifest

REPO_DIR = Path(__file__).resolve().parents[1]
SAMPLE_DIR = REPO_DIR / "data" / "sample"
SAMPLE_MANIFEST_PATH = SAMPLE_DIR / "manifest.csv"
SAMPLE_GROUP_COLUMNS = ["corpus", "age_group"]
CLI_TIMEOUT_S = 240
register()  # the group schemas Hydra composes (src/config_store.py), as every verb does


@pytest.fixture(scope="session")
def sample_clips() -> list[Clip]:
    """All clips of the bundled real-speech sample (paths resolved, groups kept)."""
    clips = read_manifest(SAMPLE_MANIFEST_PATH, SAMPLE_GROUP_COLUMNS)
    assert len(clips) >= 20, "the bundled sample should hold a few dozen clips"
    return clips


@pytest.fixture(scope="session")
def clips_by_duration(sample_clips) -> list[Clip]:
    """The sample's clips, shortest first (durations from the decoded files' headers)."""
    import soundfile as sf

    return sorted(sample_clips, key=lambda c: (sf.info(str(c.path)).duration, c.id))


@pytest.fixture(scope="session")
def speech_clip(clips_by_duration) -> tuple[Path, np.ndarray]:
    """One real clip of a few seconds and its 16 kHz mono samples."""
    clip = clips_by_duration[len(clips_by_duration) // 2]
    return clip.path, load_audio(clip.path)


@pytest.fixture(scope="session")
def one_torch_thread():
    """Run torch on one intra-op thread for the session (``pytestmark = usefixtures(...)``).

    Silero steps 512-sample windows; on a shared 2-core machine two OpenMP threads per
    call make it about ten times slower than one, and the results are the same.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def segmenter():
    """The real batched Silero segmenter with the default parameters."""
    from src.vad.silero import SileroSegmenter

    return SileroSegmenter()


@pytest.fixture(scope="session")
def encoder():
    """The real Resemblyzer encoder (weights ship in its wheel)."""
    from src.encoders.resemblyzer import ResemblyzerEncoder

    return ResemblyzerEncoder(device="cpu")


@pytest.fixture(scope="session")
def make_cfg() -> Callable[..., DictConfig]:
    """``make_cfg("data=manifest", ...)`` -> the composed ``extract`` config.

    Repository-relative folders are made absolute and the progress bar is off; any
    override given wins over those defaults.
    """
    base = [f"paths.data_dir={REPO_DIR / 'data'}", "progress=false", "num_threads=1"]

    def _make(*overrides: str, config_name: str = "extract", hydra_config: bool = False) -> DictConfig:
        with initialize_config_module(version_base="1.3", config_module="conf"):
            return compose(config_name, overrides=[*base, *overrides], return_hydra_config=hydra_config)

    return _make


def clip_row(clip: Clip, **extra) -> dict[str, object]:
    """A manifest row for ``clip`` with an absolute path (so the CSV may live anywhere)."""
    row = {"path": str(Path(clip.path).resolve()), "speaker": clip.speaker, "gender": clip.gender,
           "id": clip.id}
    row.update(extra)
    return row


@pytest.fixture(scope="session")
def manifest_of() -> Callable[..., Path]:
    """``manifest_of(clips, path, extra_rows=())`` writes a manifest of real clips (+ rows)."""

    def _write(clips: Sequence[Clip], path: Path, extra_rows: Sequence[dict] = ()) -> Path:
        return write_manifest([clip_row(c) for c in clips] + list(extra_rows), path)

    return _write


@pytest.fixture
def tiny_manifest(tmp_path, clips_by_duration, manifest_of) -> Path:
    """A manifest of three short real clips (one female, one male at least), in ``tmp_path``."""
    short = clips_by_duration[:12]
    pick = [next(c for c in short if c.gender == "female"), next(c for c in short if c.gender == "male")]
    pick.append(next(c for c in short if c not in pick))
    return manifest_of(pick, tmp_path / "tiny" / "manifest.csv")


@pytest.fixture(scope="session")
def run_cli() -> Callable[..., subprocess.CompletedProcess]:
    """``run_cli("src.extract", *overrides)`` runs a verb as a real subprocess from the repo root."""

    def _run(module: str, *args: str, timeout_s: float = CLI_TIMEOUT_S) -> subprocess.CompletedProcess:
        env = {**os.environ, "PYTHONWARNINGS": "ignore"}
        proc = subprocess.run([sys.executable, "-m", module, *args], cwd=REPO_DIR, env=env,
                              capture_output=True, text=True, timeout=timeout_s)
        assert proc.returncode == 0, f"{module} {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr[-4000:]}"
        return proc

    return _run
