"""Model worker processes, supervised: uploads classified side by side on several cores, and a worker
that dies (``kill -9``, the OOM killer) replaced while the others go on.

The pipeline's VAD steps Silero window by window and eGeMAPS runs in openSMILE, both holding
Python's GIL most of the time, so copies of the pipeline in threads do not run in parallel
(two threads: 1.0 core busy, measured). Each worker here is a process of its own that builds the
pipeline once (``factory()``, in the worker) and classifies decoded waveforms sent to it over a pipe.

A supervisor thread checks the workers every :data:`CHECK_S` and starts a new process in a dead
one's place (at most once per :data:`RESTART_BACKOFF_S` per slot, so a worker that cannot load does
not spin). A request whose worker dies under it is retried once on another worker; with no live
worker (all dead or loading) it raises :class:`WorkersUnavailable`, which the service answers 503
with ``Retry-After``. :meth:`ModelWorkers.health` says how many are alive of how many expected.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

log = logging.getLogger(__name__)

CHECK_S = 0.25  # how often the supervisor looks at the workers
RESTART_BACKOFF_S = 2.0  # a slot's worker is restarted at most this often
POLL_S = 0.1  # how often a waiting request checks that its worker still lives


class WorkersUnavailable(Exception):
    """No live model worker to take the request (all dead or still loading); try again later."""

    def __init__(self, detail: str, retry_after_s: int):
        super().__init__(detail)
        self.detail, self.retry_after_s = detail, retry_after_s


class WorkerDied(Exception):
    """The worker's process ended while it held the request."""


def _serve(factory: Callable, num_threads: int, conn) -> None:
    """A worker process: build the pipeline, warm it up, say ``ready``, then answer requests until
    the pipe closes (the server stopped or died: EOF) or ``None`` comes."""
    from src.runtime import set_threads

    set_threads(num_threads)
    pipeline = factory()
    noise = np.random.default_rng(0).normal(0.0, 0.05, 16_000).astype(np.float32)
    pipeline.classify_wave(noise)
    conn.send(("ready", os.getpid()))
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        wave, timeline, quality = msg
        try:
            answer = ("ok", pipeline.classify_wave(wave, timeline, quality))
        except Exception as e:  # a bug in one request: the parent raises it, the worker goes on
            answer = ("error", f"{type(e).__name__}: {e}")
        conn.send(answer)


@dataclass(eq=False)
class _Worker:
    slot: int
    process: mp.process.BaseProcess
    conn: object
    started: float = field(default_factory=time.monotonic)
    ready: bool = False
    busy: bool = False

    def alive(self) -> bool:
        return self.process.is_alive()

    def call(self, wave: np.ndarray, timeline: bool, quality=None):
        """Send the request and wait for the answer, checking every :data:`POLL_S` that the process lives."""
        self.busy = True
        try:
            self.conn.send((wave, timeline, quality))
            while not self.conn.poll(POLL_S):
                if not self.alive():
                    raise WorkerDied(f"model worker {self.process.pid} died")
            kind, value = self.conn.recv()
        except (EOFError, OSError) as e:  # BrokenPipeError, ConnectionResetError ...
            raise WorkerDied(f"model worker {self.process.pid} died ({type(e).__name__})") from None
        finally:
            self.busy = False
        if kind == "error":
            raise RuntimeError(f"model worker {self.process.pid}: {value}")
        return value


