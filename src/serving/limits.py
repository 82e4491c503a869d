"""What bounds one upload's cost: a cap on uploads at once and timeouts on reading the body.

A client that opens an upload and then sends nothing (or a byte now and then) would hold a
connection, a temp file and an upload slot forever; :func:`timed_chunks` gives up after
``idle_timeout_s`` without a chunk or ``total_timeout_s`` for the whole body (HTTP 408), and
:class:`UploadGate` answers 503 past ``max_uploads`` at once. Both are counted for ``/healthz``.
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import anyio


class BodyTimeout(Exception):
    """The body did not arrive in time; the message says which limit."""


@dataclass
class UploadGate:
    """Uploads in progress (reading, decoding, queued for the model or classified), at most ``max_uploads``."""

    max_uploads: int
    active: int = 0
    served: int = 0
    refused_busy: int = 0  # 503
    timed_out: int = 0  # 408

    def enter(self) -> bool:
        """Take a slot; ``False`` (and counted) when all are taken. Called on the event loop only."""
        if self.active >= self.max_uploads:
            self.refused_busy += 1
            return False
        self.active += 1
        return True

    def leave(self) -> None:
        self.active -= 1
        self.served += 1

    def counts(self) -> dict[str, int]:
        return {"active": self.active, "max": self.max_uploads, "served": self.served,
                "refused_busy": self.refused_busy, "timed_out": self.timed_out}


async def timed_chunks(chunks: AsyncIterator[bytes], idle_timeout_s: float,
                       total_timeout_s: float) -> AsyncIterator[bytes]:
    """``chunks`` as they come, or :class:`BodyTimeout` after ``idle_timeout_s`` without one
    or ``total_timeout_s`` since the first read."""
    deadline = time.monotonic() + total_timeout_s
    it = chunks.__aiter__()
    while True:
        left = deadline - time.monotonic()
        wait = min(idle_timeout_s, left)
        try:
            with anyio.fail_after(max(wait, 0.0) if math.isfinite(wait) else None):
                chunk = await it.__anext__()
        except StopAsyncIteration:
            return
        except TimeoutError:
            which = (f"no data for {idle_timeout_s:g} s (upload_idle_timeout_s)" if wait < left else
                     f"the body took over {total_timeout_s:g} s (upload_timeout_s)")
            raise BodyTimeout(which) from None
        yield chunk
