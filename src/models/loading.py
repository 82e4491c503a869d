"""The one loader of a run's ``best.pt``: it dispatches on the checkpoint's ``kind``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from src.models.checkpoint import END_TO_END, TrainedClassifier, checkpoint_kind, read_checkpoint
from src.models.end_to_end import EndToEndTrunk, load_end_to_end


@dataclass
class LoadedModel:
    """What a checkpoint holds, ready for inference.

    Attributes:
        kind: ``embedding_head`` (a head on an encoder's embeddings) or ``end_to_end``.
        classifier: the calibrated gender head.
        age_classifier: an end-to-end network's age-band head (``None`` otherwise).
        trunk: an end-to-end network's feature extractor, the encoder of its run (``None`` for a
            head on embeddings: its encoder is built from the run's config).
    """

    kind: str
    classifier: TrainedClassifier
    age_classifier: TrainedClassifier | None = None
    trunk: EndToEndTrunk | None = None

    @property
    def reads_audio(self) -> bool:
        """True when the model has no embeddings store: it is evaluated on the audio itself."""
        return self.trunk is not None


def load_model(path: str | Path) -> LoadedModel:
    """Load ``best.pt`` whatever its kind."""
    blob = read_checkpoint(path)
    if checkpoint_kind(blob) == END_TO_END:
        trunk, gender, age = load_end_to_end(path, blob)
        return LoadedModel(END_TO_END, gender, age, trunk)
    return LoadedModel(checkpoint_kind(blob), TrainedClassifier.from_blob(blob))
