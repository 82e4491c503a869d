"""The settings of inference that several verbs share, as typed dataclasses: they are the schema
(and the defaults) of the ``timeline_params`` and ``stream`` config groups (``conf/__init__.py``
registers them with Hydra's ConfigStore), so each setting is defined once."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TimelineParams:
    """How a long recording is cut into labelled segments."""

    window_s: float = 1.5  # speech scored per decision
    hop_s: float = 0.5  # one decision per hop
    min_window_speech_s: float = 0.5  # windows with less speech are not scored
    smooth_hops: int = 3  # moving average of p(male) over this many scored hops
    merge_gap_s: float = 1.0  # neighbouring segments of one label with a pause up to this long become one
    # `mixed` only when two voices are established (src/inference/pipeline.py Voices; bench/mixed.py measures it):
    # the scored hops split in two by speaker embedding, ...
    min_voice_s: float = 2.0  # ... each side with this many seconds of hops, ...
    min_voice_distance: float = 0.25  # ... the sides' mean speaker embeddings this cosine distance apart, ...
    # ... and one side's speech answered female, the other's male (the model's threshold and unknown_below)

    def __post_init__(self) -> None:
        checks = {"window_s": self.window_s > 0, "hop_s": self.hop_s > 0, "smooth_hops": self.smooth_hops >= 1,
                  "min_window_speech_s": self.min_window_speech_s >= 0, "merge_gap_s": self.merge_gap_s >= 0,
                  "min_voice_s": self.min_voice_s >= 0,
                  "min_voice_distance": 0.0 <= self.min_voice_distance <= 2.0}
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"timeline_params.{bad[0]}={getattr(self, bad[0])} is out of range "
                             "(min_voice_distance in [0, 2], the others positive)")


@dataclass(frozen=True)
class StreamParams:
    """Streaming settings (``conf/stream.yaml``)."""

    window_s: float = 1.5  # audio kept in the ring and scored
    hop_s: float = 0.3  # one decision per hop
    min_speech_s: float = 0.4  # less speech in the window: no decision this hop
    vad_threshold: float = 0.5
    vad_min_silence_ms: int = 100
    change_hops: int = 3  # decisions in a row a new speaker label needs ...
    sure_change_p: float = 0.99  # ... unless its calibrated probability is at least this (> 1: never)
    silence_unknown_s: float = 1.0  # silence after which the label becomes unknown
    pause_split_s: float | None = 0.25  # after a pause this long, score only the speech since (0/None: off)
