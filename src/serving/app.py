"""The HTTP service around one :class:`GenderPipeline`: files, live streams and a web page.

    app = create_app(lambda: GenderPipeline.from_run(run_dir), ServeSettings())
    uvicorn.run(app, host="127.0.0.1", port=8000)      # what ``python -m src.serve`` does

Endpoints:

* ``POST /v1/classify[?timeline=true]``: a multipart upload (field ``file``) -> the
  ``predict`` result as JSON (label, p_female, p_male, speech_s, duration_s, timeline,
  speaking_time_s, status, reason, filename).
* ``WebSocket /v1/stream?rate=16000&dtype=int16|float32``: binary frames of mono PCM at
  the declared rate (whole samples per frame); JSON messages back: ``ready`` once, an
  ``event`` per decision (t_s, label, p_male, speech_s, changed), and after an empty
  binary frame (end of stream) ``end`` with speaking time per label. Bad frames get an
  ``error`` message and a close with code 1008 (policy violation).
* ``GET /healthz``, ``GET /docs`` (OpenAPI; Swagger UI's files come with the ``fastapi-offline``
  package, so the page works with no internet), ``GET /`` (the web page in ``static/``).

Every error is JSON ``{"error": <code>, "detail": <message>}`` with a 4xx status (5xx for
a bug, which never stops the service). The model loads once, at start-up (lifespan).
The pipeline is not thread-safe: every call into it (the whole file classification, or
one streaming decision) holds its lock, while decoding and each stream's own Silero
VAD run outside it. With ``model_workers`` > 1 (and a pipeline factory), uploads are classified
in that many worker processes (``src/serving/workers.py``), so they run on as many cores.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
import numpy as np
import soxr
import torch
from fastapi import FastAPI, Query, Request, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel, Field
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.websockets import WebSocketDisconnect, WebSocketState

from src.data.audio import SAMPLE_RATE_HZ, AudioError, decode_audio
from src.inference.pipeline import GenderPipeline, GenderResult
from src.inference.sources import PCM_DTYPES, SourceError, check_pcm_format, pcm_to_mono
from src.inference.streaming import StreamEvent, StreamingGender, StreamParams
from src.labels import CLASSES, LABEL_COLOURS
from src.serving.examples import Example, examples_router
from src.serving.workers import ModelWorkers
from src.serving.limits import BodyTimeout, UploadGate, timed_chunks

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
UPLOAD_FIELD = "file"
MULTIPART_SLACK_BYTES = 64 * 1024  # boundaries and part headers around the file, at most
ACCEPTED_TYPES = ("audio/", "application/octet-stream", "application/ogg", "video/ogg")
WS_POLICY_VIOLATION = 1008  # RFC 6455 close codes
WS_TOO_BIG = 1009
WS_TRY_AGAIN_LATER = 1013


@dataclass(frozen=True)
class ServeSettings:
    """Limits and options of the service (``conf/serve.yaml``)."""

    max_upload_mb: float = 20.0  # request body of POST /v1/classify, MiB
    max_duration_s: float = 600.0  # longest uploaded recording, seconds of audio
    max_stream_s: float = 3600.0  # longest WebSocket stream, seconds of audio
    max_frame_kb: float = 1024.0  # largest WebSocket binary message, KiB
    max_streams: int = 8  # WebSocket streams at once (each holds its own Silero VAD)
    decode_workers: int = 2  # uploads decoded at once
    model_workers: int = 2  # processes classifying uploads side by side (1: in the server, one at a time)
    max_uploads: int = 32  # uploads in progress at once (reading, queued, classified); more: 503
    upload_timeout_s: float = 60.0  # the whole request body must arrive within this; else 408
    upload_idle_timeout_s: float = 10.0  # ... and no gap between its chunks may be longer
    stream: StreamParams = StreamParams()
    tmp_dir: str | None = None  # uploads go here; None: a new folder in the system temp dir, removed at exit
    allowed_origins: tuple[str, ...] = ()  # browser origins allowed on the WebSocket besides the page's own
    run_name: str | None = None  # shown by /healthz
    examples: tuple[Example, ...] = ()  # clips the page offers to try (GET /v1/examples)

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def max_frame_bytes(self) -> int:
        return int(self.max_frame_kb * 1024)


# ------------------------------------------------------------------------------------- JSON shapes (docs)

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
    quality: list[str] = Field(default_factory=list, description="why the answer is less sure or unknown: clipped, "
                               "short_speech, noisy, narrowband, truncated (the file ends early; what decoded was used)")
    age_band: str | None = Field(None, description="child, teen, adult, ... (runs with an age head only)")
    p_age_band: float | None = Field(None, description="the age band's probability (not calibrated)")
    timeline: list[SegmentBody] = Field(default_factory=list, description="with ?timeline=true")
    speaking_time_s: dict[str, float] = Field(default_factory=dict, description="with ?timeline=true")
    filename: str | None = Field(None, description="the client's file name, as sent (never used as a path)")


class HealthBody(BaseModel):
    status: str
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
        (500, "a bug; the service goes on"), (503, "max_uploads uploads are in progress; retry later"))}

UPLOAD_BODY = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": [UPLOAD_FIELD],
    "properties": {UPLOAD_FIELD: {"type": "string", "format": "binary", "contentMediaType": "application/octet-stream",
                                  "description": "audio: wav, flac, ogg, mp3 ... (anything libsndfile reads)"}}}}}}}


class ApiError(Exception):
    """An answer with a 4xx/5xx status and a JSON ``{"error", "detail"}`` body."""

    def __init__(self, status: int, error: str, detail: str):
        super().__init__(f"{status} {error}: {detail}")
        self.status, self.error, self.detail = status, error, detail


def error_response(status: int, error: str, detail: str) -> JSONResponse:
    return JSONResponse({"error": error, "detail": detail}, status_code=status)


# --------------------------------------------------------------------------------------------- uploads

@dataclass
class Upload:
    """What the multipart body held (the file's bytes are in the service's temp file)."""

    filename: str | None = None
    content_type: str | None = None
    size: int = 0
    found: bool = False


async def receive_upload(request: Request, dest: Path, max_bytes: int, idle_timeout_s: float = float("inf"),
                         total_timeout_s: float = float("inf")) -> Upload:
    """Stream the ``file`` part of a multipart body into ``dest``, enforcing ``max_bytes`` and
    the timeouts (no chunk for ``idle_timeout_s``, or the body not done in ``total_timeout_s``).

    The body is never held in memory; the client's file name is kept only as a string.

    Raises:
        ApiError: 400 (not multipart, malformed), 408 (too slow), 413 (too large), 415 (not audio),
            422 (no file field).
    """
    ctype, params = parse_options_header(request.headers.get("content-type", ""))
    if ctype != b"multipart/form-data" or not params.get(b"boundary"):
        raise ApiError(400, "bad_multipart", "send the audio as multipart/form-data with a `file` field "
                                              "(e.g. curl -F file=@call.wav)")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes + MULTIPART_SLACK_BYTES:
        raise ApiError(413, "too_large", f"the upload is {int(declared) / 2**20:.1f} MiB; the limit is "
                                         f"{max_bytes / 2**20:g} MiB (max_upload_mb)")
    up = Upload()
    state: dict[str, Any] = {"headers": [], "name": b"", "value": b"", "in_file": False, "ended": False}

    def on_part_begin() -> None:
        state["headers"], state["in_file"] = [], False

    def on_header_field(data: bytes, start: int, end: int) -> None:
        state["name"] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        state["value"] += data[start:end]

    def on_header_end() -> None:
        state["headers"].append((state["name"].lower(), state["value"]))
        state["name"], state["value"] = b"", b""

    def on_headers_finished() -> None:
        headers = dict(state["headers"])
        _, opts = parse_options_header(headers.get(b"content-disposition", b""))
        if opts.get(b"name") != UPLOAD_FIELD.encode() or up.found:
            return  # other fields are ignored; only the first `file` part is read
        up.found, state["in_file"] = True, True
        raw_name = opts.get(b"filename")
        up.filename = raw_name.decode("utf-8", "replace")[:200] if raw_name is not None else None
        up.content_type = headers.get(b"content-type", b"").decode("latin-1").strip().lower() or None
        if up.content_type and not up.content_type.startswith(ACCEPTED_TYPES):
            raise ApiError(415, "unsupported_media_type", f"the file part is {up.content_type!r}; send audio "
                                                          "(audio/*, or application/octet-stream)")

    def on_part_data(data: bytes, start: int, end: int) -> None:
        if state["in_file"]:
            up.size += end - start
            if up.size > max_bytes:
                raise ApiError(413, "too_large", f"the file is over the limit of {max_bytes / 2**20:g} MiB "
                                                 "(max_upload_mb)")
            out.write(data[start:end])

    def on_part_end() -> None:
        state["in_file"] = False

    def on_end() -> None:
        state["ended"] = True

    parser = MultipartParser(params[b"boundary"], {
        "on_part_begin": on_part_begin, "on_part_data": on_part_data, "on_part_end": on_part_end,
        "on_header_field": on_header_field, "on_header_value": on_header_value, "on_header_end": on_header_end,
        "on_headers_finished": on_headers_finished, "on_end": on_end})
    received = 0
    with open(dest, "xb") as out:
        try:
            async for chunk in timed_chunks(request.stream(), idle_timeout_s, total_timeout_s):
                received += len(chunk)
                if received > max_bytes + MULTIPART_SLACK_BYTES:
                    raise ApiError(413, "too_large", f"the upload is over the limit of {max_bytes / 2**20:g} MiB "
                                                     "(max_upload_mb)")
                parser.write(chunk)
            parser.finalize()
        except FormParserError as e:
            raise ApiError(400, "bad_multipart", f"the multipart body is malformed: {e}") from None
        except BodyTimeout as e:
            raise ApiError(408, "timeout", f"the upload was too slow: {e}") from None
    if not up.found:
        raise ApiError(422, "missing_file", f"no `{UPLOAD_FIELD}` field in the form: send the audio as "
                                            f"`{UPLOAD_FIELD}` (e.g. curl -F file=@call.wav)")
    if not state["ended"]:
        raise ApiError(400, "bad_multipart", "the multipart body ended before its closing boundary")
    return up


AUDIO_ERRORS = {  # AudioError.reason -> (status, error)
    "empty_file": (400, "empty_file"), "empty_audio": (422, "empty_audio"), "too_long": (413, "too_long"),
    "non_finite": (422, "non_finite"), "unreadable": (422, "unreadable_audio"), "bad_rate": (422, "unsupported_rate"),
}  # any other reason (missing, not_a_file ...) is about the service's own temp file: a 500


# ----------------------------------------------------------------------------------------- the service

class _LockedPipeline:
    """The pipeline as ``StreamingGender`` sees it: every model call under the service's lock."""

    def __init__(self, pipeline: GenderPipeline, lock: threading.Lock):
        self._pipeline, self._lock = pipeline, lock

    def p_male(self, speech: list[np.ndarray]) -> np.ndarray:
        with self._lock:
            return self._pipeline.p_male(speech)

    def label_for(self, p_male: float) -> str:
        return self._pipeline.label_for(p_male)


