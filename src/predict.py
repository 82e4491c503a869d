"""``python -m src.predict input=<file|folder|manifest.csv>``: gender per recording.

    python -m src.predict input=call.wav format=text                 # the shipped model, or run=runs/...
    python -m src.predict input=recordings/ format=csv output=out.csv
    python -m src.predict input=meeting.flac format=rttm output=meeting.rttm
    python -m src.predict input=recordings/ format=textgrid output_dir=grids/   # one file per input
    python -m src.predict input=archive.csv output=all.jsonl num_workers=4          # 4 processes (default: auto)
    python -m src.predict -m hydra/launcher=slurm input=archive.csv output=all.jsonl num_shards=64 'shard=range(0,64)'
    python -m src.predict input=archive.csv output=all.jsonl num_shards=64 merge=true   # when every shard is done

Each file gets ``female``, ``male``, ``mixed`` (both voices, neither with two thirds of the
speech; speaking time per voice) or ``unknown``, with calibrated probabilities; ``status`` says
``ok``, ``unknown`` (not sure), ``no_speech`` or ``error``, and a bad file does not stop the rest.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

from omegaconf import DictConfig

from src.cli import UsageError, verb
from src.data.files import atomic_write, remove_orphaned_parts
from src.data.manifest import ManifestError, read_paths
from src.embeddings.shards import available_cpus, plain_config, resolve_workers, run_workers
from src.inference.outputs import FORMATS, ONE_FILE_FORMATS, SUFFIXES, TIMELINE_FORMATS, write_results
from src.inference.params import QualityParams, TimelineParams, check_unknown_below
from src.inference.pipeline import GenderPipeline, GenderResult
from src.inference.run_folder import RunFolder
from src.inference.sharded import (
    MIN_FILES_PER_WORKER,
    ShardsError,
    default_shards_dir,
    merged_results,
    predict_shard,
    remove_parts,
)
from src.runtime import set_threads
from src.settings import from_cfg

log = logging.getLogger(__name__)

AUDIO_SUFFIXES = {".wav", ".flac", ".mp3", ".ogg", ".opus", ".aiff", ".aif", ".au",  # libsndfile
                  ".m4a", ".mp4", ".aac", ".webm", ".mkv", ".mka", ".3gp", ".amr", ".wma", ".caf"}  # FFmpeg


def list_inputs(input_path: str | Path) -> list[Path]:
    """A file, every audio file under a folder (sorted), or the ``path`` column of a manifest CSV
    (read as strictly as ``extract`` reads manifests: a bad row stops with its file and line)."""
    p = Path(input_path)
    if p.is_dir():
        # a link that loops or dangles is listed too, so it gets a row with its reason
        return sorted(f for f in p.rglob("*") if (f.is_file() or f.is_symlink()) and f.suffix.lower() in AUDIO_SUFFIXES)
    if p.suffix.lower() == ".csv":
        return read_paths(p)
    if not p.exists():
        raise FileNotFoundError(f"input not found: {p}")
    return [p]


def predict_files(pipe: GenderPipeline, files: list[Path], timeline: bool, progress: bool = True,
                  position: int | None = None) -> Iterator[GenderResult]:
    """Results one file at a time (a bad file yields an error result); ``position``: the progress
    bar's line, one per worker process."""
    from tqdm import tqdm

    desc = "predict" if position is None else f"predict [{position}]"
    for f in tqdm(files, unit="file", disable=not progress or len(files) < 2, desc=desc, position=position):
        r = pipe(f, timeline=timeline)
        if r.status == "error":
            log.warning("%s: %s", f, r.reason if r.reason != "too_long" else
                        f"too_long: longer than max_duration_s={pipe.max_duration_s:g} s of audio, not processed")
        yield r


