#!/usr/bin/env python
"""Benchmark of the HTTP service (``python -m src.serve``) on real speech.

    python bench/serve.py                                     # newest resemblyzer run, concurrency 1 4 8
    python bench/serve.py --run runs/resemblyzer-... --requests 60 --json serve.json
    python bench/serve.py --data ../shared/data/dev --concurrency 1 2 4 8 16
    python bench/serve.py --run models/default --sections soak,slow --soak-s 600   # memory over 10 minutes

A real uvicorn server (``python -m src.serve run=<run> port=<free>``, ``--threads`` torch
threads) is started on a free loopback port and stopped at the end. Two measurements:

* uploads: ``POST /v1/classify`` of 3-second real clips (the first 3 s of the manifest's
  clips of at least 3 s, 16-bit 16 kHz WAV, about 96 kB each, cycled), ``--requests`` per
  concurrency level, each client thread with its own keep-alive ``httpx.Client``; after two
  warm-up requests. Figures: uploads per second (requests / wall time of the level), and
  the p50 and p95 latency of one request (send to the whole JSON answer). Every answer must
  be 200.
* stream: one WebSocket (``/v1/stream?rate=16000&dtype=int16``) fed a real recording (the
  clips joined, ``--stream-s`` seconds) in 0.1 s frames as fast as the socket takes them (a
  sender thread), then the end frame; events per second and audio seconds per wall second
  from the first frame to the ``end`` message.

* soak and slow bodies (``--sections soak,slow``; ``bench/soak.py``): a server (the last
  ``--model-workers``, with ``upload_idle_timeout_s`` / ``upload_timeout_s`` set to
  ``--slow-idle-s`` / ``--slow-total-s``) under mixed uploads and streams for ``--soak-s``
  seconds or ``--soak-requests`` requests, its RSS (and its model workers') sampled every
  ``--soak-sample-every`` requests: a table, the slope over the second half and a PNG in
  ``--out-dir``; then uploads whose body stalls, which must get 408 while normal uploads are
  still answered.

The machine's load average at start and end is printed: on a shared machine the figures are
pessimistic. Timings use ``time.perf_counter``.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO_DIR = Path(__file__).resolve().parent.parent
if str(REPO_DIR) not in sys.path:
    sys.path.insert(0, str(REPO_DIR))

import httpx  # noqa: E402
import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402

from bench.soak import slow_table, soak_table  # noqa: E402
from src.data.audio import SAMPLE_RATE_HZ, load_audio  # noqa: E402
from src.inference.run_folder import RunFolder  # noqa: E402

CLIP_S = 3.0
FRAME_S = 0.1
START_TIMEOUT_S = 300


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="Prints a markdown table; --json saves every figure.")
    p.add_argument("--run", default="latest:resemblyzer",
                   help="a run folder, latest or latest:<encoder> (default: latest:resemblyzer)")
    p.add_argument("--runs-dir", default=str(REPO_DIR / "runs"), help="where latest looks (default: runs/)")
    p.add_argument("--data", default=str(REPO_DIR / "data" / "sample"),
                   help="a folder with manifest.csv of real clips (default: data/sample; or ../shared/data/dev)")
    p.add_argument("--clips", type=int, default=16, help="distinct 3 s clips to cycle through (default: 16)")
    p.add_argument("--requests", type=int, default=40, help="uploads per concurrency level (default: 40)")
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 8], help="client threads (default: 1 4 8)")
    p.add_argument("--stream-s", type=float, default=60.0, help="seconds of audio on the WebSocket (default: 60)")
    p.add_argument("--model-workers", type=int, nargs="+", default=[1, 2],
                   help="serve with each of these model_workers in turn, side by side (default: 1 2)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads in the server (default: 1, as conf/serve.yaml)")
    p.add_argument("--sections", default="uploads,soak,slow",
                   help="comma-separated: uploads (and the stream), soak, slow (default: uploads,soak,slow)")
    p.add_argument("--soak-s", type=float, default=180.0, help="soak: at most this many seconds (default: 180)")
    p.add_argument("--soak-requests", type=int, default=2000, help="soak: at most this many requests (default: 2000)")
    p.add_argument("--soak-clients", type=int, default=4, help="soak: client threads (default: 4)")
    p.add_argument("--soak-stream-every", type=int, default=7,
                   help="soak: every Nth request is a WebSocket stream (default: 7; 0: none)")
    p.add_argument("--soak-stream-s", type=float, default=10.0, help="soak: seconds of audio per stream (default: 10)")
    p.add_argument("--soak-sample-every", type=int, default=25, help="soak: RSS every N requests (default: 25)")
    p.add_argument("--slow-n", type=int, default=4, help="slow: stalled uploads (plus one trickling) (default: 4)")
    p.add_argument("--slow-idle-s", type=float, default=5.0,
                   help="slow: the server's upload_idle_timeout_s for soak and slow (default: 5)")
    p.add_argument("--slow-total-s", type=float, default=15.0,
                   help="slow: the server's upload_timeout_s for soak and slow (default: 15)")
    p.add_argument("--out-dir", default=str(REPO_DIR / "outputs" / "bench-serve"),
                   help="where the soak's PNG and JSON go (default: outputs/bench-serve, not in git)")
    p.add_argument("--json", metavar="PATH", help="write the figures as JSON here")
    return p.parse_args(argv)


def real_clips(data_dir: Path, n: int) -> list[np.ndarray]:
    """The first 3 s of the first ``n`` clips (manifest order) that last at least 3 s."""
    out = []
    with open(data_dir / "manifest.csv", newline="", encoding="utf-8-sig") as f:
        for row in csv.DictReader(f):
            path = data_dir / row["path"]
            if sf.info(str(path)).duration < CLIP_S:
                continue
            out.append(load_audio(path)[:int(CLIP_S * SAMPLE_RATE_HZ)])
            if len(out) == n:
                break
    if not out:
        raise SystemExit(f"no clip of {CLIP_S:g} s or more in {data_dir}/manifest.csv")
    return out


def wav_bytes(wave: np.ndarray) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, wave, SAMPLE_RATE_HZ, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(run_dir: Path, threads: int, log_dir: Path, model_workers: int | None = None,
                 extra: tuple[str, ...] = ()) -> tuple[subprocess.Popen, str]:
    port = free_port()
    log = open(log_dir / "serve.log", "w")
    more = ([f"model_workers={model_workers}"] if model_workers else []) + list(extra)
    proc = subprocess.Popen([sys.executable, "-m", "src.serve", f"run={run_dir}", "host=127.0.0.1", f"port={port}",
                             f"num_threads={threads}", "log_level=warning", f"hydra.run.dir={log_dir}", *more],
                            cwd=REPO_DIR, stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONWARNINGS": "ignore"})
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited:\n{(log_dir / 'serve.log').read_text()[-3000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            raise SystemExit(f"the server did not answer in {START_TIMEOUT_S} s")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        time.sleep(0.3)


def stop_server(proc: subprocess.Popen) -> None:
    """Terminate the server (SIGTERM: a clean shutdown), killing it after 20 s."""
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


def process_cpu_s(pid: int | None) -> float:
    """User + system CPU seconds so far of a process and its live descendants (the model worker
    processes; Linux ``/proc``; 0 elsewhere)."""
    stats: dict[int, tuple[int, float]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                f = (d / "stat").read_text().rsplit(")", 1)[1].split()
                stats[int(d.name)] = (int(f[1]), (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK"))
            except (OSError, ValueError, IndexError):
                continue
    if pid not in stats:
        return 0.0
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        total += stats[p][1]
        todo += [c for c, (parent, _) in stats.items() if parent == p]
    return total


def upload_level(url: str, bodies: list[bytes], concurrency: int, requests: int, pid: int | None = None) -> dict:
    """``requests`` uploads from ``concurrency`` threads; uploads/s and latency percentiles."""
    local = threading.local()

    def one(i: int) -> float:
        if not hasattr(local, "client"):
            local.client = httpx.Client(timeout=300)
        t0 = time.perf_counter()
        r = local.client.post(f"{url}/v1/classify", files={"file": (f"clip{i}.wav", bodies[i % len(bodies)],
                                                                    "audio/wav")})
        r.json()
        dt = time.perf_counter() - t0
        if r.status_code != 200:
            raise RuntimeError(f"upload {i}: {r.status_code} {r.text}")
        return dt

    t0, cpu0 = time.perf_counter(), process_cpu_s(pid)
    with ThreadPoolExecutor(concurrency) as pool:
        lat = list(pool.map(one, range(requests)))
    wall, cpu = time.perf_counter() - t0, process_cpu_s(pid) - cpu0
    q = np.percentile(np.array(lat) * 1000, [50, 95])
    return {"concurrency": concurrency, "requests": requests, "wall_s": round(wall, 3),
            "server_cpu_ms_per_upload": round(cpu / requests * 1000, 1), "server_cores_busy": round(cpu / wall, 2),
            "uploads_per_s": round(requests / wall, 2), "p50_ms": round(float(q[0]), 1),
            "p95_ms": round(float(q[1]), 1), "mean_ms": round(statistics.mean(lat) * 1000, 1)}


def stream_run(url: str, wave: np.ndarray) -> dict:
    """One WebSocket fed ``wave`` (int16, 16 kHz, 0.1 s frames) as fast as possible."""
    from websockets.sync.client import connect

    pcm = (np.clip(wave, -1, 1) * 32767).astype("<i2").tobytes()
    frame = int(FRAME_S * SAMPLE_RATE_HZ) * 2
    ws_url = url.replace("http://", "ws://") + f"/v1/stream?rate={SAMPLE_RATE_HZ}&dtype=int16"
    with connect(ws_url, max_size=None, open_timeout=60) as ws:
        ready = json.loads(ws.recv(timeout=60))
        assert ready["type"] == "ready", ready

        def send() -> None:
            for i in range(0, len(pcm), frame):
                ws.send(pcm[i:i + frame])
            ws.send(b"")

        t0 = time.perf_counter()
        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        events, first_event = 0, None
        while True:
            msg = json.loads(ws.recv(timeout=300))
            if msg["type"] == "event":
                events += 1
                first_event = first_event or time.perf_counter() - t0
            elif msg["type"] == "end":
                break
            else:
                raise RuntimeError(f"stream: {msg}")
        wall = time.perf_counter() - t0
        sender.join()
    audio_s = len(wave) / SAMPLE_RATE_HZ
    return {"audio_s": round(audio_s, 2), "events": events, "wall_s": round(wall, 3),
            "events_per_s": round(events / wall, 1), "x_realtime": round(audio_s / wall, 1),
            "first_event_s": round(first_event or float("nan"), 3), "final_label": msg["label"]}


GOAL_CLIENTS_RATIO = 1.8  # uploads/s at the most clients over one client's, at least


def markdown(results: dict) -> str:
    rows = ["| path | model_workers | concurrency | requests | uploads/s | p50 latency (ms) | p95 latency (ms) "
            "| server cores busy | server CPU ms per upload |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    ratios = []
    for workers, levels in results["by_model_workers"].items():
        for r in levels:
            rows.append(f"| `POST /v1/classify`, 3 s WAV | {workers} | {r['concurrency']} | {r['requests']} | "
                        f"{r['uploads_per_s']:.1f} | {r['p50_ms']:.0f} | {r['p95_ms']:.0f} | "
                        f"{r['server_cores_busy']:.2f} | {r['server_cpu_ms_per_upload']:.0f} |")
        one = next((r for r in levels if r["concurrency"] == 1), None)
        most = max(levels, key=lambda r: r["concurrency"])
        if one and most is not one:
            ratio = most["uploads_per_s"] / one["uploads_per_s"]
            ratios.append(f"| model_workers={workers}: uploads/s at {most['concurrency']} clients / 1 client | "
                          f"{ratio:.2f}x (p95 {most['p95_ms']:.0f} ms vs {one['p95_ms']:.0f} ms) | "
                          f">= {GOAL_CLIENTS_RATIO:g}x | {'PASS' if ratio >= GOAL_CLIENTS_RATIO else 'MISS'} |")
            if one["server_cpu_ms_per_upload"] and most["server_cpu_ms_per_upload"]:
                per_upload = one["server_cpu_ms_per_upload"] / most["server_cpu_ms_per_upload"]
                idle = min(workers, results["cpus"]) * per_upload
                ratios.append(f"| same, from server CPU ms per upload, if {min(workers, results['cpus'])} idle "
                              f"core(s) were kept busy (and one client kept one busy) | {idle:.2f}x | | |")
    if ratios:
        rows += ["", "| metric | measured | goal | result |", "|---|---|---|---|", *ratios]
    s = results["stream"]
    rows += ["", "| path | audio (s) | events | events/s | audio s per wall s |", "|---|---:|---:|---:|---:|",
             f"| `WebSocket /v1/stream`, int16 16 kHz, 0.1 s frames, as fast as possible | {s['audio_s']:.0f} | "
             f"{s['events']} | {s['events_per_s']:.1f} | {s['x_realtime']:.1f}x |"]
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    run_dir = RunFolder.resolve(args.run, args.runs_dir).dir
    clips = real_clips(Path(args.data), args.clips)
    bodies = [wav_bytes(c) for c in clips]
    joined = np.concatenate(clips * (int(args.stream_s / (CLIP_S * len(clips))) + 1))[
        :int(args.stream_s * SAMPLE_RATE_HZ)]
    load_start = os.getloadavg()
    print(f"run {run_dir}; {len(bodies)} real {CLIP_S:g} s clips from {args.data}; server torch threads "
          f"{args.threads}; {os.cpu_count()} CPUs; load average {load_start[0]:.2f}", flush=True)
    results: dict = {"run": str(run_dir), "data": args.data, "server_threads": args.threads,
                     "cpus": os.cpu_count(), "machine": platform.machine(), "python": platform.python_version(),
                     "load_avg_start": [round(x, 2) for x in load_start], "uploads": []}
    results["by_model_workers"] = {}
    sections = set(args.sections.split(","))
    if not sections <= {"uploads", "soak", "slow"}:
        raise SystemExit(f"--sections: unknown {sorted(sections - {'uploads', 'soak', 'slow'})}")
    for workers in (args.model_workers if "uploads" in sections else []):
        print(f"model_workers={workers}", flush=True)
        with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
            proc, url = start_server(run_dir, args.threads, Path(tmp), workers)
            try:
                upload_level(url, bodies, 1, 2)  # warm-up
                levels = []
                for c in args.concurrency:
                    r = upload_level(url, bodies, c, max(args.requests, c), proc.pid)
                    print(f"  concurrency {c}: {r['uploads_per_s']} uploads/s, p50 {r['p50_ms']} ms, "
                          f"p95 {r['p95_ms']} ms; server {r['server_cores_busy']} cores busy, "
                          f"{r['server_cpu_ms_per_upload']} CPU ms per upload", flush=True)
                    levels.append(r)
                if workers == args.model_workers[-1]:
                    results["stream"] = stream_run(url, joined)
                    print(f"  stream: {results['stream']['events']} events in {results['stream']['wall_s']} s",
                          flush=True)
            finally:
                stop_server(proc)
        results["by_model_workers"][workers] = levels
    if "uploads" in sections:
        results["uploads"] = results["by_model_workers"][args.model_workers[-1]]
    if sections & {"soak", "slow"}:
        soak_and_slow(args, run_dir, bodies, joined, sections, results)
    results["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    print(f"load average at the end {results['load_avg_end'][0]:.2f}\n")
    if "uploads" in sections:
        print(markdown(results))
    if "soak" in results:
        print(f"\nsoak: model_workers={results['soak']['model_workers']}, {results['soak']['clients']} clients, "
              f"{results['soak']['requests']} requests in {results['soak']['wall_s']:.0f} s; plot: "
              f"{results['soak']['plot']}\n" + soak_table(results["soak"]))
    if "slow" in results:
        print("\n" + slow_table(results["slow"]))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return results


def soak_and_slow(args, run_dir: Path, bodies: list[bytes], joined: np.ndarray, sections: set[str],
                  results: dict) -> None:
    """One server for both: the soak's RSS curve, then the stalled bodies."""
    from bench.soak import plot_soak, slow_body, soak

    workers = args.model_workers[-1]
    extra = (f"upload_idle_timeout_s={args.slow_idle_s:g}", f"upload_timeout_s={args.slow_total_s:g}")
    stream_wave = joined[:int(args.soak_stream_s * SAMPLE_RATE_HZ)]
    out_dir = Path(args.out_dir)
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        proc, url = start_server(run_dir, args.threads, Path(tmp), workers, extra)
        try:
            upload_level(url, bodies, 1, 2)  # warm-up
            if "soak" in sections:
                print(f"soak: model_workers={workers}, up to {args.soak_s:g} s or {args.soak_requests} requests",
                      flush=True)
                r = soak(url, proc.pid, bodies, stream_wave, args.soak_s, args.soak_requests, args.soak_clients,
                         args.soak_stream_every, args.soak_sample_every)
                r.update({"model_workers": workers, "clients": args.soak_clients,
                          "plot": str(plot_soak(r, out_dir / "soak-rss.png"))})
                (out_dir / "soak.json").write_text(json.dumps(r, indent=2))
                results["soak"] = r
            if "slow" in sections:
                print(f"slow bodies: {args.slow_n} stalled + 1 trickling", flush=True)
                results["slow"] = slow_body(url, bodies, args.slow_n, args.slow_idle_s, args.slow_total_s)
        finally:
            stop_server(proc)


if __name__ == "__main__":
    main()
