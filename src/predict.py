"""``python -m src.predict run=<run_dir> input=<file|folder|manifest.csv>``: gender per recording.

    python -m src.predict run=runs/resemblyzer-... input=call.wav timeline=true
    python -m src.predict run=runs/resemblyzer-... input=recordings/ format=csv output=out.csv
    python -m src.predict run=runs/resemblyzer-... input=meeting.flac format=rttm output=meeting.rttm

Each file gets ``female``, ``male`` or ``unknown`` (no speech, or confidence under
``unknown_below``) with calibrated probabilities; ``timeline=true`` adds segments cut
where the speaker's gender changes, and speaking time per label. A bad file becomes a
result with ``status: error`` and the rest go on.
"""

from __future__ import annotations

import csv
import logging
import sys
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path

import hydra
from omegaconf import DictConfig

from src.building import set_threads
from src.inference.pretrained import resolve_model
from src.inference.outputs import write_results
from src.inference.pipeline import GenderPipeline, GenderResult, TimelineParams

log = logging.getLogger(__name__)

AUDIO_SUFFIXES = {".wav", ".flac", ".mp3", ".ogg", ".opus", ".aiff", ".aif", ".au", ".m4a"}


def list_inputs(input_path: str | Path) -> list[Path]:
    """A file, every audio file under a folder (sorted), or the ``path`` column of a manifest CSV."""
    p = Path(input_path)
    if p.is_dir():
        # a link that loops or dangles is listed too, so it gets a row with its reason
        return sorted(f for f in p.rglob("*") if (f.is_file() or f.is_symlink()) and f.suffix.lower() in AUDIO_SUFFIXES)
    if p.suffix.lower() == ".csv":
        with open(p, newline="", encoding="utf-8-sig") as f:  # as read_manifest reads it (BOM allowed)
            return [(p.parent / r["path"]) for r in csv.DictReader(f)]
    if not p.exists():
        raise FileNotFoundError(f"input not found: {p}")
    return [p]


def predict_files(pipe: GenderPipeline, files: list[Path], timeline: bool, progress: bool = True
                  ) -> Iterator[GenderResult]:
    """Results one file at a time (a bad file yields an error result)."""
    from tqdm import tqdm

    for f in tqdm(files, unit="file", disable=not progress or len(files) < 2, desc="predict"):
        r = pipe(f, timeline=timeline)
        if r.status == "error":
            log.warning("%s: %s", f, r.reason)
        yield r


def run_predict(cfg: DictConfig) -> int:
    """Predict every input and write the results; returns the count."""
    set_threads(cfg.num_threads)
    pipe = GenderPipeline.from_run(resolve_model(cfg.run, cfg.paths.runs_dir), device=cfg.device,
                                   unknown_below=cfg.unknown_below,
                                   timeline_params=TimelineParams(**cfg.timeline_params))
    files = list_inputs(cfg.input)
    timeline = cfg.timeline or cfg.format == "rttm"
    out_ctx = nullcontext(sys.stdout) if cfg.output in (None, "-") else open(cfg.output, "w", newline="")
    with out_ctx as out:
        n = write_results(predict_files(pipe, files, timeline, cfg.progress), cfg.format, out)
    log.info("%d result(s) written to %s", n, cfg.output or "stdout")
    return n


@hydra.main(version_base="1.3", config_path="pkg://conf", config_name="predict")
def main(cfg: DictConfig) -> None:
    run_predict(cfg)


if __name__ == "__main__":
    main()
