#!/usr/bin/env python
"""Benchmark of the extraction stage (``python -m src.extract``), on real speech.

    python bench/extract.py                                   # all 492 dev clips, 2 threads
    python bench/extract.py --clips 40 --long-file-min 2      # about a minute
    python bench/extract.py --repeats 3 --json bench.json     # best of 3, figures saved
    python bench/extract.py --threads 1 --sections long --long-min 10 --profile   # long vs short files

Three measurements, side by side in one process, each printed as a ratio next to
its goal; a markdown table closes the output (PASS/MISS per goal).

(a) VAD: batched ``SileroSegmenter.timestamps`` against Silero's stock per-file loop
    ``[get_speech_timestamps(torch.from_numpy(w), model) for w in waves]`` on the same
    clips, decoded once beforehand (decoding is in neither timing). Speed-up is the
    ratio of throughputs (audio seconds per wall second); goal >= 3x. Each clip's
    segment list must be identical to the stock one; goal 100%.
(b) Pipeline overhead: ``extract()`` end to end (decode, VAD, encode, JSON lines
    written to a temp file) against the bare ``encoder.embed`` on exactly the speech
    the pipeline embeds, in the same batches. Both throughputs count the audio seconds
    of the original clips, so the ratio is bare_time / e2e_time; goal >= 0.85.
(c) Memory: peak RSS of the process after extraction, and the tracemalloc peak while
    ``load_audio`` decodes a synthesized long file (48 kHz stereo 16-bit WAV tiled
    from the real clips, written to a temp dir and deleted afterwards) divided by the
    size of its 16 kHz mono float32 result; goal <= 2.

(d) Workers: extraction as 1 process pinned to one core, 2 processes pinned to one core each
    (each extracting every other clip, what ``num_shards=2 shard=i`` does), and 1 unpinned
    process (today's default ``python -m src.extract``: its decode+VAD and encoder threads on
    any core). Processes load their models, then start together; throughput is all audio over
    (last end - first start). Goal: 2 workers >= 1.8x one worker. Then the command itself,
    ``python -m src.extract`` with ``num_workers=1`` and with the default ``num_workers=auto``, timed
    from start to exit (process starts, model loads and the merge included); goal: auto >= 1.8x one
    on two cores.
(e) Encoders: speech seconds embedded per wall second by Resemblyzer (its real weights),
    ECAPA-TDNN (spkrec-ecapa-voxceleb's architecture) and wav2vec2-base (torchaudio's
    WAV2VEC2_BASE architecture), the two hub encoders built at full size with RANDOM weights
    and loaded through their real loaders: speed only, no accuracy. Same VAD speech, each
    encoder's own batch size.

(f) Long file: ``GenderPipeline.classify_wave`` of the shipped default model (``--long-run``) on
    ``--long-clips`` short dev clips one by one and on one ``--long-min`` minute recording of other
    dev clips joined with 0.5 s gaps, with and without the timeline: x real time and audio seconds
    per CPU second of each, their ratio (goal >= 0.9), the RSS growth of the long file, the timeline's
    accuracy against the clips' labels; ``--profile`` adds a cProfile of the long file
    (``bench/long.py``).

``--sections core,workers,encoders,long`` picks what runs (core = a, b, c).

Configuration (VAD parameters and batch size, encoder, chunk size, clip limits) is
composed from ``conf/extract.yaml`` exactly as ``python -m src.extract`` does;
positional ``key=value`` arguments are Hydra overrides (``chunk_clips=64``,
``encoder.batch_size=8``, ``vad.batch_size=64``). Timings use ``time.perf_counter``;
torch runs with ``--threads`` intra-op threads in every timed section (checked).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

REPO_DIR = Path(__file__).resolve().parent.parent
if str(REPO_DIR) not in sys.path:
    sys.path.insert(0, str(REPO_DIR))

import torch  # noqa: E402

from bench.extract_common import check_threads, compose_config, loadavg, pick, resolve_manifest  # noqa: E402

log = logging.getLogger("bench.extract")

SECTIONS = ("core", "workers", "encoders", "long")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="bench/extract.py", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="Hydra overrides of conf/extract.yaml (e.g. chunk_clips=64 encoder.batch_size=8)")
    p.add_argument("--manifest", default="../shared/data/dev/manifest.csv",
                   help="manifest CSV of real speech (relative paths: to the current folder, "
                        "else to the repo folder) [%(default)s]")
    p.add_argument("--clips", type=int, default=None,
                   help="use N clips spread evenly over the manifest (default: all)")
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads [%(default)s]")
    p.add_argument("--encoder", default="resemblyzer",
                   help="encoder key, conf/encoder/<key>.yaml [%(default)s]")
    p.add_argument("--repeats", type=int, default=1,
                   help="time each contender this many times (alternating) and keep the fastest "
                        "run [%(default)s]")
    p.add_argument("--long-file-min", type=float, default=60.0,
                   help="length of the synthesized 48 kHz stereo WAV in minutes; 0 skips it "
                        "(60 min is about 690 MB on disk) [%(default)s]")
    p.add_argument("--tmp-dir", default=None,
                   help="where the temp JSONL and the long WAV go (default: the system temp dir)")
    p.add_argument("--json", dest="json_path", default=None, metavar="OUT.json",
                   help="also save every figure to this JSON file")
    p.add_argument("--sections", default="core,workers,encoders,long",
                   help="comma-separated: core (a, b, c), workers (d), encoders (e), long (f) [%(default)s]")
    p.add_argument("--encoder-clips", type=int, default=24,
                   help="(e): embed the speech of this many clips per encoder [%(default)s]")
    p.add_argument("--long-min", type=float, default=10.0,
                   help="(f): minutes of the long recording made of joined dev clips [%(default)s]")
    p.add_argument("--long-clips", type=int, default=40,
                   help="(f): short clips classified one by one beside it [%(default)s]")
    p.add_argument("--long-run", default="default",
                   help="(f): the model, a run folder or `default` (the shipped one) [%(default)s]")
    p.add_argument("--profile", action="store_true", help="(f): print a cProfile of the long file")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return p.parse_args(argv)


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S", stream=sys.stderr)
    logging.getLogger("src.data.manifest").setLevel(logging.WARNING)
    import warnings
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", message="pkg_resources is deprecated")


def save_figures(path: str, core: dict | None, scale: dict | None, long: dict | None) -> None:
    """``--json``: every figure that was measured; (d)/(e) under ``scale`` and (f) under ``long``,
    beside (a)-(c) when they ran."""
    out = dict(core or {})
    if scale is not None:
        out["scale"] = scale
    if long is not None:
        out["long"] = long
    Path(path).write_text(json.dumps(out, indent=2, default=str))
    log.info("figures saved to %s", path)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.repeats < 1 or args.threads < 1:
        raise SystemExit("--repeats and --threads must be at least 1")
    setup_logging(args.verbose)

    import silero_vad  # noqa: F401  (its import sets torch threads to 1: import it first, then set)

    from bench.extract_core import run_core
    from bench.long import run_long
    from bench.scale import run_scale
    from src.data.manifest import read_manifest
    from src.runtime import set_threads

    set_threads(args.threads)
    check_threads(args.threads, "setup")
    load_start = loadavg()

    cfg = compose_config(args.encoder, args.overrides)
    manifest = resolve_manifest(args.manifest)
    all_clips = pick(read_manifest(manifest), args.clips)
    if not all_clips:
        raise SystemExit(f"{manifest}: no clips")
    log.info("%s: %d clips; torch %s with %d threads on %d CPUs", manifest, len(all_clips), torch.__version__,
             torch.get_num_threads(), os.cpu_count())

    sections = set(args.sections.split(","))
    if not sections <= set(SECTIONS):
        raise SystemExit(f"--sections: unknown {sorted(sections - set(SECTIONS))}")
    command = " ".join(["bench/extract.py", *(sys.argv[1:] if argv is None else argv)])
    core = run_core(args, cfg, manifest, all_clips, command, load_start) if "core" in sections else None
    scale = run_scale(args, cfg, all_clips, sections) if sections & {"workers", "encoders"} else None
    long = run_long(args, manifest) if "long" in sections else None
    if args.json_path:
        save_figures(args.json_path, core, scale, long)
    return 0


if __name__ == "__main__":
    sys.exit(main())
