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

This module is the app and its routes; the rest of ``src/serving`` holds the parts: the
service's settings and state (``service.py``: the pipeline, its lock, the model worker processes
of ``workers.py``), the upload (``uploads.py``: the multipart body, its limits, decoding), the
WebSocket stream (``session.py``), the JSON error answers (``errors.py``), the documented JSON
shapes (``schemas.py``), the caps and timeouts of uploads (``limits.py``) and the example clips
(``examples.py``).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import torch
from fastapi import FastAPI, Query, Request, WebSocket
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from starlette.requests import ClientDisconnect

from src.inference.pipeline import GenderPipeline
from src.labels import CLASSES, LABEL_COLOURS
from src.serving.errors import ApiError, add_error_handling, error_response
from src.serving.examples import examples_router
from src.serving.schemas import ERROR_RESPONSES, UPLOAD_BODY, ClassifyBody, ErrorBody, HealthBody
from src.serving.service import ServeSettings, Service, warm_up
from src.serving.session import serve_stream
from src.serving.uploads import receive_upload
from src.serving.workers import ModelWorkers

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"


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
    add_error_handling(app)

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.include_router(examples_router(settings.examples))

    @app.get("/healthz", response_model=HealthBody, summary="Liveness, the model loaded and its workers")
    async def healthz(request: Request) -> dict:
        svc: Service = request.app.state.service
        workers = svc.workers_health()
        return {"status": "ok" if workers["alive"] >= workers["expected"] else "degraded", "workers": workers,
                "classes": list(CLASSES), "encoder": getattr(svc.pipeline.encoder, "name", None),
                "run": settings.run_name, "active_streams": svc.active_streams, "uploads": svc.uploads.counts(),
                "uptime_s": round(time.monotonic() - svc.started, 1), "colours": LABEL_COLOURS,
                "model_card": "/v1/model/card" if settings.model_card else None,
                "limits": settings.limits()}

    @app.get("/v1/model/card", response_class=PlainTextResponse, responses={404: {"model": ErrorBody}},
             summary="The model's card (Markdown): its training data, how well it does, its limits")
    async def model_card():
        if not settings.model_card or not Path(settings.model_card).is_file():
            return error_response(404, "not_found", "this model has no card (a run trained here: see its "
                                                    "metrics.json and the README)")
        return PlainTextResponse(Path(settings.model_card).read_text(encoding="utf-8"),
                                 media_type="text/markdown; charset=utf-8")

    @app.post("/v1/classify", response_model=ClassifyBody, responses=ERROR_RESPONSES, openapi_extra=UPLOAD_BODY,
              summary="Gender of the speaker in an uploaded recording")
    async def classify(request: Request, timeline: bool = Query(
            True, description="segments per voice, speaking time, and `mixed` for two voices (on by default, "
                              "as in predict)")) -> JSONResponse | dict:
        svc: Service = request.app.state.service
        client = request.client.host if request.client else None
        refused = svc.uploads.enter(client)
        if refused:
            detail = (f"{settings.max_uploads} uploads are in progress (max_uploads)" if refused == "busy" else
                      f"this client has {settings.max_uploads_per_client} uploads in progress "
                      "(max_uploads_per_client)")
            return JSONResponse({"error": "busy", "detail": detail + "; retry in a few seconds"}, status_code=503,
                                headers={"Retry-After": "2"})
        path = svc.tmp_dir / f"{uuid.uuid4().hex}.upload"  # a generated name, never the client's
        try:
            up = await receive_upload(request, path, settings.max_upload_bytes, settings.upload_idle_timeout_s,
                                      settings.upload_timeout_s, settings.upload_min_rate_kbs * 1024,
                                      settings.upload_rate_grace_s)
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
            svc.uploads.leave(client)
        body = result.to_dict()
        body.pop("path", None)
        body["filename"] = up.filename
        return body  # validated against ClassifyBody (response_model)

    @app.websocket("/v1/stream")
    async def stream(ws: WebSocket) -> None:
        """Binary PCM frames in, JSON decisions out (see :mod:`src.serving.session`)."""
        await serve_stream(ws, ws.app.state.service)

    return app


__all__ = ["create_app"]
