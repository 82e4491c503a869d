"""Helpers shared by the sections of ``bench/extract.py`` (``bench/extract_*.py``, ``bench/scale.py``,
``bench/long.py``): the configuration as ``python -m src.extract`` composes it, clock and memory
figures, clip picking and decoding, and the markdown table that closes each report.
"""

from __future__ import annotations

import logging
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO_DIR = Path(__file__).resolve().parent.parent

log = logging.getLogger("bench.extract")


# --------------------------------------------------------------------------- configuration

def resolve_manifest(path: str) -> Path:
    """``path`` as given if it exists, else relative to the repo folder."""
    p = Path(path)
    if p.exists() or p.is_absolute():
        return p
    return REPO_DIR / p


def compose_config(encoder: str, overrides: list[str]):
    """``conf/extract.yaml`` as ``python -m src.extract encoder=<key> ...`` would see it."""
    from hydra import compose, initialize_config_module

    from src.config_store import register

    register()  # the group schemas (vad, trainer, ...), as every verb has them
    with initialize_config_module(config_module="conf", version_base="1.3"):
        return compose(config_name="extract", overrides=[f"encoder={encoder}", "device=cpu", *overrides])


def extract_options(cfg):
    """The ``ExtractOptions`` of a composed ``conf/extract.yaml`` (no progress bar)."""
    from src.embeddings.extract import ExtractOptions

    return ExtractOptions(chunk_clips=cfg.chunk_clips, encoder_batch_size=cfg.encoder.batch_size,
                          min_clip_s=cfg.min_clip_s, min_speech_s=cfg.min_speech_s,
                          max_duration_s=cfg.max_duration_s, progress=False)


def check_threads(expected: int, where: str) -> None:
    """Every timing must run with the thread count the report states."""
    got = torch.get_num_threads()
    if got != expected:
        raise RuntimeError(f"{where}: torch runs with {got} threads, not --threads {expected}")


# --------------------------------------------------------------------------- clocks and memory

class Clock:
    """Wall seconds (``time.perf_counter``) and CPU seconds of this process (``time.process_time``,
    all threads) of a ``with`` block; CPU time helps tell a slow run from a busy machine."""

    def __enter__(self) -> Clock:
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc) -> None:
        self.wall_s = time.perf_counter() - self._wall
        self.cpu_s = time.process_time() - self._cpu


def max_rss_mb() -> float:
    """Peak resident set size of this process so far (ru_maxrss: kB on Linux, bytes on macOS)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 2**10


def vm_kb(field: str) -> int | None:
    """A ``/proc/self/status`` memory field in kB (Linux), else None."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


# --------------------------------------------------------------------------- clips

def pick(items: list, n: int | None) -> list:
    """``n`` items spread evenly over ``items`` (all when ``n`` is None or too large)."""
    if n is None or n >= len(items):
        return list(items)
    idx = np.unique(np.linspace(0, len(items) - 1, n).round().astype(int))
    return [items[i] for i in idx]


def chunked(seq: list, size: int) -> list[list]:
    return [seq[i:i + size] for i in range(0, len(seq), size)]


def warm_page_cache(clips) -> None:
    """Read every file once so neither contender pays for the first read from disk."""
    for c in clips:
        try:
            c.path.read_bytes()
        except OSError:
            pass


def decode_clips(clips, opts, sample_rate_hz: int):
    """Decode every clip once, as the pipeline's ``_decode`` would (errors and too-short clips left out).

    Returns (clips kept, their waves, decode wall seconds).
    """
    from src.data.audio import AudioError, load_audio

    kept, waves = [], []
    t0 = time.perf_counter()
    for c in clips:
        try:
            w = load_audio(c.path, sample_rate_hz, opts.max_duration_s)
        except AudioError as e:
            log.warning("skipping %s: %s", c.path, e)
            continue
        if len(w) < opts.min_clip_s * sample_rate_hz:
            log.warning("skipping %s: shorter than min_clip_s", c.path)
            continue
        kept.append(c)
        waves.append(w)
    return kept, waves, time.perf_counter() - t0


# --------------------------------------------------------------------------- report

def verdict(ok: bool | None) -> str:
    return "—" if ok is None else ("PASS" if ok else "MISS")


def table(rows: list[tuple[str, str, str, bool | None]]) -> str:
    head = ["metric", "measured", "goal", "result"]
    body = [[m, v, g, verdict(ok)] for m, v, g, ok in rows]
    widths = [max(len(r[i]) for r in [head, *body]) for i in range(4)]
    line = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |"  # noqa: E731
    return "\n".join([line(head), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, body)])
