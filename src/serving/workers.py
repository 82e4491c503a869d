"""Model worker processes: uploads classified side by side on several cores.

The pipeline's VAD steps Silero window by window and eGeMAPS runs in openSMILE, both holding
Python's GIL most of the time, so copies of the pipeline in threads do not run in parallel
(two threads: 1.0 core busy, measured). Each worker here is a process of its own that builds the
pipeline once (``factory()``, in the worker) and classifies decoded waveforms sent to it.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import queue
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor

import numpy as np

log = logging.getLogger(__name__)

_PIPELINE = None  # the pipeline of this worker process


def _load(factory: Callable, num_threads: int, ready) -> None:
    """Worker initialiser: build the pipeline, warm it up, then say so on ``ready`` (a queue)."""
    global _PIPELINE
    from src.building import set_threads

    set_threads(num_threads)
    _PIPELINE = factory()
    noise = np.random.default_rng(0).normal(0.0, 0.05, 16_000).astype(np.float32)
    _PIPELINE.classify_wave(noise)
    ready.put(os.getpid())


def _classify(wave: np.ndarray, timeline: bool):
    return _PIPELINE.classify_wave(wave, timeline)


def _pid(_: int) -> int:
    return os.getpid()


class ModelWorkers:
    """``n`` processes, each with the pipeline ``factory`` builds (a picklable callable).

    Args:
        factory: builds a :class:`~src.inference.pipeline.GenderPipeline` (run in each worker).
        n: worker processes.
        num_threads: torch and BLAS threads in each worker.
        start_timeout_s: how long the workers may take to load.
    """

    def __init__(self, factory: Callable, n: int, num_threads: int = 1, start_timeout_s: float = 600.0):
        ctx = mp.get_context("spawn")
        ready = ctx.Queue()
        self.n = n
        self.pool = ProcessPoolExecutor(n, mp_context=ctx, initializer=_load, initargs=(factory, num_threads, ready))
        for i in range(n):  # a spawn pool starts a worker per submit while none is idle: n workers
            self.pool.submit(_pid, i)
        deadline, loaded = time.monotonic() + start_timeout_s, 0
        while loaded < n:  # every worker has loaded its pipeline, or one died, or the time is up
            try:
                ready.get(timeout=0.5)
                loaded += 1
            except queue.Empty:
                dead = [p.exitcode for p in self.pool._processes.values() if p.exitcode is not None]
                if dead or time.monotonic() > deadline:
                    self.pool.shutdown(wait=False, cancel_futures=True)
                    raise RuntimeError(f"model workers did not start ({loaded} of {n} loaded; "
                                       f"exit codes {dead}; see the log above)") from None
        log.info("%d model worker processes ready", n)

    def classify(self, wave: np.ndarray, timeline: bool = False):
        """``GenderPipeline.classify_wave`` in a free worker (blocks the calling thread)."""
        return self.pool.submit(_classify, wave, timeline).result()

    def pids(self) -> set[int]:
        return {p.pid for p in self.pool._processes.values()}

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