def output_names(files: list[Path]) -> dict[str, str]:
    """Each input's output name in ``output_dir``, never the same for two inputs: its stem; where stems
    clash, its path under the inputs' common folder (``a__call``); where those clash too (``a/call.flac``
    and ``a__call.flac``, or ``call.wav`` and ``call.flac``), that and a hash of the input's path.

    Raises:
        UsageError: naming both inputs, should two names still be one (the same input listed twice).
    """
    import hashlib
    import os
    from collections import Counter

    root = Path(os.path.commonpath([str(f.parent) for f in files])) if files else Path(".")

    def joined(f: Path) -> str:
        return "__".join(f.relative_to(root).with_suffix("").parts) if f.is_relative_to(root) else f.stem

    def hashed(f: Path) -> str:
        return f"{joined(f)}-{hashlib.sha1(str(f).encode()).hexdigest()[:8]}"

    twice = [f for f, n in Counter(map(str, files)).items() if n > 1]
    if twice:
        raise UsageError(f"output_dir: {twice[0]} is listed {Counter(map(str, files))[twice[0]]} times and would be "
                         "written to one file; list each input once")
    names = {str(f): f.stem for f in files}
    for rename in (joined, hashed):
        clash = Counter(names.values())
        names.update({str(f): rename(f) for f in files if clash[names[str(f)]] > 1})
    first: dict[str, str] = {}
    for f, name in names.items():
        if name in first:
            raise UsageError(f"output_dir: {first[name]} and {f} would both be written to {name}; "
                             "rename one")
        first[name] = f
    return names


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
    try:
        files = list_inputs(cfg.input)
    except ManifestError as e:
        raise UsageError(str(e)) from None
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
    if out_dir:
        output_names(files)  # two inputs that would share an output file stop here
    from_cfg(TimelineParams, cfg.timeline_params)  # hop_s=0, window_s=-1 ...: SettingError, before the model loads
    from_cfg(QualityParams, cfg.quality)
    check_unknown_below(cfg.unknown_below)
    return fmt, files, output, out_dir


def options_hash(cfg: DictConfig, run_dir: Path) -> str:
    """A hash of what shapes a result (the model and its settings, not the output format): shards of one
    sweep must agree on it, and a merge may render their parts in any format."""
    from omegaconf import OmegaConf

    from src.embeddings.store import config_hash

    weights = sorted((p.name, p.stat().st_size) for p in run_dir.glob("*.pt"))
    return config_hash({"model": str(run_dir.resolve()), "weights": weights, "unknown_below": cfg.unknown_below,
                        "timeline": bool(cfg.timeline) or str(cfg.format).lower() in TIMELINE_FORMATS,
                        "timeline_params": OmegaConf.to_container(cfg.timeline_params, resolve=True),
                        "quality": OmegaConf.to_container(cfg.quality, resolve=True)})


def write_outputs(results: Iterable[GenderResult], fmt: str, files: list[Path], output: Path | None,
                  out_dir: Path | None) -> int:
    """Write results to standard output, one file (whole or not at all) or one file per input."""
    if out_dir:
        out_dir.mkdir(parents=True, exist_ok=True)
        remove_orphaned_parts(out_dir)  # what a killed predict left
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
        remove_orphaned_parts(output.parent, output.name)
        with atomic_write(output, newline="") as out:  # an existing file is replaced only by a finished result
            n = write_results(results, fmt, out)
    log.info("%d result(s) written to %s", n, output or "stdout")
    return n


def _shards_dir(cfg: DictConfig, output: Path | None, out_dir: Path | None) -> Path | None:
    return Path(cfg.shards_dir) if cfg.get("shards_dir") else default_shards_dir(output, out_dir)