class StreamError(Exception):
    """A frame or a request the stream cannot take: sent as ``error``, then the socket closes."""

    def __init__(self, error: str, detail: str, code: int = WS_POLICY_VIOLATION):
        super().__init__(detail)
        self.error, self.detail, self.code = error, detail, code


class StreamSession:
    """One WebSocket's state: its own Silero VAD (in ``StreamingGender``) and resampler."""

    def __init__(self, pipeline: _LockedPipeline, params: StreamParams, rate_hz: int, dtype: str,
                 max_stream_s: float, max_frame_bytes: int):
        self.streamer = StreamingGender(pipeline, params)  # type: ignore[arg-type]  # loads a VAD of its own
        self.rate_hz, self.dtype = rate_hz, dtype
        self.itemsize = np.dtype(PCM_DTYPES[dtype][0]).itemsize
        self.resampler = (soxr.ResampleStream(rate_hz, SAMPLE_RATE_HZ, 1, dtype="float32")
                          if rate_hz != SAMPLE_RATE_HZ else None)
        self.max_samples = int(max_stream_s * rate_hz)
        self.max_frame_bytes = max_frame_bytes
        self.samples = 0

    def decode(self, data: bytes) -> np.ndarray:
        """A binary frame -> float32 samples at the declared rate; garbage raises :class:`StreamError`."""
        if len(data) > self.max_frame_bytes:
            raise StreamError("frame_too_large", f"a frame of {len(data)} bytes is over the limit of "
                                                 f"{self.max_frame_bytes} bytes: send chunks of about 0.1 s", WS_TOO_BIG)
        if len(data) % self.itemsize:
            raise StreamError("bad_frame", f"a frame of {len(data)} bytes is not a whole number of {self.dtype} "
                                           f"samples ({self.itemsize} bytes each)")
        try:
            x = pcm_to_mono(data, self.dtype)
        except SourceError as e:
            raise StreamError("bad_samples", f"{e} (connect with dtype=int16)") from None
        self.samples += len(x)
        if self.samples > self.max_samples:
            raise StreamError("too_long", f"the stream is over the limit of {self.max_samples / self.rate_hz:.0f} s "
                                          "(max_stream_s); open a new connection")
        return x

    def feed(self, x: np.ndarray) -> list[StreamEvent]:
        """Resample to 16 kHz and step the streamer (in a worker thread)."""
        if self.resampler is not None:
            x = self.resampler.resample_chunk(x, last=False)
        return self.streamer.feed(x)

    def finish(self) -> list[StreamEvent]:
        """The resampler's tail, at the end of the stream."""
        if self.resampler is None:
            return []
        return self.streamer.feed(self.resampler.resample_chunk(np.zeros(0, np.float32), last=True))

    def end_message(self) -> dict[str, Any]:
        """``end``: the whole stream's label (from its speaking time, not its last decision), the last
        decision, the stream's length and speaking time per label (speech hops only, as ``predict``
        counts it)."""
        label, speaking_time_s = self.streamer.summary()
        return {"type": "end", "label": label, "last_label": self.streamer.label,
                "duration_s": round(self.samples / self.rate_hz, 3), "speaking_time_s": speaking_time_s}


