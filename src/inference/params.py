"""The settings of inference that several verbs share, as typed dataclasses: they are the schema
(and the defaults) of the ``timeline_params`` and ``stream`` config groups (``src/config_store.py``
registers them with Hydra's ConfigStore), so each setting is defined once. Each checks its ranges
when built, which the verbs do before any model loads: ``hop_s=0`` is one line, not a
``ZeroDivisionError`` after the model has loaded."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields


class SettingError(ValueError):
    """A setting out of its range (the message names it and the range); a usage error."""


def _check(obj, positive: tuple[str, ...], non_negative: tuple[str, ...] = (), at_least_one: tuple[str, ...] = ()):
    """Raise :class:`SettingError` for the first field of ``obj`` out of its range (NaN never passes)."""
    group = {"TimelineParams": "timeline_params", "StreamParams": "stream"}[type(obj).__name__]
    for f in fields(obj):
        v = getattr(obj, f.name)
        if v is None:
            continue
        bad = ((f.name in positive and not (math.isfinite(v) and v > 0))
               or (f.name in non_negative and not (math.isfinite(v) and v >= 0))
               or (f.name in at_least_one and not v >= 1))
        if bad:
            need = "> 0" if f.name in positive else ">= 0" if f.name in non_negative else ">= 1"
            raise SettingError(f"{group}.{f.name}={v} is out of range: it must be a number {need}")


def check_unknown_below(value: float | None) -> float | None:
    """``unknown_below`` is ``None`` (the model's own) or a probability in [0.5, 1]."""
    if value is not None and not 0.5 <= float(value) <= 1.0:
        raise SettingError(f"unknown_below={value} is out of range: a probability in [0.5, 1] "
                           "(the top probability under which the answer is unknown), or null for the model's own")
    return value


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
    min_voice_distance: float = 0.25  # ... the sides' mean speaker embeddings this cosine distance apart ...
    sure_voice_distance: float = 0.15  # ... (or only this far apart when each side's answer is at least ...
    sure_voice_p: float = 0.9  # ... this sure), and one side's speech answered female, the other's male

    def __post_init__(self) -> None:
        _check(self, positive=("window_s", "hop_s"), non_negative=("min_window_speech_s", "merge_gap_s", "min_voice_s"),
               at_least_one=("smooth_hops",))
        for name in ("min_voice_distance", "sure_voice_distance"):
            if not 0.0 <= getattr(self, name) <= 2.0:  # a cosine distance (NaN never passes)
                raise SettingError(f"timeline_params.{name}={getattr(self, name)} is out of range: "
                                   "it must be a number in [0, 2]")
        if not 0.5 <= self.sure_voice_p <= 1.0:
            raise SettingError(f"timeline_params.sure_voice_p={self.sure_voice_p} is out of range: "
                               "a probability in [0.5, 1]")


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

    def __post_init__(self) -> None:
        _check(self, positive=("window_s", "hop_s"),
               non_negative=("min_speech_s", "vad_min_silence_ms", "silence_unknown_s", "pause_split_s",
                             "sure_change_p"), at_least_one=("change_hops",))
        if not 0.0 < self.vad_threshold < 1.0:
            raise SettingError(f"stream.vad_threshold={self.vad_threshold} is out of range: it must be between 0 and 1")


@dataclass(frozen=True)
class QualityParams:
    """When audio is too degraded (or too unlike the voices the model was shown to work on) for a
    confident answer, and the most confidence each problem allows (``conf/quality``: the config
    group, so the caps can be re-measured for a new model). A cap of 0.5 answers ``unknown``; 1.0
    only notes the problem. Each was set from ``python bench/quality.py`` (README, "Bad input").
    """

    clipped_score: float = 0.6  # 95th over 99.9th percentile of |sample|: clean speech under 0.5, flat tops 1.0
    clipped_cap: float = 0.8
    severe_clipped_score: float = 0.7
    severe_clipped_cap: float = 0.5
    short_speech_s: float = 1.5  # less speech than this is too little to be sure ...
    short_cap: float = 0.8
    too_short_speech_s: float = 1.0  # ... and this little is not enough to answer
    too_short_cap: float = 0.5
    noisy_snr_db: float = 18.0  # estimated speech-to-noise ratio under which it is noisy ...
    noisy_cap: float = 0.8
    very_noisy_snr_db: float = 12.0  # ... and too noisy to answer
    very_noisy_cap: float = 0.5
    narrowband_db: float = -30.0  # energy over 4 kHz relative to all, under which it is band-limited (telephone)
    narrowband_cap: float = 0.75
    quiet_db: float = -45.0  # the voice's level (99.9th percentile of |sample|, dBFS) under which it is quiet ...
    quiet_cap: float = 0.8  # (shared clips reach down to -35 dBFS; 50 dev speakers at -50: 86 % right, 4 % sure wrong)
    very_quiet_db: float = -55.0  # ... and too quiet to answer (at -55: 78 % right, 6 % confidently wrong)
    very_quiet_cap: float = 0.5
    pitch_shifted_cap: float = 0.5  # a voice the model's shift gate calls pitch-shifted (a man raised an
    # octave: the model called most of them female): unknown (scripts/train_shift_gate.py measures the gate)

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name.endswith("_cap") and not 0.5 <= v <= 1.0:
                raise SettingError(f"quality.{f.name}={v} is out of range: a probability from 0.5 to 1")
            if not math.isfinite(v):
                raise SettingError(f"quality.{f.name}={v} must be a finite number")