def run_predict(cfg: DictConfig) -> int:
    """Predict every input and write the results; returns the count.

    ``num_shards=N shard=i`` predicts one shard into its part file (resumable; ``merge=true`` then
    writes the outputs); on one machine ``num_workers`` runs that many shards as processes and merges.
    """
    fmt, files, output, out_dir = check_request(cfg)
    shards_dir = _shards_dir(cfg, output, out_dir)
    num_shards = int(cfg.num_shards)
    if (num_shards > 1 or cfg.merge) and shards_dir is None:
        raise UsageError("sharded predict writes part files beside its outputs: give output= or output_dir= "
                         "(or shards_dir=)")
    if cfg.merge and num_shards == 1:
        raise UsageError("merge=true: give the sweep's num_shards=N (its part files are .shard-<i>-of-<N>)")
    if num_shards < 1 or not 0 <= int(cfg.shard) < num_shards:
        raise UsageError(f"shard={cfg.shard} num_shards={cfg.num_shards}: need 0 <= shard < num_shards")
    try:
        workers = resolve_workers(cfg.num_workers, len(files), MIN_FILES_PER_WORKER)
        if num_shards > 1 or cfg.merge:
            workers = 1  # a cluster shard is one process; a merge runs no model
    except ValueError as e:
        raise UsageError(str(e)) from None
    folder = RunFolder.resolve(cfg.run, cfg.paths.runs_dir)
    run_dir = folder.dir
    digest = options_hash(cfg, run_dir)
    if cfg.merge:
        try:
            return write_outputs(merged_results(shards_dir, files, num_shards, digest), fmt, files, output, out_dir)
        except ShardsError as e:
            raise UsageError(str(e)) from None
    if workers > 1:
        return _predict_in_workers(cfg, files, workers, shards_dir, digest, fmt, output, out_dir)
    set_threads(cfg.num_threads)
    log.info("model: %s (%s)", run_dir.name, run_dir)
    timeline = bool(cfg.timeline) or fmt in TIMELINE_FORMATS

    def pipeline() -> GenderPipeline:
        return GenderPipeline.from_run(folder, device=cfg.device, unknown_below=cfg.unknown_below,
                                       timeline_params=from_cfg(TimelineParams, cfg.timeline_params),
                                       max_duration_s=float(cfg.max_duration_s),
                                       quality_params=from_cfg(QualityParams, cfg.quality))

    if num_shards > 1:
        pipe: list[GenderPipeline] = []  # loaded only if the shard has work left
        # one bar line per local worker; a cluster shard's log gets a plain bar
        position = int(cfg.shard) if num_shards <= available_cpus() else None

        def predict(todo: list[Path]) -> Iterator[GenderResult]:
            if todo and not pipe:
                pipe.append(pipeline())
            return predict_files(pipe[0], todo, timeline, cfg.progress, position) if todo else iter(())

        n = predict_shard(predict, files, shards_dir, int(cfg.shard), num_shards, digest,
                          {"model": str(run_dir), "input": str(cfg.input)})
        log.info("shard %d of %d: %d file(s) predicted now, in %s", cfg.shard, num_shards, n, shards_dir)
        return n
    to_terminal = output is None and out_dir is None and sys.stdout.isatty()
    results = predict_files(pipeline(), files, timeline, cfg.progress and not to_terminal)  # no bar between lines
    return write_outputs(results, fmt, files, output, out_dir)


def _predict_in_workers(cfg: DictConfig, files: list[Path], workers: int, shards_dir: Path | None, digest: str,
                        fmt: str, output: Path | None, out_dir: Path | None) -> int:
    """``num_workers`` on one machine: shard ``k`` of ``workers`` in each of as many processes, then the merge."""
    import shutil
    import tempfile

    temporary = shards_dir is None  # results for standard output: the parts only live until printed
    shards_dir = Path(tempfile.mkdtemp(prefix="predict-shards-")) if temporary else shards_dir
    log.info("%d files in %d worker processes (num_workers=%s; parts in %s)", len(files), workers,
             cfg.num_workers, shards_dir)
    try:
        cfgs = []
        for k in range(workers):
            sub = plain_config(cfg)
            sub.update(shard=k, num_shards=workers, num_workers=1, merge=False, shards_dir=str(shards_dir))
            cfgs.append(sub)
        run_workers(run_predict, cfgs)  # killed or failed: the parts stay, and the same command resumes
        n = write_outputs(merged_results(shards_dir, files, workers, digest), fmt, files, output, out_dir)
        remove_parts(shards_dir, workers)  # done: a rerun predicts afresh, as a one-process run does
        return n
    finally:
        if temporary:
            shutil.rmtree(shards_dir, ignore_errors=True)


@verb("predict", positional="input")
def main(cfg: DictConfig) -> None:
    run_predict(cfg)


if __name__ == "__main__":
    main()