class ModelWorkers:
    """``n`` supervised processes, each with the pipeline ``factory`` builds (a picklable callable).

    Args:
        factory: builds a :class:`~src.inference.pipeline.GenderPipeline` (run in each worker).
        n: worker processes.
        num_threads: torch and BLAS threads in each worker.
        start_timeout_s: how long a worker may take to load (at start-up, and each replacement).
        wait_timeout_s: how long a request waits for a free worker while some are alive.
    """

    def __init__(self, factory: Callable, n: int, num_threads: int = 1, start_timeout_s: float = 600.0,
                 wait_timeout_s: float = 300.0):
        self._ctx = mp.get_context("spawn")
        self._factory, self._num_threads = factory, num_threads
        self.n, self.start_timeout_s, self.wait_timeout_s = n, start_timeout_s, wait_timeout_s
        self.restarts = 0
        self.load_s = 10.0  # how long a worker took to load (the last one): the Retry-After of a 503
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._idle: queue.Queue[_Worker] = queue.Queue()
        self._slots: list[_Worker] = [self._start(i) for i in range(n)]
        self._last_start = [time.monotonic()] * n
        deadline = time.monotonic() + start_timeout_s
        while not all(w.ready for w in self._slots):  # every worker loaded, or one died, or the time is up
            self._collect_ready()
            dead = [w.process.exitcode for w in self._slots if not w.ready and not w.alive()]
            if dead or time.monotonic() > deadline:
                self.close()
                loaded = sum(w.ready for w in self._slots)
                raise RuntimeError(f"model workers did not start ({loaded} of {n} loaded; "
                                   f"exit codes {dead}; see the log above)")
            time.sleep(CHECK_S)
        self._supervisor = threading.Thread(target=self._supervise, name="model-worker-supervisor", daemon=True)
        self._supervisor.start()
        log.info("%d model worker processes ready", n)

    def _start(self, slot: int) -> _Worker:
        parent, child = self._ctx.Pipe()
        process = self._ctx.Process(target=_serve, args=(self._factory, self._num_threads, child),
                                    name=f"model-worker-{slot}", daemon=True)
        process.start()
        child.close()
        return _Worker(slot, process, parent)

    def _collect_ready(self) -> None:
        """Loading workers that said ``ready`` become free workers."""
        for w in self._slots:
            if not w.ready and w.alive() and w.conn.poll(0):
                try:
                    w.conn.recv()
                except (EOFError, OSError):
                    continue
                w.ready = True
                self.load_s = time.monotonic() - w.started
                self._idle.put(w)

    def _supervise(self) -> None:
        """Replace dead workers (and ones that never finish loading) until :meth:`close`."""
        while not self._closed.wait(CHECK_S):
            with self._lock:
                if self._closed.is_set():
                    return
                self._collect_ready()
                for i, w in enumerate(self._slots):
                    stuck = not w.ready and time.monotonic() - w.started > self.start_timeout_s
                    if (w.alive() and not stuck) or time.monotonic() - self._last_start[i] < RESTART_BACKOFF_S:
                        continue
                    if stuck:
                        w.process.kill()
                    log.warning("model worker %s (pid %s) %s; starting a new one", i, w.process.pid,
                                "did not load in time" if stuck else f"died (exit code {w.process.exitcode})")
                    w.conn.close()
                    self._slots[i] = self._start(i)
                    self._last_start[i] = time.monotonic()
                    self.restarts += 1

    def health(self) -> dict[str, int]:
        """``alive``: workers loaded and running; ``expected``: how many there should be; ``restarts``."""
        alive = sum(w.ready and w.alive() for w in self._slots)
        return {"alive": alive, "expected": self.n, "restarts": self.restarts}

    def _take(self) -> _Worker:
        """A free live worker; waits while any worker is alive (busy), at most ``wait_timeout_s``."""
        deadline = time.monotonic() + self.wait_timeout_s
        while time.monotonic() < deadline and not self._closed.is_set():
            if not any(w.ready and w.alive() for w in self._slots):
                break
            try:
                w = self._idle.get(timeout=POLL_S)
            except queue.Empty:
                continue
            if w.alive() and self._slots[w.slot] is w:
                return w  # a dead or replaced worker is dropped from the queue here
        raise WorkersUnavailable(f"no model worker is running ({self.health()['alive']} of {self.n} alive; "
                                 "a replacement is loading)", max(1, round(self.load_s)))

    def classify(self, wave: np.ndarray, timeline: bool = False, quality=None):
        """``GenderPipeline.classify_wave`` in a free worker (blocks the calling thread). A worker that
        dies under the request is replaced and the request retried once on another.

        Raises:
            WorkersUnavailable: no live worker (or the retry's worker died too).
        """
        for attempt in range(2):
            w = self._take()
            try:
                result = w.call(wave, timeline, quality)
            except WorkerDied as e:
                log.warning("%s during a request; %s", e, "retrying it once" if attempt == 0 else "giving up")
                continue
            self._idle.put(w)
            return result
        raise WorkersUnavailable("the model workers died during the request; replacements are loading",
                                 max(1, round(self.load_s)))

    def pids(self) -> set[int]:
        return {w.process.pid for w in self._slots}

    def close(self) -> None:
        """Stop the supervisor and every worker (asked first, killed after 5 s)."""
        self._closed.set()
        with self._lock:
            for w in self._slots:
                try:
                    w.conn.send(None)
                except (OSError, ValueError):
                    pass
            for w in self._slots:
                w.process.join(timeout=5)
                if w.process.is_alive():
                    w.process.kill()
                    w.process.join(timeout=5)
                w.conn.close()
