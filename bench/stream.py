#!/usr/bin/env python
"""Benchmark of live gender streaming (``python -m src.stream``) on a real conversation.

    python bench/stream.py                                   # newest data=dev run, windows 0.5 1 1.5 3 s
    python bench/stream.py --run runs/resemblyzer-2026-11-21_23-55-39 --json stream.json
    python bench/stream.py --windows 1.5 --change-hops 1 2   # hysteresis: 1 vs 2 decisions in a row
    python bench/stream.py --minutes 1 --threads 1           # shorter, one torch thread

The conversation: real utterances of ``../shared/data/dev`` from speakers of the TEST split of
the run (its ``predictions.csv``), so the classifier has never heard them; female and male
turns alternate, a different speaker each turn, each utterance cut to its speech (Silero's first
start to last end), 0.3-0.7 s of silence between turns, until ``--minutes`` are filled. A turn
starts exactly where its utterance starts.

It is fed to ``StreamingGender`` (``conf/stream.yaml`` settings, window and hop from the
options) as fast as possible, in 512-sample (32 ms) chunks so that each chunk holds at most one
decision; the wall time of each ``feed`` call is timed (``time.perf_counter``) and summed per hop.

Figures per (window, change_hops), goals as given for the default 1.5 s window:

* compute share: compute per hop / hop length (median and p95); goal <= 10%
  (the run's encoder, or an end-to-end network's trunk; ``--threads`` torch threads);
* latency: from the start of a new speaker's speech to the first change event to that
  speaker's gender (turns after the first; a turn never shown before the next one is "missed");
  median, goal <= 1.0 s;
* accuracy: decisions (one per hop) whose time falls inside a turn's speech, shown label ==
  the turn's gender (``unknown`` counts as wrong); goal >= 95%. The column "settled" leaves out
  the first 1.5 s of each turn, to separate lag from misclassification;
* spurious changes: change events not within 2 s after the start of a turn (shown per minute).

Each line also splits the compute: one Silero VAD step per 32 ms block (as a share of real
time) and one decision (the encoder on the ring's speech, e.g. Resemblyzer padded to its 1.6 s
partial, or an end-to-end network's trunk on it as it is, plus the classifier). The machine's load
average at start and end is printed: on a shared machine the compute shares are pessimistic; the
other figures do not depend on speed.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

REPO_DIR = Path(__file__).resolve().parent.parent
if str(REPO_DIR) not in sys.path:
    sys.path.insert(0, str(REPO_DIR))

import numpy as np  # noqa: E402
import torch  # noqa: E402

log = logging.getLogger("bench.stream")

GOAL_COMPUTE_SHARE = 0.10   # compute per hop / hop, at most (median and p95)
GOAL_LATENCY_S = 1.0        # median, start of the new speaker's speech -> change event, at most
GOAL_ACCURACY = 0.95        # share of speech hops with the right label shown, at least
SPURIOUS_WINDOW_S = 2.0     # a change this long after a turn's start belongs to that turn
SETTLE_S = 1.5              # "settled" accuracy leaves out this much of each turn's start
DEFAULT_WINDOW_S = 1.5
CHUNK_SAMPLES = 512         # one Silero block: at most one decision per feed call


# --------------------------------------------------------------------------- setup

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/stream.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", default=None,
                   help="a finished run trained with data=dev (default: the newest such run under runs/)")
    p.add_argument("--runs-dir", default=str(REPO_DIR / "runs"), help="where to look for runs [%(default)s]")
    p.add_argument("--minutes", type=float, default=2.5, help="length of the conversation [%(default)s]")
    p.add_argument("--pause-s", type=float, nargs=2, default=(0.3, 0.7), metavar=("MIN", "MAX"),
                   help="silence between turns, drawn uniformly [%(default)s]")
    p.add_argument("--windows", type=float, nargs="+", default=[0.5, 1.0, 1.5, 3.0], metavar="S",
                   help="stream.window_s values to measure [%(default)s]")
    p.add_argument("--hop-s", type=float, default=0.3, help="stream.hop_s [%(default)s]")
    p.add_argument("--change-hops", type=int, nargs="+", default=None, metavar="N",
                   help="stream.change_hops values to measure (default: conf/stream.yaml's)")
    p.add_argument("--threads", type=int, default=2,
                   help="torch intra-op threads; conf/stream.yaml runs with 1, and on a busy machine 2 "
                        "OpenMP threads per small call can be several times slower [%(default)s]")
    p.add_argument("--seed", type=int, default=0, help="speaker, clip and pause draw [%(default)s]")
    p.add_argument("--save-wav", default=None, metavar="OUT.wav", help="also write the conversation here")
    p.add_argument("--json", dest="json_path", default=None, metavar="OUT.json",
                   help="also save every figure (and each turn's latency) to this JSON file")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return p.parse_args(argv)


def loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def find_dev_run(run: str | None, runs_dir: str) -> Path:
    """``--run`` (checked), else the newest finished run under ``runs_dir`` trained with data=dev."""
    from src.inference.run_folder import RunFolder

    how = ("make one with `python -m src.extract data=dev` then `python -m src.train data=dev`")
    if run is not None:
        r = RunFolder.open(run)
        if r.config.data.name != "dev":
            raise SystemExit(f"{run} was trained with data={r.config.data.name}, not data=dev: {how}")
        return r.dir
    for r in reversed(RunFolder.finished(runs_dir)):
        if r.config.data.name == "dev":
            return r.dir
    raise SystemExit(f"no finished data=dev run under {runs_dir}: {how}")


def stream_config(run_dir: Path):
    """``conf/stream.yaml`` as ``python -m src.stream run=<run_dir>`` would see it."""
    from hydra import compose, initialize_config_module

    from src.config_store import register

    register()  # the group schemas (vad, trainer, ...), as every verb has them
    with initialize_config_module(config_module="conf", version_base="1.3"):
        return compose(config_name="stream", overrides=[f"run={run_dir}"])


# --------------------------------------------------------------------------- the conversation

@dataclass
class Turn:
    start_s: float
    end_s: float
    gender: str
    speaker: str
    clip: str


def test_utterances(run_dir: Path) -> dict[str, dict[str, list[Path]]]:
    """gender -> speaker -> clip paths, for the run's test split."""
    import pandas as pd

    df = pd.read_csv(run_dir / "predictions.csv", keep_default_na=False)
    df = df[df.split == "test"]
    out: dict[str, dict[str, list[Path]]] = {"female": {}, "male": {}}
    for r in df.itertuples():
        p = Path(r.path)
        out[r.gender].setdefault(r.speaker, []).append(p if p.is_absolute() else REPO_DIR / p)
    if not out["female"] or not out["male"]:
        raise SystemExit(f"{run_dir}: the test split needs female and male speakers")
    return out


