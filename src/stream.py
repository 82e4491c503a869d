"""``python -m src.stream run=<run_dir> source=mic|file:<path>|stdin``: live gender.

    python -m src.stream run=runs/resemblyzer-... source=mic
    python -m src.stream run=runs/resemblyzer-... source=file:call.wav realtime=false
    arecord -f S16_LE -r 8000 -c 1 | python -m src.stream run=... source=stdin rate=8000

Prints a decision every hop (``12.6s  Female 0.94``: the held label and its own probability;
``(hearing male 0.81)`` while a change waits for confirmation, ``(silence)`` between words) and a
line at each change; ``every_hop=false`` prints only the changes (for long sessions). At the end:
the whole stream's answer (``mixed`` when neither voice has two thirds of it) and speaking time per
label, counted over speech only, as ``predict`` counts it.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from src.cli import verb
from src.inference.params import QualityParams, StreamParams, check_unknown_below
from src.inference.pipeline import GenderPipeline
from src.inference.run_folder import RunFolder
from src.inference.sources import SourceError, check_pcm_format, file_chunks, mic_chunks, pcm_chunks
from src.inference.streaming import StreamingGender
from src.runtime import set_threads
from src.settings import from_cfg

log = logging.getLogger(__name__)


def open_source(source: str, cfg: DictConfig) -> Iterator[np.ndarray]:
    """``mic``, ``file:<path>`` or ``stdin`` -> chunks of 16 kHz mono float32."""
    if source == "mic":
        return mic_chunks(cfg.block_s, cfg.mic_device)
    if source == "stdin":
        check_pcm_format(int(cfg.rate), cfg.dtype, int(cfg.channels))  # now, not at the first read
        return pcm_chunks(sys.stdin.buffer, int(cfg.rate), cfg.dtype, int(cfg.channels), cfg.block_s)
    if source.startswith("file:"):
        path = source[len("file:"):]
        if not Path(path).is_file():  # now, before the model loads (the generator would read it later)
            raise SourceError(f"source=file:{path}: no such file")
        return file_chunks(path, cfg.block_s, cfg.realtime)
    raise SourceError(f"unknown source {source!r}: mic, stdin or file:<path>")


def run_stream(chunks: Iterator[np.ndarray], streamer: StreamingGender, every_hop: bool = True,
               emit: Callable[[str], None] = print) -> tuple[str, dict[str, float]]:
    """Feed chunks until the source ends; print decisions; return the stream's answer and speaking
    time (s) per label (:meth:`StreamingGender.summary`)."""
    for chunk in chunks:
        for e in streamer.feed(chunk):
            if e.changed:
                emit(f"{e.text()}   <- change ({e.previous} -> {e.label})")
            elif every_hop:
                emit(e.text())
    return streamer.summary()


@verb("stream", positional="source", prefix="file:")
def main(cfg: DictConfig) -> None:
    set_threads(cfg.num_threads)
    params = from_cfg(StreamParams, cfg.stream)  # a setting out of range fails before the models load ...
    check_unknown_below(cfg.unknown_below)
    quality = from_cfg(QualityParams, cfg.quality)
    chunks = open_source(cfg.source, cfg)  # ... and so does a wrong source setting
    folder = RunFolder.resolve(cfg.run, cfg.paths.runs_dir)
    log.info("model: %s (%s)", folder.name, folder.dir)
    pipe = GenderPipeline.from_run(folder, device=cfg.device, unknown_below=cfg.unknown_below,
                                   quality_params=quality)
    streamer = StreamingGender(pipe, params)
    try:
        run_stream(chunks, streamer, cfg.every_hop)
    except KeyboardInterrupt:
        log.info("stopped")
    verdict, talk = streamer.summary()
    times = ", ".join(f"{k} {v:.1f} s" for k, v in sorted(talk.items())) or "no speech"
    print(f"end: {verdict} (speaking time: {times}) [model: {folder.name}]")


if __name__ == "__main__":
    main()