def event_message(e: StreamEvent) -> dict[str, Any]:
    return {"type": "event", "t_s": round(e.t_s, 3), "label": e.label,
            "p_male": None if e.p_male is None else round(e.p_male, 4), "speech_s": round(e.speech_s, 3),
            "changed": e.changed, "p_label": e.p_label, "heard": e.heard, "text": e.text().strip()}


class Service:
    """What the app holds between requests: the pipeline, its lock, limits, the temp folder."""

    def __init__(self, pipeline: GenderPipeline, settings: ServeSettings, tmp_dir: Path):
        self.pipeline = pipeline
        self.settings = settings
        self.tmp_dir = tmp_dir
        self.model_lock = threading.Lock()
        self.workers: ModelWorkers | None = None  # set by the lifespan: uploads go to worker processes
        self.decode_limiter = anyio.CapacityLimiter(max(1, settings.decode_workers))
        self.active_streams = 0
        self.uploads = UploadGate(max(1, settings.max_uploads))
        self.started = time.monotonic()

    def classify_file(self, path: Path, timeline: bool, filename: str | None) -> GenderResult:
        """Decode, then classify (in a model worker process, or here under the lock); runs in a worker thread."""
        try:
            decoded = decode_audio(path, SAMPLE_RATE_HZ, self.settings.max_duration_s)
        except AudioError as e:
            status, error = AUDIO_ERRORS.get(e.reason, (500, "internal_error"))
            raise ApiError(status, error, e.message.replace(str(path), filename or "the upload")) from None
        if self.workers is not None:
            result = self.workers.classify(decoded.wave, timeline)
        else:
            with self.model_lock:
                result = self.pipeline.classify_wave(decoded.wave, timeline)
        if decoded.truncated:  # the file ends before its header says: the answer is for what decoded
            result.quality.append("truncated")
        return result

    def new_session(self, rate_hz: int, dtype: str) -> StreamSession:
        s = self.settings
        return StreamSession(_LockedPipeline(self.pipeline, self.model_lock), s.stream, rate_hz, dtype,
                             s.max_stream_s, s.max_frame_bytes)