def build_conversation(utterances: dict[str, dict[str, list[Path]]], minutes: float, pause_s: tuple[float, float],
                       seed: int, segmenter) -> tuple[np.ndarray, list[Turn]]:
    """Alternating genders, a new speaker each turn (cycling through the shuffled speakers)."""
    from src.data.audio import SAMPLE_RATE_HZ as SR
    from src.data.audio import AudioError, load_audio

    rng = np.random.default_rng(seed)
    queues = {g: [s for s in rng.permutation(sorted(spk))] for g, spk in utterances.items()}
    used: set[Path] = set()
    parts: list[np.ndarray] = []
    turns: list[Turn] = []
    t, gender = 0.0, ("female", "male")[int(rng.integers(2))]
    while t < minutes * 60:
        speaker = queues[gender].pop(0)
        queues[gender].append(speaker)
        clips = [c for c in utterances[gender][speaker] if c not in used] or utterances[gender][speaker]
        clip = clips[int(rng.integers(len(clips)))]
        used.add(clip)
        try:
            wave = load_audio(clip)
        except AudioError as e:
            log.warning("skipping %s: %s", clip, e)
            continue
        ts = segmenter.timestamps([wave])[0]
        if not ts:
            continue
        wave = wave[ts[0]["start"]:ts[-1]["end"]]
        if parts:
            gap = np.zeros(int(rng.uniform(*pause_s) * SR), np.float32)
            parts.append(gap)
            t += len(gap) / SR
        turns.append(Turn(round(t, 3), round(t + len(wave) / SR, 3), gender, speaker, clip.name))
        parts.append(wave)
        t += len(wave) / SR
        gender = "male" if gender == "female" else "female"
    return np.concatenate(parts), turns


