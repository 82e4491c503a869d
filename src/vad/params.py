"""Silero VAD's settings: the schema and defaults of the ``vad`` config group (no torch here, so
that composing a config stays light)."""

from __future__ import annotations

from dataclasses import dataclass, fields

BACKENDS = ("onnx", "jit")


@dataclass(frozen=True)
class VadParams:
    """Silero's own parameter names (units in the names), passed to its ``get_speech_timestamps``;
    hashed into an embeddings store's sidecar, so a change here re-extracts."""

    threshold: float = 0.5  # speech probability above which a window is speech
    neg_threshold: float | None = None  # below this speech ends (None: threshold - 0.15)
    min_speech_duration_ms: int = 250  # shorter speech bursts are dropped
    max_speech_duration_s: float = float("inf")  # longer segments are split
    min_silence_duration_ms: int = 100  # silence needed to end a segment
    speech_pad_ms: int = 30  # padding added to each side of a segment


@dataclass(frozen=True)
class VadSettings(VadParams):
    """The ``vad`` config group (``vad=silero``): Silero's parameters, and which of Silero's models
    runs them and how many clips it steps together (these two change speed, not the speech found:
    the models' probabilities agree to 3e-5, see :class:`~src.vad.silero.SileroSegmenter`)."""

    batch_size: int = 32  # clips stepped through the model together (backend=jit only)
    backend: str = "onnx"  # onnx: Silero's sequence ONNX model (ONNX Runtime, ~5x faster); jit: its TorchScript model
    # answering a recording (predict, the Python and HTTP APIs; not extraction or live streams): when the VAD
    # finds less than the pipeline's min_speech_s at `threshold`, look again at this one, from the same
    # probabilities (screamed speech scores low: 42 of 1,092 CREMA-D clips had under 0.5 s at 0.5, 39 have
    # speech at 0.15, and white and brown noise, hum and tones still none); null: never
    retry_threshold: float | None = 0.15

    def __post_init__(self):
        if self.backend not in BACKENDS:
            raise ValueError(f"vad.backend={self.backend!r}: one of {', '.join(BACKENDS)}")
        if self.retry_threshold is not None and not 0.0 < self.retry_threshold <= self.threshold:
            raise ValueError(f"vad.retry_threshold={self.retry_threshold}: a probability in (0, threshold] or null")

    @property
    def params(self) -> VadParams:
        """Silero's parameters alone."""
        return VadParams(**{f.name: getattr(self, f.name) for f in fields(VadParams)})
