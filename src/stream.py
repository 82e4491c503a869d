"""``python -m src.stream run=<run_dir> source=mic|file:<path>|stdin``: live gender.

    python -m src.stream run=runs/resemblyzer-... source=mic
    python -m src.stream run=runs/resemblyzer-... source=file:call.wav realtime=false
    arecord -f S16_LE -r 8000 -c 1 | python -m src.stream run=... source=stdin rate=8000

Prints a decision every hop (``12.6s  Female 0.94``) and a line at each change; at
the end, speaking time per label.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator

import hydra
import numpy as np
from omegaconf import DictConfig

from src.building import set_threads
from src.inference.pretrained import resolve_model
from src.inference.pipeline import GenderPipeline
from src.inference.sources import SourceError, check_pcm_format, file_chunks, mic_chunks, pcm_chunks
from src.inference.streaming import StreamEvent, StreamingGender, StreamParams

log = logging.getLogger(__name__)


def open_source(source: str, cfg: DictConfig) -> Iterator[np.ndarray]:
    """``mic``, ``file:<path>`` or ``stdin`` -> chunks of 16 kHz mono float32."""
    if source == "mic":
        return mic_chunks(cfg.block_s, cfg.mic_device)
    if source == "stdin":
        check_pcm_format(int(cfg.rate), cfg.dtype, int(cfg.channels))  # now, not at the first read
        return pcm_chunks(sys.stdin.buffer, int(cfg.rate), cfg.dtype, int(cfg.channels), cfg.block_s)
    if source.startswith("file:"):
        return file_chunks(source[len("file:"):], cfg.block_s, cfg.realtime)
    raise SourceError(f"unknown source {source!r}: mic, stdin or file:<path>")


def run_stream(chunks: Iterator[np.ndarray], streamer: StreamingGender, every_hop: bool = True,
               emit: Callable[[str], None] = print) -> dict[str, float]:
    """Feed chunks until the source ends; print decisions; return speaking time (s) per label."""
    talk: dict[str, float] = {}
    hop_s = streamer.params.hop_s
    for chunk in chunks:
        for e in streamer.feed(chunk):
            talk[e.label] = talk.get(e.label, 0.0) + hop_s
            if e.changed:
                emit(f"{e.text()}   <- change ({e.previous} -> {e.label})")
            elif every_hop:
                emit(e.text())
    return {k: round(v, 2) for k, v in talk.items()}


def stream_events(streamer: StreamingGender, chunks: Iterator[np.ndarray]) -> Iterator[StreamEvent]:
    """Every decision of a whole stream (for programs and tests)."""
    for chunk in chunks:
        yield from streamer.feed(chunk)


@hydra.main(version_base="1.3", config_path="pkg://conf", config_name="stream")
def main(cfg: DictConfig) -> None:
    set_threads(cfg.num_threads)
    try:
        chunks = open_source(cfg.source, cfg)  # a wrong source setting fails before the models load
        pipe = GenderPipeline.from_run(resolve_model(cfg.run, cfg.paths.runs_dir), device=cfg.device,
                                       unknown_below=cfg.unknown_below)
        streamer = StreamingGender(pipe, StreamParams(**cfg.stream))
        talk = run_stream(chunks, streamer, cfg.every_hop)
    except SourceError as e:
        log.error("%s", e)
        sys.exit(2)
    except KeyboardInterrupt:
        log.info("stopped")
        return
    log.info("stream ended; time per label (s): %s", talk)


if __name__ == "__main__":
    main()