def warm_up(pipeline: GenderPipeline) -> None:
    """One call through the VAD and the encoder, so the first request is not the slow one."""
    noise = np.random.default_rng(0).normal(0.0, 0.05, SAMPLE_RATE_HZ).astype(np.float32)
    pipeline.segmenter.timestamps([noise])
    pipeline.p_male([noise])


def stream_format(ws: WebSocket) -> tuple[int, str]:
    """``rate`` and ``dtype`` from the query string, checked like ``source=stdin``'s."""
    q = ws.query_params
    try:
        rate = int(float(q.get("rate", str(SAMPLE_RATE_HZ))))
        check_pcm_format(rate, q.get("dtype", "int16"), 1)
    except (ValueError, OverflowError, SourceError) as e:
        msg = str(e) if isinstance(e, SourceError) else f"rate must be a number of Hz, not {q.get('rate')!r}"
        raise StreamError("bad_format", msg) from None
    return rate, q.get("dtype", "int16")


def origin_allowed(ws: WebSocket, allowed: tuple[str, ...]) -> bool:
    """Same-origin browsers (and clients that send no Origin) only, plus ``allowed``."""
    origin = ws.headers.get("origin")
    if not origin or origin in allowed:
        return True
    return urlsplit(origin).netloc.lower() == ws.headers.get("host", "").lower()


