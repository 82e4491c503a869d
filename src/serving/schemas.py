"""The JSON shapes of the HTTP API, as ``/docs`` and ``/openapi.json`` describe them.

The routes answer plain dicts (``JSONResponse``); these models only document them, with the
error statuses of ``POST /v1/classify`` and its multipart body.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from src.serving.uploads import UPLOAD_FIELD


class ErrorBody(BaseModel):
    error: str = Field(description="a short stable code, e.g. too_large, unsupported_media_type")
    detail: str = Field(description="what went wrong and what to change")


class SegmentBody(BaseModel):
    start_s: float
    end_s: float
    label: str
    p_male: float


class ClassifyBody(BaseModel):
    label: str = Field(description="female, male or unknown (no speech, or not confident enough)")
    p_female: float | None
    p_male: float | None = Field(description="calibrated probability of male")
    speech_s: float = Field(description="seconds of speech found by the VAD")
    duration_s: float
    status: str = Field(description="ok, unknown (not sure, or a voice unlike the training data), no_speech or error")
    reason: str | None = None
    quality: list[str] = Field(default_factory=list, description=(
        "why the answer is less sure or unknown: clipped, short_speech, noisy, narrowband, truncated "
        "(the file ends early; what decoded was used)"))
    age_band: str | None = Field(None, description="child, teen, adult, ... (runs with an age head only)")
    p_age_band: float | None = Field(None, description="the age band's probability (not calibrated)")
    timeline: list[SegmentBody] = Field(default_factory=list, description="with ?timeline=true")
    speaking_time_s: dict[str, float] = Field(default_factory=dict, description="with ?timeline=true")
    filename: str | None = Field(None, description="the client's file name, as sent (never used as a path)")


class HealthBody(BaseModel):
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
                                  "description": "audio: wav, flac, ogg, mp3 ... (anything libsndfile reads)"}}}}}}}