# --------------------------------------------------------------------------- one configuration

def run_stream(pipe, params, wave: np.ndarray, threads: int) -> tuple[list, np.ndarray, dict]:
    """Every decision, the compute seconds of each hop (feed calls summed up to its decision), and
    where the time goes: a chunk without a decision is one Silero VAD step; a chunk with one is a
    VAD step plus the decision (embedding the ring's speech and scoring it)."""
    from src.inference.streaming import StreamingGender

    streamer = StreamingGender(pipe, params)
    torch.set_num_threads(threads)  # loading Silero may have changed it
    streamer.feed(wave[:2 * 16000])  # warm-up, then a fresh stream
    streamer.reset()
    if torch.get_num_threads() != threads:
        raise RuntimeError(f"torch runs with {torch.get_num_threads()} threads, not --threads {threads}")
    events, compute, acc = [], [], 0.0
    vad_only, with_decision = [], []
    for i in range(0, len(wave), CHUNK_SAMPLES):
        t0 = time.perf_counter()
        new = streamer.feed(wave[i:i + CHUNK_SAMPLES])
        dt = time.perf_counter() - t0
        acc += dt
        if new:
            events += new
            compute += [acc / len(new)] * len(new)
            acc = 0.0
            if new[-1].p_male is not None:  # a decision that embedded speech
                with_decision.append(dt)
        else:
            vad_only.append(dt)
    vad_ms = 1000 * float(np.median(vad_only))
    parts = {"vad_ms_per_block": round(vad_ms, 2),
             "vad_share": round(vad_ms / (1000 * CHUNK_SAMPLES / 16000), 4),  # of real time
             "decision_ms_median": round(1000 * float(np.median(with_decision)) - vad_ms, 1)
             if with_decision else None}
    return events, np.array(compute), parts


def measure(events: list, compute_s: np.ndarray, turns: list[Turn], hop_s: float, duration_s: float) -> dict:
    """The figures of one run (see the module docstring)."""
    share = compute_s / hop_s
    starts = [tn.start_s for tn in turns]
    latencies: list[float | None] = []
    for i, tn in enumerate(turns[1:], start=1):
        until = starts[i + 1] if i + 1 < len(turns) else np.inf
        shown_before = [e for e in events if e.t_s < tn.start_s]
        if shown_before and shown_before[-1].label == tn.gender:
            latencies.append(0.0)  # the previous turn was never shown: nothing to change
            continue
        first = next((e for e in events if e.changed and e.label == tn.gender and tn.start_s <= e.t_s < until), None)
        latencies.append(None if first is None else round(first.t_s - tn.start_s, 3))
    got = [x for x in latencies if x is not None]
    speech_hops, settled_hops = [], []
    for e in events:
        tn = next((tn for tn in turns if tn.start_s <= e.t_s <= tn.end_s), None)
        if tn is not None:
            speech_hops.append(e.label == tn.gender)
            if e.t_s >= tn.start_s + SETTLE_S:
                settled_hops.append(e.label == tn.gender)
    unknown = sum(1 for e in events if e.label == "unknown"
                  and any(tn.start_s <= e.t_s <= tn.end_s for tn in turns))
    changes = [e for e in events if e.changed]
    spurious = [round(e.t_s, 2) for e in changes
                if not any(s <= e.t_s <= s + SPURIOUS_WINDOW_S for s in starts)]
    return {
        "hops": len(events),
        "compute_share_median": float(np.median(share)), "compute_share_p95": float(np.percentile(share, 95)),
        "compute_share_max": float(share.max()),
        "latency_median_s": float(np.median(got)) if got else None,
        "latency_p90_s": float(np.percentile(got, 90)) if got else None,
        "turns_changed": len(latencies), "turns_missed": latencies.count(None), "latencies_s": latencies,
        "accuracy": float(np.mean(speech_hops)), "accuracy_settled": float(np.mean(settled_hops)),
        "speech_hops": len(speech_hops), "unknown_share": unknown / max(1, len(speech_hops)),
        "changes": len(changes), "spurious_changes": len(spurious),
        "spurious_per_min": len(spurious) / (duration_s / 60), "spurious_at_s": spurious,
    }


