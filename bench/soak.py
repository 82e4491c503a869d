"""The soak and the slow-body case of ``bench/serve.py``: memory under a long mixed load, and
uploads whose body never completes.

* soak: ``--soak-clients`` client threads send, for ``--soak-s`` seconds or ``--soak-requests``
  requests (whichever comes first), a mix of ``POST /v1/classify`` uploads (every third with
  ``timeline=true``) and, every ``--soak-stream-every``-th request, a WebSocket stream of
  ``--soak-stream-s`` seconds of real speech. Every ``--soak-sample-every`` requests the RSS of
  the server process and of its model worker processes is read from ``/proc`` (Linux). Printed:
  a table of the curve, the slope over the second half (MB per 100 requests, least squares), and
  a PNG of the curve in ``--out-dir`` (not part of the repository).
* slow body: ``--slow-n`` raw connections send the headers and half the body of an upload, then
  stall; one more sends a byte every second (never stalling long enough for the idle timeout, so
  only the total timeout stops it). Meanwhile normal uploads go on. Reported: the status each
  stalled connection gets and when, the normal uploads answered meanwhile and their latency, and
  ``/healthz``'s ``timed_out`` before and after.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import httpx
import numpy as np

SAMPLE_RATE_HZ = 16_000


# --------------------------------------------------------------------------- memory

def _children(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if int((d / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(d.name))
            except (OSError, ValueError, IndexError):
                continue
    return out


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def rss_mb(pid: int) -> tuple[float, float]:
    """RSS of the server process and the sum over its descendants (the model workers), MB."""
    todo, kids = _children(pid), []
    while todo:
        p = todo.pop()
        kids.append(p)
        todo += _children(p)
    return _rss_mb(pid), sum(_rss_mb(p) for p in kids)


# --------------------------------------------------------------------------- soak

def _stream(url: str, wave: np.ndarray, frame_s: float = 0.1) -> str:
    from websockets.sync.client import connect

    pcm = (np.clip(wave, -1, 1) * 32767).astype("<i2").tobytes()
    frame = int(frame_s * SAMPLE_RATE_HZ) * 2
    ws_url = url.replace("http://", "ws://") + f"/v1/stream?rate={SAMPLE_RATE_HZ}&dtype=int16"
    with connect(ws_url, max_size=None, open_timeout=60) as ws:
        if json.loads(ws.recv(timeout=60))["type"] != "ready":
            raise RuntimeError("stream: no ready message")

        def send() -> None:
            for i in range(0, len(pcm), frame):
                ws.send(pcm[i:i + frame])
            ws.send(b"")

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        while True:
            msg = json.loads(ws.recv(timeout=300))
            if msg["type"] == "end":
                sender.join()
                return msg["label"]
            if msg["type"] != "event":
                raise RuntimeError(f"stream: {msg}")


def soak(url: str, pid: int, bodies: list[bytes], stream_wave: np.ndarray, duration_s: float, max_requests: int,
         clients: int, stream_every: int, sample_every: int) -> dict:
    """Mixed uploads and streams from ``clients`` threads; the server's RSS every ``sample_every`` requests."""
    lock = threading.Lock()
    state = {"requests": 0, "uploads": 0, "streams": 0, "errors": 0, "next_sample": 0}
    samples: list[dict] = []
    t0 = time.perf_counter()
    stop = t0 + duration_s

    def sample() -> None:
        server, workers = rss_mb(pid)
        samples.append({"t_s": round(time.perf_counter() - t0, 1), "requests": state["requests"],
                        "uploads": state["uploads"], "streams": state["streams"],
                        "server_mb": round(server, 1), "workers_mb": round(workers, 1),
                        "total_mb": round(server + workers, 1)})

    sample()

    def client(k: int) -> None:
        http = httpx.Client(timeout=300)
        while True:
            with lock:
                if state["requests"] >= max_requests or time.perf_counter() >= stop:
                    return
                i = state["requests"]
                state["requests"] += 1
            try:
                if stream_every and i % stream_every == stream_every - 1:
                    _stream(url, stream_wave)
                    key = "streams"
                else:
                    r = http.post(f"{url}/v1/classify", params={"timeline": str(i % 3 == 0).lower()},
                                  files={"file": (f"soak{i}.wav", bodies[i % len(bodies)], "audio/wav")})
                    r.raise_for_status()
                    key = "uploads"
            except Exception:  # noqa: BLE001 (counted and reported)
                key = "errors"
            with lock:
                state[key] += 1
                if state["requests"] >= state["next_sample"]:
                    state["next_sample"] = state["requests"] + sample_every
                    sample()

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sample()
    wall = time.perf_counter() - t0
    x = np.array([s["requests"] for s in samples], float)
    half = x >= x[-1] / 2
    slopes = {}
    for key in ("server_mb", "workers_mb", "total_mb"):
        y = np.array([s[key] for s in samples])
        slopes[key] = float(np.polyfit(x[half], y[half], 1)[0] * 100) if half.sum() >= 3 else float("nan")
    return {"wall_s": round(wall, 1), "requests": state["requests"], "uploads": state["uploads"],
            "streams": state["streams"], "errors": state["errors"], "samples": samples,
            "slope_mb_per_100_requests_second_half": {k: round(v, 2) for k, v in slopes.items()},
            "growth_mb": {k: round(samples[-1][k] - samples[0][k], 1) for k in ("server_mb", "workers_mb", "total_mb")}}


