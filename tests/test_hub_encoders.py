"""Hub encoders through their real loaders, with tiny random models saved in the real format.

No network: ECAPA and wav2vec2 weights are built here, written to ``tmp_path`` the way
the hub / torchaudio ship them, and loaded by the public constructors.
"""

from __future__ import annotations

import csv
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from src.data.audio import load_audio
from src.encoders.base import EncoderLoadError
from src.encoders.ecapa import TINY_SIZE, EcapaEncoder, save_random_ecapa
from src.encoders.wav2vec2 import Wav2Vec2Encoder, save_wav2vec2_checkpoint

SAMPLE_DIR = Path(__file__).resolve().parents[1] / "data" / "sample"

TINY_WAV2VEC2 = dict(
    extractor_mode="group_norm",  # as in wav2vec2-base
    extractor_conv_layer_config=[(32, 10, 5), (32, 3, 2), (32, 3, 2), (32, 3, 2), (32, 3, 2),
                                 (32, 2, 2), (32, 2, 2)],
    extractor_conv_bias=False,
    encoder_embed_dim=32,
    encoder_projection_dropout=0.0,
    encoder_pos_conv_kernel=16,
    encoder_pos_conv_groups=4,
    encoder_num_layers=2,
    encoder_num_heads=2,
    encoder_attention_dropout=0.0,
    encoder_ff_interm_features=64,
    encoder_ff_interm_dropout=0.0,
    encoder_dropout=0.0,
    encoder_layer_norm_first=False,
    encoder_layer_drop=0.0,
    aux_num_out=None,
)


@pytest.fixture(scope="module")
def clips() -> list[np.ndarray]:
    """Two real speech clips of different lengths (16 kHz, <= 3 s)."""
    with open(SAMPLE_DIR / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    waves = [load_audio(SAMPLE_DIR / r["path"]) for r in rows[:2]]
    return [waves[0][:48_000], waves[1][:30_000]]


@pytest.fixture
def ecapa_dir(tmp_path: Path) -> Path:
    """A folder laid out like speechbrain/spkrec-ecapa-voxceleb, holding a tiny random model."""
    return save_random_ecapa(tmp_path / "spkrec-ecapa-tiny", TINY_SIZE)


def check_embeddings(encoder, clips: list[np.ndarray], dim: int) -> None:
    """Batch shape, finiteness, distinct rows, and single == in-batch (loosely)."""
    batch = encoder.embed(clips)
    assert batch.shape == (2, dim) and batch.dtype == np.float32
    assert np.isfinite(batch).all()
    assert not np.allclose(batch[0], batch[1], atol=1e-4)
    alone = encoder.embed([clips[1]])[0]  # the shorter clip: padded inside the batch
    cos = alone @ batch[1] / (np.linalg.norm(alone) * np.linalg.norm(batch[1]))
    assert cos > 0.99, f"single vs batched cosine {cos:.4f}"
    np.testing.assert_allclose(alone, batch[1], rtol=0.1, atol=0.1 * np.abs(alone).max())


def test_ecapa_local_folder(ecapa_dir: Path, clips: list[np.ndarray], monkeypatch):
    from huggingface_hub import constants as hf_constants

    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)  # must not need it
    before = sorted(p.name for p in ecapa_dir.iterdir())
    encoder = EcapaEncoder(source=str(ecapa_dir))
    assert sorted(p.name for p in ecapa_dir.iterdir()) == before  # nothing copied or linked
    assert encoder.identity.startswith(str(ecapa_dir)) and "sha256:?" not in encoder.identity
    check_embeddings(encoder, clips, 192)


def test_wav2vec2_local_checkpoint(tmp_path: Path, clips: list[np.ndarray]):
    import torchaudio

    torch.manual_seed(0)
    path = tmp_path / "tiny_wav2vec2.pt"
    save_wav2vec2_checkpoint(TINY_WAV2VEC2, torchaudio.models.wav2vec2_model(**TINY_WAV2VEC2), path)
    encoder = Wav2Vec2Encoder(checkpoint_path=str(path), layer=2)
    assert encoder.dim == 32 and encoder.identity.startswith("tiny_wav2vec2.pt")
    check_embeddings(encoder, clips, 32)
    with pytest.raises(ValueError, match="layer=3"):
        Wav2Vec2Encoder(checkpoint_path=str(path), layer=3)


def test_ecapa_offline_hub_id_fails_fast(tmp_path: Path, monkeypatch):
    from huggingface_hub import constants as hf_constants

    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    start_s = time.monotonic()
    with pytest.raises(EncoderLoadError, match="encoder.model.source"):
        EcapaEncoder(source="speechbrain/spkrec-ecapa-voxceleb", savedir=str(tmp_path / "x"))
    assert time.monotonic() - start_s < 10


def test_wav2vec2_bundle_not_cached_fails_fast(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "torch-hub"))  # = torch.hub.set_dir
    monkeypatch.setattr("src.encoders.wav2vec2.host_reachable", lambda url, timeout_s=3.0: False)
    start_s = time.monotonic()
    with pytest.raises(EncoderLoadError, match="encoder.model.checkpoint_path") as err:
        Wav2Vec2Encoder()
    assert str(tmp_path / "torch-hub" / "checkpoints") in str(err.value)
    assert time.monotonic() - start_s < 10
