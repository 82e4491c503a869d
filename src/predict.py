"""``python -m src.predict input=<file|folder|manifest.csv>``: gender per recording.

    python -m src.predict input=call.wav format=text                 # the shipped model, or run=runs/...
    python -m src.predict input=recordings/ format=csv output=out.csv
    python -m src.predict input=meeting.flac format=rttm output=meeting.rttm
    python -m src.predict input=recordings/ format=textgrid output_dir=grids/   # one file per input

Each file gets ``female``, ``male``, ``mixed`` (both voices, neither with two thirds of the
speech; speaking time per voice) or ``unknown``, with calibrated probabilities; ``status`` says
``ok``, ``unknown`` (not sure), ``no_speech`` or ``error``, and a bad file does not stop the rest.
"""

from __future__ import annotations

import csv
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

from omegaconf import DictConfig

from src.building import set_threads
from src.cli import UsageError, verb
from src.data.files import atomic_write
from src.inference.outputs import FORMATS, ONE_FILE_FORMATS, SUFFIXES, TIMELINE_FORMATS, write_results
from src.inference.pipeline import GenderPipeline, GenderResult, TimelineParams
from src.inference.pretrained import resolve_model

log = logging.getLogger(__name__)

AUDIO_SUFFIXES = {".wav", ".flac", ".mp3", ".ogg", ".opus", ".aiff", ".aif", ".au",  # libsndfile
                  ".m4a", ".mp4", ".aac", ".webm", ".mkv", ".mka", ".3gp", ".amr", ".wma", ".caf"}  # FFmpeg


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


def output_names(files: list[Path]) -> dict[str, str]:
    """Each input's output name in ``output_dir``: its stem, or its path under the inputs' common folder
    (``a__b__call``) when two inputs share a stem, so that no result overwrites another."""
    import os
    from collections import Counter

    stems = Counter(f.stem for f in files)
    root = Path(os.path.commonpath([str(f.parent) for f in files])) if files else Path(".")
    return {str(f): f.stem if stems[f.stem] == 1 else "__".join(f.relative_to(root).with_suffix("").parts)
            for f in files}


def check_request(cfg: DictConfig) -> tuple[str, list[Path], Path | None, Path | None]:
    """Check the command line before any model loads or any file opens.

    Returns:
        the format, the input files, the output file (None: stdout) and the output folder (or None).

    Raises:
        UsageError: an unknown format, a missing input, an output whose folder does not exist ...
    """
    fmt = str(cfg.format).lower()
    if fmt not in FORMATS:
        raise UsageError(f"format={cfg.format} is not one of {', '.join(FORMATS)}")
    if not Path(cfg.input).exists() and not Path(cfg.input).is_symlink():
        raise UsageError(f"input={cfg.input}: no such file or folder")
    files = list_inputs(cfg.input)
    if not files:
        raise UsageError(f"input={cfg.input}: no audio files ({', '.join(sorted(AUDIO_SUFFIXES))}) there")
    output = None if cfg.output in (None, "", "-") else Path(cfg.output)
    out_dir = None if cfg.get("output_dir") in (None, "") else Path(cfg.output_dir)
    if output and out_dir:
        raise UsageError("give output= (one file) or output_dir= (one file per input), not both")
    if output and (output.is_dir() or not output.parent.is_dir()):
        raise UsageError(f"output={output}: " + ("is a folder (use output_dir=)" if output.is_dir()
                                                   else f"the folder {output.parent} does not exist"))
    if out_dir and out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"output_dir={out_dir} is a file")
    if fmt in ONE_FILE_FORMATS and len(files) > 1 and not out_dir:
        raise UsageError(f"format={fmt} writes one document per recording: {len(files)} inputs need output_dir=")
    return fmt, files, output, out_dir


def run_predict(cfg: DictConfig) -> int:
    """Predict every input and write the results; returns the count."""
    fmt, files, output, out_dir = check_request(cfg)
    set_threads(cfg.num_threads)
    run_dir = resolve_model(cfg.run, cfg.paths.runs_dir)
    log.info("model: %s (%s)", run_dir.name, run_dir)
    pipe = GenderPipeline.from_run(run_dir, device=cfg.device, unknown_below=cfg.unknown_below,
                                   timeline_params=TimelineParams(**cfg.timeline_params))
    timeline = bool(cfg.timeline) or fmt in TIMELINE_FORMATS
    to_terminal = output is None and out_dir is None and sys.stdout.isatty()
    results = predict_files(pipe, files, timeline, cfg.progress and not to_terminal)  # no bar between result lines
    if out_dir:
        out_dir.mkdir(parents=True, exist_ok=True)
        n = 0
        names = output_names(files)
        for r in results:
            with atomic_write(out_dir / (names[str(r.path)] + SUFFIXES[fmt]), newline="") as out:
                n += write_results([r], fmt, out)
        log.info("%d result(s) written to %s/", n, out_dir)
        return n
    if output is None:
        n = write_results(results, fmt, sys.stdout)
    else:
        with atomic_write(output, newline="") as out:  # an existing file is replaced only by a finished result
            n = write_results(results, fmt, out)
    log.info("%d result(s) written to %s", n, output or "stdout")
    return n


@verb("predict", positional="input")
def main(cfg: DictConfig) -> None:
    run_predict(cfg)


if __name__ == "__main__":
    main()