def plot_soak(r: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = r["samples"]
    x = [p["requests"] for p in s]
    fig, ax = plt.subplots(figsize=(7, 4))
    for key, label in (("total_mb", "server + model workers"), ("server_mb", "server process"),
                       ("workers_mb", "model workers")):
        ax.plot(x, [p[key] for p in s], marker=".", label=label)
    ax.set_xlabel("requests (uploads and streams)")
    ax.set_ylabel("RSS (MB)")
    ax.set_title(f"bench/serve.py soak: {r['uploads']} uploads, {r['streams']} streams in {r['wall_s']:.0f} s")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def soak_table(r: dict, rows: int = 12) -> str:
    s = r["samples"]
    idx = sorted(set(np.linspace(0, len(s) - 1, min(rows, len(s))).round().astype(int)))
    out = ["| t (s) | requests | uploads | streams | server RSS (MB) | model workers RSS (MB) | total (MB) |",
           "|---:|---:|---:|---:|---:|---:|---:|"]
    for i in idx:
        p = s[i]
        out.append(f"| {p['t_s']:.0f} | {p['requests']} | {p['uploads']} | {p['streams']} | {p['server_mb']:.0f} | "
                   f"{p['workers_mb']:.0f} | {p['total_mb']:.0f} |")
    sl, g = r["slope_mb_per_100_requests_second_half"], r["growth_mb"]
    out.append(f"\nslope over the second half, MB per 100 requests: server {sl['server_mb']:+.2f}, model workers "
               f"{sl['workers_mb']:+.2f}, total {sl['total_mb']:+.2f}; growth first -> last sample: server "
               f"{g['server_mb']:+.0f} MB, workers {g['workers_mb']:+.0f} MB, total {g['total_mb']:+.0f} MB; "
               f"{r['errors']} errors")
    return "\n".join(out)


# --------------------------------------------------------------------------- slow body

def _stalled_upload(host: str, port: int, body_bytes: int, trickle: bool, out: dict) -> None:
    """Headers and half the body, then nothing (or, with ``trickle``, one byte a second); records the answer."""
    boundary = "soakboundary"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"slow.wav\"\r\n"
            f"Content-Type: audio/wav\r\n\r\n").encode()
    length = len(head) + body_bytes + len(f"\r\n--{boundary}--\r\n")
    s = socket.create_connection((host, port), timeout=300)
    t0 = time.perf_counter()
    try:
        s.sendall((f"POST /v1/classify HTTP/1.1\r\nHost: {host}:{port}\r\n"
                   f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
                   f"Content-Length: {length}\r\n\r\n").encode() + head + b"\0" * (body_bytes // 2))
        s.settimeout(1.0 if trickle else 300)
        data = b""
        while True:
            try:
                chunk = s.recv(65536)
            except TimeoutError:
                s.sendall(b"\0")  # trickle: one byte a second
                continue
            except OSError:
                break
            if not chunk:
                break
            data += chunk
            if b"\r\n\r\n" in data and b"}" in data:
                break
        out["status"] = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/") else None
        out["answer"] = data.split(b"\r\n\r\n", 1)[-1][:200].decode(errors="replace")
        out["after_s"] = round(time.perf_counter() - t0, 2)
        try:
            s.settimeout(2)
            out["closed"] = s.recv(1) == b""
        except OSError:
            out["closed"] = False
    finally:
        s.close()


def slow_body(url: str, bodies: list[bytes], n_stalled: int, idle_timeout_s: float, total_timeout_s: float) -> dict:
    """``n_stalled`` stalled uploads and one trickling one, with normal uploads meanwhile."""
    host, port = url.removeprefix("http://").split(":")
    before = httpx.get(f"{url}/healthz", timeout=30).json()["uploads"]
    results = [{"kind": "stalled"} for _ in range(n_stalled)] + [{"kind": "trickle (1 byte/s)"}]
    threads = [threading.Thread(target=_stalled_upload, args=(host, int(port), 200_000, r["kind"] != "stalled", r))
               for r in results]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    normal, lat = 0, []
    http = httpx.Client(timeout=120)
    while any(t.is_alive() for t in threads) and time.perf_counter() - t0 < total_timeout_s + 60:
        t1 = time.perf_counter()
        r = http.post(f"{url}/v1/classify", files={"file": ("ok.wav", bodies[normal % len(bodies)], "audio/wav")})
        if r.status_code == 200:
            normal += 1
            lat.append(time.perf_counter() - t1)
        time.sleep(0.2)
    for t in threads:
        t.join(timeout=5)
    after = httpx.get(f"{url}/healthz", timeout=30).json()["uploads"]
    return {"idle_timeout_s": idle_timeout_s, "total_timeout_s": total_timeout_s, "connections": results,
            "normal_uploads_meanwhile": normal,
            "normal_p50_ms": round(float(np.median(lat)) * 1000, 1) if lat else None,
            "normal_max_ms": round(max(lat) * 1000, 1) if lat else None,
            "healthz_timed_out_before": before["timed_out"], "healthz_timed_out_after": after["timed_out"],
            "healthz_active_after": after["active"]}


def slow_table(r: dict) -> str:
    out = [(f"slow bodies (server upload_idle_timeout_s={r['idle_timeout_s']:g}, upload_timeout_s="
            f"{r['total_timeout_s']:g}):"), "| connection | answer | after (s) | connection closed |",
           "|---|---|---:|---|"]
    for c in r["connections"]:
        ans = c.get("answer", "")
        err = json.loads(ans).get("error", "") if ans.startswith("{") and ans.endswith("}") else ""
        out.append(f"| {c['kind']} | {c.get('status')} {err} | {c.get('after_s')} | {c.get('closed')} |")
    out.append(f"\nmeanwhile {r['normal_uploads_meanwhile']} normal uploads answered 200 (p50 {r['normal_p50_ms']} ms, "
               f"max {r['normal_max_ms']} ms); /healthz timed_out {r['healthz_timed_out_before']} -> "
               f"{r['healthz_timed_out_after']}, active uploads after: {r['healthz_active_after']}")
    return "\n".join(out)
