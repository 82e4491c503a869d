"""The JSON shapes of the HTTP API, as ``/docs`` and ``/openapi.json`` describe them.

The routes' answers are validated against these models (``response_model``; ``extra="forbid"``, so
a field the model does not document is an error in the tests, not a silent gap in ``/docs``), with
the error statuses of ``POST /v1/classify`` and its multipart body.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from src.serving.uploads import UPLOAD_FIELD


class ErrorBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    error: str = Field(description="a short stable code, e.g. too_large, unsupported_media_type")
    detail: str = Field(description="what went wrong and what to change")


class SegmentBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    start_s: float
    end_s: float
    label: str = Field(description="female, male or unknown; with two voices, the voice's own answer")
    p_male: float
    speech_s: float | None = Field(None, description="seconds of speech in it (a segment may span a short pause)")


class ClassifyBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    label: str = Field(description="female, male, mixed (two voices, each established: see speaking_time_s) or "
                                   "unknown (no speech, or not confident enough)")
    p_female: float | None
    p_male: float | None = Field(description="calibrated probability of male, of the whole recording "
                                             "(also when mixed)")
    speech_s: float = Field(description="seconds of speech found by the VAD")
    duration_s: float
    status: str = Field(description="ok, unknown (not sure, or a voice unlike the training data), no_speech or error")
    reason: str | None = None
    quality: list[str] = Field(default_factory=list, description=(
        "why the answer is less sure or unknown: clipped, short_speech, noisy, narrowband, quiet, truncated "
        "(the file ends early; what decoded was used), pitch_shifted (a voice raised about an octave)"))
    age_group: str | None = Field(None, description="child, teen or adult (models trained where ages exist)")
    p_age_group: float | None = Field(None, description="the age group's calibrated probability")
    age_band: str | None = Field(None, description="child, teen, adult, ... (runs with an age head only)")
    p_age_band: float | None = Field(None, description="the age band's probability (not calibrated)")
    timeline: list[SegmentBody] = Field(default_factory=list, description="with ?timeline=true (the default)")
    speaking_time_s: dict[str, float] = Field(default_factory=dict,
                                              description="seconds per voice, with ?timeline=true")
    model: str | None = Field(None, description="the model that answered")
    filename: str | None = Field(None, description="the client's file name, as sent (never used as a path)")


class ExampleBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str
    name: str
    url: str
    note: str | None = Field(None, description="where the clip comes from, and whether the shipped model trained on it")


class HealthBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: str = Field(description="ok, or degraded while fewer model workers are alive than expected")
    workers: dict[str, int] = Field(description="model worker processes: alive, expected, restarts")
    classes: list[str]
    encoder: str | None
    run: str | None
    active_streams: int
    uploads: dict[str, int] = Field(description="active, max, served, refused_busy (503), timed_out (408)")
    uptime_s: float
    limits: dict[str, float | int]
    colours: dict[str, str] = Field(default_factory=dict, description="one colour per label (src/labels.py)")
    model_card: str | None = Field(None, description="URL of the model's card (its data and limits), if it has one")


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": text} for code, text in (
        (400, "bad multipart body, empty file"), (408, "the body did not arrive within upload_timeout_s"),
        (413, "body over max_upload_mb, or audio over max_duration_s"),
        (415, "the file part is not audio"), (422, "no `file` field, unreadable audio, bad query"),
        (500, "a bug; the service goes on"),
        (503, "max_uploads uploads are in progress (busy), or no model worker is alive (workers_unavailable); "
              "retry after Retry-After seconds"))}

UPLOAD_BODY = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": [UPLOAD_FIELD],
    "properties": {UPLOAD_FIELD: {"type": "string", "format": "binary", "contentMediaType": "application/octet-stream",
                                  "description": "audio: wav, flac, mp3, ogg, m4a, mp4, webm, opus ... (anything "
                                                 "libsndfile or FFmpeg decodes)"}}}}}}}