# ------------------------------------------------------------------------------------------------ the app

class _CatchAll:
    """ASGI middleware: an exception escaping a request becomes a 500 JSON answer, and the
    service goes on (WebSocket handlers catch their own)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = False

        async def tracking_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            log.exception("request %s %s failed", scope.get("method"), scope.get("path"))
            if not started:
                await error_response(500, "internal_error", "the request failed on the server (it is logged); "
                                                            "the service is still running")(scope, receive, send)


PipelineSource = GenderPipeline | Callable[[], GenderPipeline]


def create_app(pipeline: PipelineSource, settings: ServeSettings = ServeSettings()) -> FastAPI:
    """The FastAPI app. ``pipeline`` is a loaded :class:`GenderPipeline` or a callable that
    builds one; a callable runs once, at start-up (the lifespan), in a worker thread."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        own_tmp = settings.tmp_dir is None
        tmp_dir = Path(tempfile.mkdtemp(prefix="gender-serve-") if own_tmp else settings.tmp_dir)
        tmp_dir.mkdir(parents=True, exist_ok=True)
        pipe = pipeline if hasattr(pipeline, "classify_wave") else await anyio.to_thread.run_sync(pipeline)
        await anyio.to_thread.run_sync(warm_up, pipe)
        app.state.service = Service(pipe, settings, tmp_dir)
        if settings.model_workers > 1 and callable(pipeline) and not hasattr(pipeline, "classify_wave"):
            app.state.service.workers = await anyio.to_thread.run_sync(
                lambda: ModelWorkers(pipeline, settings.model_workers, torch.get_num_threads()))
        elif settings.model_workers > 1:
            log.info("model_workers=%d needs a pipeline factory, not a loaded pipeline: uploads run here",
                     settings.model_workers)
        log.info("model loaded; uploads go to %s", tmp_dir)
        try:
            yield
        finally:
            if app.state.service.workers is not None:
                app.state.service.workers.close()
            if own_tmp:
                shutil.rmtree(tmp_dir, ignore_errors=True)

    app = FastAPIOffline(title="Speaker-gender service", version="1.0",  # /docs' Swagger UI served from the package
                  description="Female, male or unknown for an uploaded recording, or live over a WebSocket. "
                              "The web page is at `/`.", lifespan=lifespan)
    app.add_middleware(_CatchAll)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.error, exc.detail)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        detail = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors())
        return error_response(422, "invalid_request", detail or "invalid request")

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        error = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return error_response(exc.status_code, error, str(exc.detail))

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.include_router(examples_router(settings.examples))

    @app.get("/healthz", response_model=HealthBody, summary="Liveness and the model loaded")
    async def healthz(request: Request) -> dict:
        svc: Service = request.app.state.service
        return {"status": "ok", "classes": list(CLASSES), "encoder": getattr(svc.pipeline.encoder, "name", None),
                "run": settings.run_name, "active_streams": svc.active_streams, "uploads": svc.uploads.counts(),
                "uptime_s": round(time.monotonic() - svc.started, 1), "colours": LABEL_COLOURS,
                "limits": {"max_upload_mb": settings.max_upload_mb, "max_duration_s": settings.max_duration_s,
                           "max_stream_s": settings.max_stream_s, "max_frame_kb": settings.max_frame_kb,
                           "max_streams": settings.max_streams, "max_uploads": settings.max_uploads,
                           "upload_timeout_s": settings.upload_timeout_s,
                           "upload_idle_timeout_s": settings.upload_idle_timeout_s}}

    @app.post("/v1/classify", response_model=ClassifyBody, responses=ERROR_RESPONSES, openapi_extra=UPLOAD_BODY,
              summary="Gender of the speaker in an uploaded recording")
    async def classify(request: Request, timeline: bool = Query(
            False, description="add segments where the speaker's gender changes, and speaking time")) -> JSONResponse:
        svc: Service = request.app.state.service
        if not svc.uploads.enter():
            return JSONResponse({"error": "busy", "detail": f"{settings.max_uploads} uploads are in progress "
                                 "(max_uploads); retry in a few seconds"}, status_code=503, headers={"Retry-After": "2"})
        path = svc.tmp_dir / f"{uuid.uuid4().hex}.upload"  # a generated name, never the client's
        try:
            up = await receive_upload(request, path, settings.max_upload_bytes, settings.upload_idle_timeout_s,
                                      settings.upload_timeout_s)
            if up.size == 0:
                raise ApiError(400, "empty_file", f"the uploaded file {up.filename or ''!r} is empty")
            result = await anyio.to_thread.run_sync(svc.classify_file, path, timeline, up.filename,
                                                    limiter=svc.decode_limiter)
        except ClientDisconnect:
            log.info("client left during the upload")
            return error_response(400, "client_disconnected", "the upload did not finish")
        except ApiError as e:
            if e.status == 408:
                svc.uploads.timed_out += 1
                return JSONResponse({"error": e.error, "detail": e.detail}, status_code=408,
                                    headers={"Connection": "close"})
            raise
        finally:
            path.unlink(missing_ok=True)
            svc.uploads.leave()
        body = result.to_dict()
        body.pop("path", None)
        body["filename"] = up.filename
        return JSONResponse(body)

    @app.websocket("/v1/stream")
    async def stream(ws: WebSocket) -> None:
        """Binary PCM frames in, JSON decisions out (see the module docstring)."""
        svc: Service = ws.app.state.service
        if not origin_allowed(ws, settings.allowed_origins):
            await ws.close(code=WS_POLICY_VIOLATION, reason="origin not allowed")
            return
        await ws.accept()
        svc.active_streams += 1
        session: StreamSession | None = None
        try:
            rate, dtype = stream_format(ws)
            if svc.active_streams > settings.max_streams:
                raise StreamError("busy", f"{settings.max_streams} streams are open (max_streams); try again later",
                                  WS_TRY_AGAIN_LATER)
            session = await anyio.to_thread.run_sync(svc.new_session, rate, dtype)
            await ws.send_json({"type": "ready", "rate": rate, "dtype": dtype, "hop_s": settings.stream.hop_s,
                                "classes": list(CLASSES)})
            while True:
                msg = await ws.receive()
                if msg["type"] == "websocket.disconnect":
                    return
                data = msg.get("bytes")
                if data is None:
                    raise StreamError("text_frame", "send audio as binary frames of PCM samples; "
                                                    "an empty binary frame ends the stream")
                if not data:  # end of stream
                    for e in await anyio.to_thread.run_sync(session.finish):
                        await ws.send_json(event_message(e))
                    await ws.send_json(session.end_message())
                    await ws.close(code=1000)
                    return
                samples = session.decode(data)
                for e in await anyio.to_thread.run_sync(session.feed, samples):
                    await ws.send_json(event_message(e))
        except StreamError as e:
            log.info("stream closed: %s (%s)", e.error, e.detail)
            await _close_with_error(ws, e)
        except (WebSocketDisconnect, ClientDisconnect):
            log.info("stream client left")
        except Exception:
            log.exception("stream failed")
            await _close_with_error(ws, StreamError("internal_error", "the stream failed on the server "
                                                                      "(it is logged); the service is still running",
                                                    1011))
        finally:
            svc.active_streams -= 1
            del session  # its VAD and resampler go with it

    return app


async def _close_with_error(ws: WebSocket, e: StreamError) -> None:
    """Send ``{"type": "error", ...}`` and close, unless the client is already gone."""
    if ws.client_state != WebSocketState.CONNECTED or ws.application_state != WebSocketState.CONNECTED:
        return
    try:
        await ws.send_json({"type": "error", "error": e.error, "detail": e.detail})
        await ws.close(code=e.code, reason=e.error[:100])
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass


__all__ = ["ApiError", "ServeSettings", "StreamSession", "create_app"]
