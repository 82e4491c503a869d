"""What bounds one upload's cost: a cap on uploads at once (and per client) and timeouts on reading the body.

A client that opens an upload and then sends nothing (or a byte now and then) would hold a
connection, a temp file and an upload slot forever; :func:`timed_chunks` gives up after
``idle_timeout_s`` without a chunk, ``total_timeout_s`` for the whole body, or as soon as the
body's average rate since the start falls under ``min_rate_bytes_s`` once ``grace_s`` have passed
(HTTP 408: 32 bodies trickling 12 bytes each held every slot for 60 s; now for ``grace_s``), and
:class:`UploadGate` answers 503 past ``max_uploads`` at once or ``max_per_client`` from one client
address. Both are counted for ``/healthz``.
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import anyio


class BodyTimeout(Exception):
    """The body did not arrive in time; the message says which limit."""


@dataclass
class UploadGate:
    """Uploads in progress (reading, decoding, queued for the model or classified), at most ``max_uploads``."""

    max_uploads: int
    max_per_client: int | None = None  # slots one client address may hold (None: no cap but max_uploads)
    active: int = 0
    served: int = 0
    refused_busy: int = 0  # 503
    timed_out: int = 0  # 408
    by_client: dict[str, int] = field(default_factory=dict)

    def enter(self, client: str | None = None) -> str | None:
        """Take a slot for ``client`` (an address); ``None`` when taken, else why not (and counted):
        ``"busy"`` (every slot taken) or ``"client"`` (this client holds its share). Event loop only."""
        held = self.by_client.get(client or "", 0)
        why = ("busy" if self.active >= self.max_uploads else
               "client" if self.max_per_client is not None and held >= self.max_per_client else None)
        if why is not None:
            self.refused_busy += 1
            return why
        self.active += 1
        self.by_client[client or ""] = held + 1
        return None

    def leave(self, client: str | None = None) -> None:
        self.active -= 1
        self.served += 1
        left = self.by_client.pop(client or "", 1) - 1
        if left:
            self.by_client[client or ""] = left

    def counts(self) -> dict[str, int]:
        return {"active": self.active, "max": self.max_uploads, "served": self.served,
                "refused_busy": self.refused_busy, "timed_out": self.timed_out}


async def timed_chunks(chunks: AsyncIterator[bytes], idle_timeout_s: float, total_timeout_s: float,
                       min_rate_bytes_s: float = 0.0, grace_s: float = 0.0) -> AsyncIterator[bytes]:
    """``chunks`` as they come, or :class:`BodyTimeout` after ``idle_timeout_s`` without one,
    ``total_timeout_s`` since the first read, or once the average rate since the first read is under
    ``min_rate_bytes_s`` after ``grace_s`` (checked while waiting too, so a trickle is let go on time)."""
    start = time.monotonic()
    deadline = start + total_timeout_s
    received = 0
    it = chunks.__aiter__()
    while True:
        now = time.monotonic()
        left = deadline - now
        rate_left = (start + max(grace_s, received / min_rate_bytes_s) - now) if min_rate_bytes_s > 0 else math.inf
        wait = min(idle_timeout_s, left, rate_left)
        try:
            with anyio.fail_after(max(wait, 0.0) if math.isfinite(wait) else None):
                chunk = await it.__anext__()
        except StopAsyncIteration:
            return
        except TimeoutError:
            which = (f"no data for {idle_timeout_s:g} s (upload_idle_timeout_s)" if wait == idle_timeout_s else
                     f"the body took over {total_timeout_s:g} s (upload_timeout_s)" if wait == left else
                     f"{received} bytes in {time.monotonic() - start:.1f} s is under the minimum rate of "
                     f"{min_rate_bytes_s / 1024:g} KiB/s (upload_min_rate_kbs)")
            raise BodyTimeout(which) from None
        received += len(chunk)
        yield chunk
