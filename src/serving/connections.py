"""What bounds a connection before it is a request: a header timeout, a cap on open connections,
and a log that a flood cannot fill.

uvicorn times out idle keep-alive connections but not a request line and headers trickled a byte
at a time, and each such connection holds a file descriptor; with the descriptors gone, asyncio's
accept loop logs ``socket.accept() out of system resource`` with a traceback up to ``backlog`` times
per try (the probe: 213 MB of log in 20 s) and ``/healthz`` cannot be reached.

* :func:`guarded_protocol` wraps uvicorn's HTTP protocol: a connection whose request line and
  headers are not complete ``header_timeout_s`` after it opened (or after its last response) is
  answered 408 and closed; past ``max_connections`` open connections the one that has waited
  longest for its headers is closed to make room, so a new client (``/healthz``) gets in.
* :func:`max_connections_for` raises the soft descriptor limit to the hard one and leaves room
  for the service's own files; :class:`RateLimitedLog` lets a message through at most ``burst``
  times per ``period_s`` and says how many it held back.

``python -m src.serve`` uses all three (``header_timeout_s`` in ``conf/serve.yaml``), with uvicorn's
``backlog`` at :data:`BACKLOG`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time

log = logging.getLogger(__name__)

BACKLOG = 128  # uvicorn's default is 2048: asyncio logs an EMFILE up to this many times per accept try
FD_RESERVE = 128  # descriptors kept for the service's own files, pipes and model workers
REQUEST_TIMEOUT = b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


def raise_fd_limit() -> int:
    """Raise the soft limit on open files to the hard one; returns the soft limit now."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft


def max_connections_for(fd_limit: int) -> int:
    """How many client connections may be open: the limit less the descriptors open now and a reserve."""
    try:
        open_now = len(os.listdir("/proc/self/fd"))
    except OSError:
        open_now = 64
    return max(16, fd_limit - open_now - FD_RESERVE)


def guarded_protocol(header_timeout_s: float, max_connections: int, base: type | None = None) -> type:
    """uvicorn's HTTP protocol class (``base``, default the one ``http="auto"`` picks) with a header
    timeout and a cap on open connections; pass it as ``uvicorn.run(..., http=...)``."""
    if base is None:
        from uvicorn.protocols.http.auto import AutoHTTPProtocol as base  # noqa: N813

    class GuardedProtocol(base):  # type: ignore[misc, valid-type]
        timed_out = 0  # connections closed for slow headers (all connections of the server)
        evicted = 0  # connections closed to make room

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            self._header_timer: asyncio.TimerHandle | None = None
            self._waiting_since = time.monotonic()
            self._arm(None)
            if len(self.connections) > max_connections:
                self._evict_one()

        def data_received(self, data: bytes) -> None:
            if self.cycle is None or self.cycle.response_complete:  # waiting for a request line and headers
                if self._header_timer is None:
                    self._waiting_since = time.monotonic()
                    self._arm(self.cycle)
            super().data_received(data)

        def connection_lost(self, exc) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None
            super().connection_lost(exc)

        def _arm(self, cycle) -> None:
            self._header_timer = self.loop.call_later(header_timeout_s, self._headers_late, cycle)

        def _waiting(self, cycle) -> bool:
            """Still waiting for the headers it waited for when armed (not upgraded to a WebSocket)."""
            t = self.transport
            return self.cycle is cycle and not t.is_closing() and t.get_protocol() is self

        def _headers_late(self, cycle) -> None:
            self._header_timer = None
            if self._waiting(cycle):
                type(self).timed_out += 1
                self.transport.write(REQUEST_TIMEOUT)
                self.transport.close()

        def _evict_one(self) -> None:
            """Close the connection that has waited longest for its headers (there is one while the
            flood is of half-open connections; requests in progress are never closed)."""
            waiting = [c for c in self.connections if c is not self and getattr(c, "_header_timer", None) is not None
                       and (c.cycle is None or c.cycle.response_complete) and c._waiting(c.cycle)]
            if waiting:
                oldest = min(waiting, key=lambda c: c._waiting_since)
                type(self).evicted += 1
                oldest.transport.write(REQUEST_TIMEOUT)
                oldest.transport.close()

    return GuardedProtocol


class RateLimitedLog(logging.Filter):
    """A handler filter: each message (logger, level, format string) at most ``burst`` times per
    ``period_s``; the next one let through says how many were held back."""

    def __init__(self, burst: int = 5, period_s: float = 10.0):
        super().__init__()
        self.burst, self.period_s = burst, period_s
        self._seen: dict[tuple, list] = {}  # key -> [period start, count, held back]

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.levelno, str(record.msg))
        now = time.monotonic()
        state = self._seen.setdefault(key, [now, 0, 0])
        if now - state[0] > self.period_s:
            state[0], state[1] = now, 0
        state[1] += 1
        if state[1] > self.burst:
            state[2] += 1
            return False
        if state[2]:
            record.msg = f"{record.msg} ({state[2]} more like this held back)"
            state[2] = 0
        if len(self._seen) > 10_000:  # many distinct messages: forget the old ones
            self._seen = {key: state}
        return True


def rate_limit_logging(burst: int = 5, period_s: float = 10.0) -> RateLimitedLog:
    """Put one :class:`RateLimitedLog` on every handler of the root logger."""
    f = RateLimitedLog(burst, period_s)
    for h in logging.getLogger().handlers:
        h.addFilter(f)
    return f