# --------------------------------------------------------------------------- report

def mark(ok: bool | None) -> str:
    return "—" if ok is None else ("PASS" if ok else "MISS")


def pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def table(rows: list[dict]) -> str:
    head = ("| window s | change hops | compute median | compute p95 | latency median | missed turns "
            "| accuracy | settled acc. | unknown | spurious (per min) |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        lat = r["latency_median_s"]
        lines.append(
            f"| {r['window_s']:g} | {r['change_hops']} "
            f"| {pct(r['compute_share_median'])} {mark(r['compute_share_median'] <= GOAL_COMPUTE_SHARE)} "
            f"| {pct(r['compute_share_p95'])} {mark(r['compute_share_p95'] <= GOAL_COMPUTE_SHARE)} "
            f"| {'—' if lat is None else f'{lat:.2f} s'} {mark(None if lat is None else lat <= GOAL_LATENCY_S)} "
            f"| {r['turns_missed']}/{r['turns_changed']} "
            f"| {pct(r['accuracy'])} {mark(r['accuracy'] >= GOAL_ACCURACY)} "
            f"| {pct(r['accuracy_settled'])} | {pct(r['unknown_share'])} "
            f"| {r['spurious_changes']} ({r['spurious_per_min']:.1f}) |")
    return "\n".join(lines)


def goals_met(r: dict) -> int:
    lat = r["latency_median_s"]
    return sum([r["compute_share_median"] <= GOAL_COMPUTE_SHARE, r["compute_share_p95"] <= GOAL_COMPUTE_SHARE,
                lat is not None and lat <= GOAL_LATENCY_S, r["accuracy"] >= GOAL_ACCURACY])


def compare_change_hops(rows: list[dict]) -> str | None:
    """Which change_hops does better at the default window (goals met, then accuracy, then spurious)."""
    at = [r for r in rows if abs(r["window_s"] - DEFAULT_WINDOW_S) < 1e-9] or rows
    if len({r["change_hops"] for r in at}) < 2:
        return None
    best = max(at, key=lambda r: (goals_met(r), r["accuracy"], -r["spurious_changes"]))
    parts = [f"change_hops={r['change_hops']}: {goals_met(r)}/4 goals, latency {r['latency_median_s']:.2f} s, "
             f"accuracy {pct(r['accuracy'])}, {r['spurious_changes']} spurious" for r in at]
    return f"at window {at[0]['window_s']:g} s: " + "; ".join(parts) + f" -> better: change_hops={best['change_hops']}"


# --------------------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(message)s")
    from src.data.audio import SAMPLE_RATE_HZ as SR
    from src.inference.params import StreamParams
    from src.inference.pipeline import GenderPipeline

    load_start = loadavg()
    run_dir = find_dev_run(args.run, args.runs_dir)
    cfg = stream_config(run_dir)
    pipe = GenderPipeline.from_run(run_dir, device="cpu", unknown_below=cfg.unknown_below)
    torch.set_num_threads(args.threads)
    pipe.p_male([np.zeros(SR, np.float32) + 0.01 * np.sin(np.arange(SR, dtype=np.float32))] * 3)  # warm-up

    wave, turns = build_conversation(test_utterances(run_dir), args.minutes, tuple(args.pause_s), args.seed,
                                     pipe.segmenter)
    duration_s = len(wave) / SR
    speakers = {(tn.gender, tn.speaker) for tn in turns}
    print(f"run {run_dir}\nconversation: {duration_s:.1f} s, {len(turns)} turns, "
          f"{sum(g == 'female' for g, _ in speakers)} female + {sum(g == 'male' for g, _ in speakers)} male "
          f"test-split speakers, pauses {args.pause_s[0]:g}-{args.pause_s[1]:g} s")
    if args.save_wav:
        import soundfile as sf

        sf.write(args.save_wav, wave, SR)

    base = {k: v for k, v in cfg.stream.items()}
    change_hops = args.change_hops or [int(base["change_hops"])]
    rows = []
    for window_s in args.windows:
        for ch in change_hops:
            params = StreamParams(**{**base, "window_s": window_s, "hop_s": args.hop_s, "change_hops": ch})
            t0, c0 = time.perf_counter(), time.process_time()
            events, compute_s, parts = run_stream(pipe, params, wave, args.threads)
            wall_s, cpu_s = time.perf_counter() - t0, time.process_time() - c0
            row = {"window_s": window_s, "change_hops": ch, "hop_s": args.hop_s, "wall_s": round(wall_s, 1),
                   "cpu_s": round(cpu_s, 1), **parts,
                   **measure(events, compute_s, turns, args.hop_s, duration_s)}
            rows.append(row)
            print(f"window {window_s:g} s, change_hops {ch}: {row['hops']} hops in {wall_s:.1f} s "
                  f"({cpu_s:.1f} CPU s, all threads); "
                  f"compute median {pct(row['compute_share_median'])}, p95 {pct(row['compute_share_p95'])} "
                  f"(VAD {row['vad_ms_per_block']:.1f} ms per 32 ms block = {pct(row['vad_share'])} of the audio; "
                  f"a decision {row['decision_ms_median']} ms); "
                  f"latency per turn (s) {row['latencies_s']}; accuracy {pct(row['accuracy'])} "
                  f"(settled {pct(row['accuracy_settled'])}); spurious changes at {row['spurious_at_s']}",
                  flush=True)

    env = {"python": platform.python_version(), "torch": torch.__version__, "threads": args.threads,
           "cpus": os.cpu_count(), "loadavg_start": load_start, "loadavg_end": loadavg()}
    print(f"\n{pipe.encoder.name} ({run_dir.name}), {args.threads} torch thread(s), hop {args.hop_s:g} s, "
          f"{CHUNK_SAMPLES}-sample chunks; "
          f"load average {env['loadavg_start']} -> {env['loadavg_end']} on {env['cpus']} CPUs. Goals: compute "
          f"<= {pct(GOAL_COMPUTE_SHARE)}, latency median <= {GOAL_LATENCY_S:g} s and accuracy >= "
          f"{pct(GOAL_ACCURACY)} (set for the default {DEFAULT_WINDOW_S:g} s window).\n")
    print(table(rows))
    verdict = compare_change_hops(rows)
    if verdict:
        print("\n" + verdict)
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(
            {"run": str(run_dir), "settings": {k: v for k, v in vars(args).items() if k != "json_path"},
             "stream_config": base, "env": env, "duration_s": duration_s, "turns": [asdict(t) for t in turns],
             "results": rows, "change_hops_verdict": verdict}, indent=2, default=str))
        print(f"\nsaved {args.json_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
