"""One WebSocket stream of ``/v1/stream``: PCM frames in, ``StreamingGender`` decisions out.

The client connects with ``?rate=16000&dtype=int16|float32`` and sends binary frames of mono PCM
at that rate (whole samples per frame); it gets ``ready`` once, an ``event`` per decision, and
after an empty binary frame (end of stream) ``end`` with the whole stream's label and speaking
time per label. A frame or request the stream cannot take (:class:`StreamError`) gets an
``error`` message and a close: 1008 (policy violation), 1009 (frame too big), 1013 (too many
streams). Each stream has its own Silero VAD and resampler, outside the model's lock; every call
into the shared pipeline holds it (:class:`LockedPipeline`).
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import anyio
import numpy as np
import soxr
from fastapi import WebSocket
from starlette.requests import ClientDisconnect
from starlette.websockets import WebSocketDisconnect, WebSocketState

from src.data.audio import SAMPLE_RATE_HZ
from src.inference.params import StreamParams
from src.inference.pipeline import GenderPipeline
from src.inference.sources import PCM_DTYPES, SourceError, check_pcm_format, pcm_to_mono
from src.inference.streaming import StreamEvent, StreamingGender
from src.labels import CLASSES

if TYPE_CHECKING:
    from src.serving.service import Service

log = logging.getLogger(__name__)

WS_POLICY_VIOLATION = 1008  # RFC 6455 close codes
WS_TOO_BIG = 1009
WS_TRY_AGAIN_LATER = 1013


class LockedPipeline:
    """The pipeline as ``StreamingGender`` sees it: every model call under the service's lock."""

    def __init__(self, pipeline: GenderPipeline, lock: threading.Lock):
        self._pipeline, self._lock = pipeline, lock

    def p_male(self, speech: list[np.ndarray]) -> np.ndarray:
        with self._lock:
            return self._pipeline.p_male(speech)

    def p_male_shifted(self, speech: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        with self._lock:
            return self._pipeline.p_male_shifted(speech)

    def label_for(self, p_male: float) -> str:
        return self._pipeline.label_for(p_male)

    @property
    def quality_params(self):
        return self._pipeline.quality_params


class StreamError(Exception):
    """A frame or a request the stream cannot take: sent as ``error``, then the socket closes."""

    def __init__(self, error: str, detail: str, code: int = WS_POLICY_VIOLATION):
        super().__init__(detail)
        self.error, self.detail, self.code = error, detail, code


class StreamSession:
    """One WebSocket's state: its own Silero VAD (in ``StreamingGender``) and resampler."""

    def __init__(self, pipeline: LockedPipeline, params: StreamParams, rate_hz: int, dtype: str,
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
        if self.resampler is None:
            return self.streamer.feed(x)
        return self.streamer.feed(self.resampler.resample_chunk(x, last=False), native=x, native_rate_hz=self.rate_hz)

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
            "changed": e.changed, "p_label": e.p_label, "heard": e.heard, "text": e.text().strip(),
            "quality": list(e.quality)}


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


async def serve_stream(ws: WebSocket, svc: Service) -> None:
    """The whole life of one ``/v1/stream`` connection (see the module docstring)."""
    settings = svc.settings
    if not origin_allowed(ws, settings.allowed_origins):
        await ws.close(code=WS_POLICY_VIOLATION, reason="origin not allowed")
        return
    await ws.accept()
    client = ws.client.host if ws.client else ""
    svc.active_streams += 1
    svc.streams_by_client[client] = svc.streams_by_client.get(client, 0) + 1
    session: StreamSession | None = None
    try:
        rate, dtype = stream_format(ws)
        if svc.active_streams > settings.max_streams:
            raise StreamError("busy", f"{settings.max_streams} streams are open (max_streams); try again later",
                              WS_TRY_AGAIN_LATER)
        if svc.streams_by_client[client] > settings.max_streams_per_client:
            raise StreamError("busy", f"this client has {settings.max_streams_per_client} streams open "
                                      "(max_streams_per_client); try again later", WS_TRY_AGAIN_LATER)
        session = await anyio.to_thread.run_sync(svc.new_session, rate, dtype)
        await ws.send_json({"type": "ready", "rate": rate, "dtype": dtype, "hop_s": settings.stream.hop_s,
                            "classes": list(CLASSES)})
        while True:
            try:
                with anyio.fail_after(settings.stream_idle_timeout_s):
                    msg = await ws.receive()
            except TimeoutError:
                raise StreamError("idle_timeout", f"no frame for {settings.stream_idle_timeout_s:g} s "
                                                  "(stream_idle_timeout_s); the stream is closed") from None
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
        left = svc.streams_by_client.pop(client, 1) - 1
        if left:
            svc.streams_by_client[client] = left
        del session  # its VAD and resampler go with it


async def _close_with_error(ws: WebSocket, e: StreamError) -> None:
    """Send ``{"type": "error", ...}`` and close, unless the client is already gone."""
    if ws.client_state != WebSocketState.CONNECTED or ws.application_state != WebSocketState.CONNECTED:
        return
    try:
        await ws.send_json({"type": "error", "error": e.error, "detail": e.detail})
        await ws.close(code=e.code, reason=e.error[:100])
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass
