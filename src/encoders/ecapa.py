"""SpeechBrain's ECAPA-TDNN speaker encoder (192-d), from the hub or from a local folder.

``source`` is a Hugging Face hub id (``speechbrain/spkrec-ecapa-voxceleb``) or a folder
holding ``hyperparams.yaml`` and the checkpoints it lists. Hub ids are looked up in the
local Hugging Face cache first and only then downloaded; folders never touch the network.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import torch

from src.encoders.base import EncoderLoadError, file_sha256, host_reachable, pad_batch, resolve_device

logger = logging.getLogger(__name__)

DEFAULT_SOURCE = "speechbrain/spkrec-ecapa-voxceleb"
HPARAMS_FILE = "hyperparams.yaml"


#: spkrec-ecapa-voxceleb's ``hyperparams.yaml`` (its layout and checkpoint names) with the sizes as fields;
#: ``pretrained_path`` keeps the hub id as published, so loading a folder must redirect it.
SPKREC_ECAPA_YAML = """\
n_mels: {n_mels}
pretrained_path: speechbrain/spkrec-ecapa-voxceleb
out_n_neurons: {out_neurons}
compute_features: !new:speechbrain.lobes.features.Fbank
    n_mels: !ref <n_mels>
mean_var_norm: !new:speechbrain.processing.features.InputNormalization
    norm_type: sentence
    std_norm: False
embedding_model: !new:speechbrain.lobes.models.ECAPA_TDNN.ECAPA_TDNN
    input_size: !ref <n_mels>
    channels: {channels}
    kernel_sizes: [5, 3, 3, 3, 1]
    dilations: [1, 2, 3, 4, 1]
    attention_channels: {attention_channels}
    se_channels: {se_channels}
    lin_neurons: 192
classifier: !new:speechbrain.lobes.models.ECAPA_TDNN.Classifier
    input_size: 192
    out_neurons: !ref <out_n_neurons>
mean_var_norm_emb: !new:speechbrain.processing.features.InputNormalization
    norm_type: global
    std_norm: False
modules:
    compute_features: !ref <compute_features>
    mean_var_norm: !ref <mean_var_norm>
    embedding_model: !ref <embedding_model>
    mean_var_norm_emb: !ref <mean_var_norm_emb>
    classifier: !ref <classifier>
label_encoder: !new:speechbrain.dataio.encoder.CategoricalEncoder
pretrainer: !new:speechbrain.utils.parameter_transfer.Pretrainer
    loadables:
        embedding_model: !ref <embedding_model>
        mean_var_norm_emb: !ref <mean_var_norm_emb>
        classifier: !ref <classifier>
        label_encoder: !ref <label_encoder>
    paths:
        embedding_model: !ref <pretrained_path>/embedding_model.ckpt
        mean_var_norm_emb: !ref <pretrained_path>/mean_var_norm_emb.ckpt
        classifier: !ref <pretrained_path>/classifier.ckpt
        label_encoder: !ref <pretrained_path>/label_encoder.txt
"""
FULL_SIZE = {"n_mels": 80, "channels": [1024, 1024, 1024, 1024, 3072], "attention_channels": 128,
             "se_channels": 128, "out_neurons": 7205}  # spkrec-ecapa-voxceleb: 20.8 M parameters
TINY_SIZE = {"n_mels": 24, "channels": [16, 16, 16, 16, 48], "attention_channels": 8, "se_channels": 8,
             "out_neurons": 4}  # for tests: loads and embeds in milliseconds


def save_random_ecapa(folder: str | Path, size: dict | None = None, seed: int = 0) -> Path:
    """Write a folder laid out like ``speechbrain/spkrec-ecapa-voxceleb`` holding a randomly
    initialised model of ``size`` (:data:`FULL_SIZE` by default, or :data:`TINY_SIZE`), loadable
    with ``EcapaEncoder(source=folder)``: for tests and speed measurements where the hub cannot be
    reached. Its embeddings mean nothing."""
    from hyperpyyaml import load_hyperpyyaml

    folder = Path(folder)
    size = {**FULL_SIZE, **(size or {})}
    text = SPKREC_ECAPA_YAML.format(**size)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / HPARAMS_FILE).write_text(text)
    torch.manual_seed(seed)
    hp = load_hyperpyyaml(text)
    torch.save(hp["embedding_model"].state_dict(), folder / "embedding_model.ckpt")
    torch.save(hp["classifier"].state_dict(), folder / "classifier.ckpt")
    hp["mean_var_norm_emb"](torch.randn(8, 1, 192), torch.ones(8))  # fill its running statistics
    hp["mean_var_norm_emb"]._save(folder / "mean_var_norm_emb.ckpt")
    hp["label_encoder"].update_from_iterable([f"id{i}" for i in range(size["out_neurons"])])
    hp["label_encoder"].save(folder / "label_encoder.txt")
    return folder


def offline_hint(source: str) -> str:
    """How to supply a local copy of ``source`` (a hub id), for error messages."""
    repo = source if not Path(source).is_dir() else DEFAULT_SOURCE
    return (f"download {repo} on a connected machine "
            f"(`huggingface-cli download {repo} --local-dir <dir>`), copy <dir> here "
            f"and set `encoder.model.source=<dir>`")


class EcapaEncoder:
    """``speechbrain.inference.speaker.EncoderClassifier`` behind the Encoder protocol.

    Args:
        source: hub id, or a local folder with ``hyperparams.yaml`` and checkpoints.
        savedir: where SpeechBrain links hub files (None: use them in the HF cache).
            Ignored for local folders, whose files are used in place.
        device: ``cpu``, ``cuda[:i]`` or ``auto``.

    Raises:
        EncoderLoadError: the weights cannot be loaded; the message says how to supply them.
    """

    name = "ecapa"
    dim = 192
    sample_rate_hz = 16_000

    def __init__(self, source: str = DEFAULT_SOURCE, savedir: str | None = None, device: str = "cpu"):
        self.device = resolve_device(device)
        self.source = str(source)
        if Path(self.source).is_dir():
            self.model = self._load_local(Path(self.source).resolve())
        elif self.source.startswith(("/", ".", "~")) or self.source.count("/") != 1:
            raise EncoderLoadError(f"encoder.model.source={self.source} is neither an existing folder "
                                   f"nor a hub id (owner/name); {offline_hint(DEFAULT_SOURCE)}")
        else:
            self.model = self._load_hub(self.source, savedir)
        self.model.eval()
        ckpt = self.model.hparams.pretrainer.paths.get("embedding_model")
        digest = file_sha256(ckpt) if ckpt and Path(ckpt).is_file() else "?"
        self.identity = f"{self.source} sha256:{digest}"

    def _from_hparams(self, source: str, savedir: str | None, allow_network: bool,
                      overrides: dict | None = None):
        """SpeechBrain's loader; files missing locally are fetched only if ``allow_network``."""
        from speechbrain.inference.speaker import EncoderClassifier
        from speechbrain.utils.fetching import FetchConfig

        return EncoderClassifier.from_hparams(
            source=source, savedir=savedir, overrides=overrides or {},
            fetch_config=FetchConfig(allow_network=allow_network),
            run_opts={"device": str(self.device)})

    def _load_local(self, folder: Path):
        """Load a folder in place, with no network access."""
        hparams_path = folder / HPARAMS_FILE
        if not hparams_path.is_file():
            raise EncoderLoadError(f"{folder} has no {HPARAMS_FILE}; {offline_hint(DEFAULT_SOURCE)}")
        # The published hyperparams.yaml points its checkpoints at the hub id through
        # `pretrained_path`; redirect it to this folder so nothing is fetched.
        has_pretrained_path = re.search(r"^pretrained_path\s*:", hparams_path.read_text("utf-8"), re.M)
        overrides = {"pretrained_path": str(folder)} if has_pretrained_path else None
        try:
            return self._from_hparams(str(folder), None, allow_network=False, overrides=overrides)
        except Exception as e:  # yaml, missing file, shape mismatch, ...: all mean unusable weights
            raise EncoderLoadError(f"cannot load ECAPA from {folder}: {type(e).__name__}: {e}. "
                                   f"To get a complete copy: {offline_hint(DEFAULT_SOURCE)}") from e

    def _load_hub(self, repo: str, savedir: str | None):
        """Load from the local HF cache, else download if the hub answers a quick probe."""
        from huggingface_hub import constants as hf_constants

        try:
            return self._from_hparams(repo, savedir, allow_network=False)
        except Exception as e:  # not cached (or a broken cached copy): try the network
            cache_error = f"{type(e).__name__}: {e}"
        logger.info("ECAPA %s is not in the local HF cache (%s)", repo, cache_error)
        endpoint = hf_constants.ENDPOINT
        if hf_constants.is_offline_mode():
            reason = "HF_HUB_OFFLINE is set"
        elif not host_reachable(endpoint):
            reason = f"{endpoint} is unreachable"
        else:
            try:
                return self._from_hparams(repo, savedir, allow_network=True)
            except Exception as e:  # wrapped below with the hint
                reason = f"download failed: {type(e).__name__}: {e}"
        raise EncoderLoadError(f"cannot load ECAPA '{repo}': not in the local cache and {reason}. "
                               f"{offline_hint(repo)}")

    def embed(self, waves: list[np.ndarray]) -> np.ndarray:
        """(B,) mono float32 waveforms at 16 kHz -> (B, 192) float32 embeddings (not normalised)."""
        batch, lengths = pad_batch(waves)
        relative_lengths = lengths.float() / lengths.max()
        with torch.inference_mode():
            emb = self.model.encode_batch(batch.to(self.device), relative_lengths.to(self.device))
        return emb.squeeze(1).float().cpu().numpy()
