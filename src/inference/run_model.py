"""``load_run_model(run_dir)``: the one way from a finished run folder to what scores audio,
whatever the run's kind (a head on an encoder's embeddings, or an end-to-end network split into
its trunk and heads). ``GenderPipeline.from_run``, ``evaluate``, ``analyze`` and the study use it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from omegaconf import OmegaConf

from src.encoders.base import Encoder
from src.models.checkpoint import CHECKPOINT_NAME, TrainedClassifier
from src.models.loading import load_model
from src.vad.silero import SileroSegmenter


@dataclass
class RunModel:
    """A run's model ready to score.

    Attributes:
        kind: the checkpoint's kind (``embedding_head`` or ``end_to_end``).
        classifier: the calibrated gender head (with its age heads, OOD gate ...).
        encoder: what turns speech into the classifier's inputs: the run's encoder, or an end-to-end
            network's trunk; ``None`` when not asked for (``with_encoder=False``, a head on embeddings).
        age_classifier: an end-to-end network's age-band head, else ``None``.
        reads_audio: the run has no embeddings store to score: it is evaluated on the audio.
    """

    kind: str
    classifier: TrainedClassifier
    encoder: Encoder | None
    age_classifier: TrainedClassifier | None
    reads_audio: bool

    def segmenter(self) -> SileroSegmenter:
        """Silero with the VAD settings the run's training data was cut with."""
        return run_segmenter(self.classifier)


def load_run_model(run_dir: str | Path, device: str = "cpu", with_encoder: bool = True) -> RunModel:
    """Load a run's checkpoint (dispatching on its kind) and, for a head on embeddings and
    ``with_encoder``, build the encoder its embeddings were extracted with.

    Raises:
        FileNotFoundError: no ``best.pt`` in ``run_dir``.
        ValueError: the encoder built is not the one the run was trained on.
    """
    from src.building import build_encoder

    run_dir = Path(run_dir)
    if not (run_dir / CHECKPOINT_NAME).exists():
        raise FileNotFoundError(f"{run_dir} has no {CHECKPOINT_NAME}: is it a finished training run?")
    loaded = load_model(run_dir / CHECKPOINT_NAME)
    encoder = loaded.trunk
    if encoder is None and with_encoder:
        classifier = loaded.classifier
        enc_cfg = OmegaConf.load(run_dir / "config.yaml").encoder
        made_with = classifier.encoder.get("options", {}).get("model") or {}
        if "_target_" in made_with:  # the settings the embeddings were extracted with, not the train command's
            enc_cfg.model = OmegaConf.create(made_with)
            enc_cfg.dim = classifier.encoder.get("dim", enc_cfg.dim)
        enc_cfg.model.device = device
        encoder = build_encoder(enc_cfg)
        if classifier.encoder.get("weights") and classifier.encoder["weights"] != encoder.identity:
            raise ValueError(f"the run was trained on {classifier.encoder['weights']!r} embeddings but the "
                             f"encoder loaded is {encoder.identity!r}")
    return RunModel(loaded.kind, loaded.classifier, encoder, loaded.age_classifier, loaded.reads_audio)


def run_segmenter(classifier: TrainedClassifier) -> SileroSegmenter:
    """Silero with the VAD settings the run's training data was cut with."""
    from src.building import build_segmenter

    vad_cfg = OmegaConf.create(classifier.encoder.get("options", {}).get("vad") or {})
    vad_cfg.batch_size = 8
    return build_segmenter(vad_cfg)
