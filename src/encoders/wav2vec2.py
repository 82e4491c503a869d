"""wav2vec 2.0 (torchaudio), one transformer layer's output averaged over time.

Weights come from torchaudio's ``WAV2VEC2_BASE`` bundle (downloaded once into the torch
hub cache) or from a local file written by :func:`save_wav2vec2_checkpoint` (or holding
a plain ``WAV2VEC2_BASE`` state dict).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from torch import nn

from src.encoders.base import EncoderLoadError, file_sha256, host_reachable, pad_batch, resolve_device

logger = logging.getLogger(__name__)

BUNDLE_NAME = "WAV2VEC2_BASE"
BUNDLE_URL_BASE = "https://download.pytorch.org/torchaudio/models/"  # torchaudio's own prefix


def save_wav2vec2_checkpoint(model_params: dict, model: nn.Module, path: str | Path) -> None:
    """Write ``{"params": model_params, "state_dict": ...}``, loadable with ``checkpoint_path``.

    ``model_params`` are the ``torchaudio.models.wav2vec2_model`` keyword arguments
    that built ``model``.
    """
    torch.save({"params": dict(model_params), "state_dict": model.state_dict()}, path)


def bundle_checkpoint_path() -> Path:
    """Where ``torch.hub`` caches the ``WAV2VEC2_BASE`` weights (``<hub_dir>/checkpoints/...``)."""
    import torchaudio

    return Path(torch.hub.get_dir()) / "checkpoints" / torchaudio.pipelines.WAV2VEC2_BASE._path


def read_checkpoint(path: Path) -> tuple[dict, dict]:
    """A local file -> (wav2vec2_model kwargs, state dict); a bare state dict means WAV2VEC2_BASE."""
    import torchaudio

    obj = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(obj, dict) and "params" in obj and "state_dict" in obj:
        return dict(obj["params"]), obj["state_dict"]
    return dict(torchaudio.pipelines.WAV2VEC2_BASE._params), obj


def uses_group_norm(model: nn.Module) -> bool:
    """Base-style feature extractor: one GroupNorm over the whole time axis of the first conv.

    Its statistics include any zero padding, so such models embed one waveform at a time
    to keep each embedding independent of the batch it came in.
    """
    return isinstance(model.feature_extractor.conv_layers[0].layer_norm, nn.GroupNorm)


class Wav2Vec2Encoder:
    """Time-averaged output of transformer layer ``layer`` of a wav2vec 2.0 model.

    Args:
        checkpoint_path: local weights file; None = torchaudio's ``WAV2VEC2_BASE`` bundle.
        layer: 1-based transformer layer whose output (B, frames, dim) is averaged.
        device: ``cpu``, ``cuda[:i]`` or ``auto``.

    Raises:
        ValueError: ``layer`` outside 1..number of transformer layers.
        EncoderLoadError: the weights cannot be loaded; the message says how to supply them.
    """

    name = "wav2vec2"
    sample_rate_hz = 16_000

    def __init__(self, checkpoint_path: str | None = None, layer: int = 12, device: str = "cpu"):
        import torchaudio

        self.device = resolve_device(device)
        if checkpoint_path is None:
            params, state_dict, weights = dict(torchaudio.pipelines.WAV2VEC2_BASE._params), None, None
        else:
            weights = Path(checkpoint_path)
            if not weights.is_file():
                raise EncoderLoadError(f"encoder.model.checkpoint_path={weights} is not a file")
            try:
                params, state_dict = read_checkpoint(weights)
            except Exception as e:  # pickle/unpickling errors of many types
                raise EncoderLoadError(f"cannot read wav2vec2 checkpoint {weights}: {e}") from e

        n_layers = int(params["encoder_num_layers"])
        if not 1 <= layer <= n_layers:
            raise ValueError(f"wav2vec2 layer={layer} is out of range: this model has "
                             f"transformer layers 1..{n_layers}")
        self.layer = layer
        self.dim = int(params["encoder_embed_dim"])

        if state_dict is None:
            self.model = self._load_bundle()
            weights = bundle_checkpoint_path()
            source = f"torchaudio:{BUNDLE_NAME}"
        else:
            self.model = torchaudio.models.wav2vec2_model(**params)
            try:
                self.model.load_state_dict(state_dict)
            except RuntimeError as e:  # keys or shapes that do not fit these params
                raise EncoderLoadError(f"{weights} does not fit its wav2vec2 params: {e}") from e
            source = weights.name
        self.model.eval().to(self.device)
        self.per_utterance = uses_group_norm(self.model)
        self.identity = f"{source} layer:{layer} sha256:{file_sha256(weights)}"

    @staticmethod
    def _load_bundle() -> nn.Module:
        """``WAV2VEC2_BASE.get_model()``, downloading only if not cached and the host answers."""
        import torchaudio

        cached = bundle_checkpoint_path()
        hint = (f"put {cached.name} in {cached.parent} (from {BUNDLE_URL_BASE}{cached.name}, "
                f"fetched on a connected machine) or set `encoder.model.checkpoint_path=<file>`")
        if not cached.is_file():
            if not host_reachable(BUNDLE_URL_BASE):
                raise EncoderLoadError(f"wav2vec2 weights are not cached and "
                                       f"{BUNDLE_URL_BASE} is unreachable; {hint}")
            logger.info("downloading %s to %s", cached.name, cached.parent)
        try:
            return torchaudio.pipelines.WAV2VEC2_BASE.get_model()
        except Exception as e:  # URLError, a corrupt cached file, ...
            raise EncoderLoadError(f"cannot load {BUNDLE_NAME}: {type(e).__name__}: {e}; {hint}") from e

    def _embed_padded(self, waves: list[np.ndarray]) -> torch.Tensor:
        """One padded forward pass -> (B, dim) means over each waveform's valid frames."""
        batch, lengths = pad_batch(waves)
        feats, frame_counts = self.model.extract_features(
            batch.to(self.device), lengths.to(self.device), num_layers=self.layer)
        hidden = feats[self.layer - 1]  # (B, frames, dim)
        valid = torch.arange(hidden.shape[1], device=hidden.device)[None, :] < frame_counts[:, None]
        total = (hidden * valid[..., None]).sum(dim=1)
        return total / frame_counts.clamp(min=1)[:, None].to(hidden.dtype)

    def embed(self, waves: list[np.ndarray]) -> np.ndarray:
        """(B,) mono float32 waveforms at 16 kHz (raw, not normalised, as the bundle expects;
        at least 400 samples) -> (B, dim) float32."""
        with torch.inference_mode():
            if self.per_utterance:
                out = torch.cat([self._embed_padded([w]) for w in waves])
            else:
                out = self._embed_padded(waves)
        return out.float().cpu().numpy()
