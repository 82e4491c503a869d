"""What the service holds: its settings (``conf/serve.yaml``) and, between requests, one
:class:`GenderPipeline` with its lock, the model worker processes, the upload and stream counts
and the temp folder.

The pipeline is not thread-safe: every call into it (the whole file classification, or one
streaming decision) holds :attr:`Service.model_lock`, while decoding and each stream's own Silero
VAD run outside it. With ``model_workers`` > 1 (and a pipeline factory), uploads are classified
in that many worker processes (:mod:`src.serving.workers`), so they run on as many cores.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

import anyio
import numpy as np

from src.data.audio import SAMPLE_RATE_HZ
from src.inference.params import StreamParams
from src.inference.pipeline import GenderPipeline, GenderResult
from src.serving.errors import ApiError
from src.serving.examples import Example
from src.serving.limits import UploadGate
from src.serving.session import LockedPipeline, StreamSession
from src.serving.uploads import decode_upload
from src.serving.workers import ModelWorkers, WorkersUnavailable


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
    upload_min_rate_kbs: float = 8.0  # ... and after upload_rate_grace_s its average rate may not be under this (KiB/s)
    upload_rate_grace_s: float = 5.0
    max_uploads_per_client: int = 8  # upload slots one client address may hold at once; more: 503
    max_streams_per_client: int = 4  # WebSocket streams one client address may hold at once; more: 1013
    stream_idle_timeout_s: float = 20.0  # a WebSocket with no frame for this long is closed (1008 idle_timeout)
    header_timeout_s: float = 10.0  # a connection whose request line and headers take longer is closed (408)
    stream: StreamParams = StreamParams()
    tmp_dir: str | None = None  # uploads go here; None: a new folder in the system temp dir, removed at exit
    allowed_origins: tuple[str, ...] = ()  # browser origins allowed on the WebSocket besides the page's own
    run_name: str | None = None  # shown by /healthz
    model_card: str | None = None  # the model's MODEL_CARD.md, served at GET /v1/model/card (None: none)
    examples: tuple[Example, ...] = ()  # clips the page offers to try (GET /v1/examples)

    LIMITS = ("max_upload_mb", "max_duration_s", "max_stream_s", "max_frame_kb", "max_streams", "max_uploads",
              "upload_timeout_s", "upload_idle_timeout_s", "upload_min_rate_kbs", "max_uploads_per_client",
              "max_streams_per_client", "stream_idle_timeout_s", "header_timeout_s")  # shown by /healthz

    def limits(self) -> dict:
        """The limits a client may want to know (``/healthz``)."""
        return {name: getattr(self, name) for name in self.LIMITS}

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def max_frame_bytes(self) -> int:
        return int(self.max_frame_kb * 1024)


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
        self.streams_by_client: dict[str, int] = {}
        self.uploads = UploadGate(max(1, settings.max_uploads), max(1, settings.max_uploads_per_client))
        self.started = time.monotonic()

    def classify_file(self, path: Path, timeline: bool, filename: str | None) -> GenderResult:
        """Decode, then classify (in a model worker process, or here under the lock); runs in a worker thread."""
        decoded = decode_upload(path, self.settings.max_duration_s, filename, native=self.pipeline.quality_meter)
        quality = decoded.native.result()  # assessed at the file's own rate, before resampling
        if self.workers is not None:
            try:
                result = self.workers.classify(decoded.wave, timeline, quality)
            except WorkersUnavailable as e:
                raise ApiError(503, "workers_unavailable", f"{e.detail}; retry in {e.retry_after_s} s",
                               {"Retry-After": str(e.retry_after_s)}) from None
        else:
            with self.model_lock:
                result = self.pipeline.classify_wave(decoded.wave, timeline, quality)
        if decoded.truncated:  # the file ends before its header says: the answer is for what decoded
            result.quality.append("truncated")
        return result

    def workers_health(self) -> dict[str, int]:
        """Model workers alive and expected (in process: the server itself, one)."""
        if self.workers is None:
            return {"alive": 1, "expected": 1, "restarts": 0}
        return self.workers.health()

    def new_session(self, rate_hz: int, dtype: str) -> StreamSession:
        s = self.settings
        return StreamSession(LockedPipeline(self.pipeline, self.model_lock), s.stream, rate_hz, dtype,
                             s.max_stream_s, s.max_frame_bytes)


def warm_up(pipeline: GenderPipeline) -> None:
    """One call through the VAD and the encoder, so the first request is not the slow one."""
    noise = np.random.default_rng(0).normal(0.0, 0.05, SAMPLE_RATE_HZ).astype(np.float32)
    pipeline.segmenter.timestamps([noise])
    pipeline.p_male([noise])
