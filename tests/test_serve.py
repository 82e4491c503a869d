"""The HTTP service (``src/serving``, ``python -m src.serve``) on real speech.

A classifier is trained once per session on the sample's real Resemblyzer embeddings
(the extraction is shared with ``test_train.py``) into ``tmp_path``; every request goes
through the real pipeline (Silero VAD, Resemblyzer, the trained head). The clips are
those of adult speakers the run is sure about, so a label can be asserted. The API is
called in process through FastAPI's ``TestClient``; the load test and the verb use a
real uvicorn server started with ``python -m src.serve`` on a free loopback port.
``test_browser.py`` imports the helpers below.
"""

from __future__ import annotations

import gc
import io
import json
import os
import re
import socket
import subprocess
import sys
import time
import weakref
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from fastapi.testclient import TestClient
from hydra import compose, initialize_config_module
from test_train import sample_embeddings, train_cfg  # the sample's embeddings, extracted once per session

from src.data.audio import SAMPLE_RATE_HZ, load_audio, resample
from src.inference.pipeline import GenderPipeline
from src.serve import is_loopback, serve_settings
from src.serving import ServeSettings, create_app
from src.serving.service import Service
from src.train import run_train

pytestmark = pytest.mark.usefixtures("one_torch_thread")

REPO_DIR = Path(__file__).resolve().parents[1]
SR = SAMPLE_RATE_HZ
CHUNK_S = 0.1
MAX_UPLOAD_MB = 2.0       # the in-process app's limits, small enough to test cheaply
MAX_DURATION_S = 20.0
SERVER_START_TIMEOUT_S = 180
LOAD_REQUESTS = 20


# ------------------------------------------------------------------------------ the run and the speech

_SESSION: dict[str, Path] = {}


def serve_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real run on the sample's real embeddings, trained once per session (30 epochs)."""
    if "run" not in _SESSION:
        run_dir = tmp_path_factory.mktemp("serve-run") / "resemblyzer-2026-01-01_00-00-00"
        run_train(train_cfg(sample_embeddings(tmp_path_factory), "num_threads=1"), run_dir)
        _SESSION["run"] = run_dir
    return _SESSION["run"]


@dataclass
class Speaker:
    name: str
    gender: str
    paths: list[Path]


def sure_speakers(run_dir: Path) -> dict[str, Speaker]:
    """The adult speaker of each gender whose every clip the run got right most surely."""
    df = pd.read_csv(run_dir / "predictions.csv", keep_default_na=False)
    df = df[df.corpus != "speechocean762"]
    df = df.assign(p_true=np.where(df.gender == "male", df.p_male, 1.0 - df.p_male))
    worst = df.groupby("speaker").p_true.min().sort_values(ascending=False)
    out: dict[str, Speaker] = {}
    for name, p in worst.items():
        rows = df[df.speaker == name]
        gender = rows.gender.iloc[0]
        if p >= 0.8 and gender not in out:
            paths = [Path(x) if Path(x).is_absolute() else REPO_DIR / x for x in rows.path]
            out[gender] = Speaker(str(name), gender, paths)
    assert set(out) == {"female", "male"}, worst
    return out


def speaker_wave(speaker: Speaker, min_s: float = 5.0, max_s: float = 10.0) -> np.ndarray:
    """The speaker's clips joined (16 kHz mono) until ``min_s``, cut at ``max_s``."""
    parts, total = [], 0
    for p in speaker.paths * 3:
        w = load_audio(p)
        parts.append(w)
        total += len(w)
        if total >= min_s * SR:
            break
    return np.concatenate(parts)[:int(max_s * SR)]


def wav_bytes(wave: np.ndarray, rate: int = SR, subtype: str = "PCM_16") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, wave, rate, format="WAV", subtype=subtype)
    return buf.getvalue()


def int16_pcm(wave: np.ndarray) -> np.ndarray:
    return (np.clip(wave, -1.0, 1.0) * 32767).astype("<i2")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve_process(run_dir: Path, log_dir: Path, *overrides: str, fd_limit: int | None = None) -> Iterator[str]:
    """``python -m src.serve`` on a free loopback port (with at most ``fd_limit`` open files);
    yields its base URL once /healthz answers."""
    port = free_port()

    def limit_fds() -> None:
        if fd_limit is not None:
            import resource
            resource.setrlimit(resource.RLIMIT_NOFILE, (fd_limit, fd_limit))

    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / "serve.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "src.serve", f"run={run_dir}", "host=127.0.0.1",
                                 f"port={port}", "num_threads=1", "log_level=warning",
                                 f"hydra.run.dir={log_dir / 'hydra'}", *overrides],
                                cwd=REPO_DIR, stdout=log, stderr=subprocess.STDOUT,
                                env={**os.environ, "PYTHONWARNINGS": "ignore"}, preexec_fn=limit_fds)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while True:
            assert proc.poll() is None, f"the server exited:\n{log_path.read_text()[-4000:]}"
            assert time.monotonic() < deadline, f"no answer in {SERVER_START_TIMEOUT_S} s:\n{log_path.read_text()}"
            try:
                if httpx.get(f"{url}/healthz", timeout=2.0).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        yield url
    finally:
        stop_process(proc, 20)


def stop_process(proc: subprocess.Popen, timeout_s: float) -> None:
    """Ask a child process to stop; kill it if it has not within ``timeout_s``."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


_SERVER: dict[str, str] = {}


def shared_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """One real ``python -m src.serve`` per session (the load test and the browser test share it),
    stopped when the session ends."""
    if "url" not in _SERVER:
        server = serve_process(serve_run(tmp_path_factory), tmp_path_factory.mktemp("server"))
        _SERVER["url"] = server.__enter__()
        request.config.add_cleanup(lambda: server.__exit__(None, None, None))
    return _SERVER["url"]


# ----------------------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return serve_run(tmp_path_factory)


@pytest.fixture(scope="module")
def speakers(run_dir) -> dict[str, Speaker]:
    return sure_speakers(run_dir)


@pytest.fixture(scope="module")
def pipe(run_dir) -> GenderPipeline:
    return GenderPipeline.from_run(run_dir)


@pytest.fixture(scope="module")
def upload_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("serve-uploads")


@pytest.fixture(scope="module")
def client(pipe, upload_dir) -> Iterator[TestClient]:
    settings = ServeSettings(max_upload_mb=MAX_UPLOAD_MB, max_duration_s=MAX_DURATION_S, tmp_dir=str(upload_dir),
                             run_name="test-run")
    with TestClient(create_app(pipe, settings)) as c:
        yield c


@pytest.fixture(scope="module")
def clip_3s(speakers, tmp_path_factory) -> tuple[Path, str]:
    """Three seconds of a sure male speaker, as a 16-bit WAV."""
    path = tmp_path_factory.mktemp("clip3") / "male_3s.wav"
    path.write_bytes(wav_bytes(speaker_wave(speakers["male"], 3.0, 3.0)))
    return path, "male"


def healthy(client: TestClient) -> None:
    r = client.get("/healthz")
    assert r.status_code == 200 and r.json()["status"] == "ok", r.text


def assert_error(r: httpx.Response, status: int, error: str) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error", "detail"} and body["error"] == error and body["detail"], body


# ------------------------------------------------------------------------------------------- classify

def test_classify_a_real_flac(client, speakers, upload_dir):
    spk = speakers["male"]
    r = client.post("/v1/classify", params={"timeline": "false"},  # the timeline is on by default
                    files={"file": (spk.paths[0].name, spk.paths[0].read_bytes(), "audio/flac")})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["label"] == "male" and body["status"] == "ok"
    assert body["p_male"] >= 0.8 and body["p_female"] == pytest.approx(1.0 - body["p_male"], abs=1e-5)
    assert 0 < body["speech_s"] <= body["duration_s"] == pytest.approx(sf.info(str(spk.paths[0])).duration, abs=0.01)
    assert body["timeline"] == [] and body["speaking_time_s"] == {}
    assert body["filename"] == spk.paths[0].name and "path" not in body
    assert list(upload_dir.iterdir()) == [], "the upload's temp file is deleted"


def test_classify_a_wav_with_timeline(client, speakers):
    spk = speakers["female"]
    wave = speaker_wave(spk, 6.0, 8.0)
    stereo_44k = np.stack([resample(wave, SR, 44_100)] * 2, axis=1)
    r = client.post("/v1/classify?timeline=true", files={"file": ("talk.wav", wav_bytes(stereo_44k, 44_100),
                                                                  "audio/wav")})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["label"] == "female" and body["duration_s"] == pytest.approx(len(wave) / SR, abs=0.01)
    assert body["timeline"], body
    assert all(0 <= s["start_s"] < s["end_s"] <= body["duration_s"] for s in body["timeline"])
    assert max(body["speaking_time_s"], key=body["speaking_time_s"].get) == "female"
    assert sum(body["speaking_time_s"].values()) == pytest.approx(
        sum(s["speech_s"] for s in body["timeline"]), abs=0.01)  # speech only: a segment may span a short pause


def test_healthz_docs_openapi_and_page(client):
    h = client.get("/healthz").json()
    assert h["status"] == "ok" and h["classes"] == ["female", "male"] and h["encoder"] == "resemblyzer"
    assert h["run"] == "test-run" and h["limits"]["max_upload_mb"] == MAX_UPLOAD_MB
    spec = client.get("/openapi.json").json()
    body = spec["paths"]["/v1/classify"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert body["required"] == ["file"] and body["properties"]["file"]["format"] == "binary"
    assert {"200", "413", "415", "422"} <= set(spec["paths"]["/v1/classify"]["post"]["responses"])
    assert "/healthz" in spec["paths"]
    docs = client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    assets = re.findall(r'(?:src|href)=["\']([^"\']+\.(?:js|css))', docs.text)
    assert any(a.endswith("swagger-ui-bundle.js") for a in assets), docs.text  # offline: from the package, no CDN
    assert not [a for a in assets if "://" in a or a.startswith("//")], assets
    assert all(client.get(a).status_code == 200 for a in assets), assets
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'id="record"' in page.text and 'id="live-label"' in page.text and 'id="file-input"' in page.text
    for name in ("app.js", "pcm-worklet.js", "style.css"):
        assert client.get(f"/static/{name}").status_code == 200, name
    assert_error(client.get("/no-such-page"), 404, "not_found")


# ------------------------------------------------------------------------------------- bad requests

def multipart(parts: list[tuple[str, str | None, str | None, bytes]], boundary: str = "b0undary") -> tuple[bytes, dict]:
    """A multipart body by hand: (field name, filename, content type, data) per part."""
    out = b""
    for name, filename, ctype, data in parts:
        disp = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out += f"--{boundary}\r\nContent-Disposition: {disp}\r\n".encode()
        out += (f"Content-Type: {ctype}\r\n" if ctype else "").encode() + b"\r\n" + data + b"\r\n"
    return out + f"--{boundary}--\r\n".encode(), {"content-type": f"multipart/form-data; boundary={boundary}"}


@pytest.fixture(scope="module")
def bad_requests(speakers) -> dict[str, tuple[dict, int, str]]:
    """name -> (httpx request arguments, expected status, expected error code)."""
    flac = speakers["female"].paths[0].read_bytes()
    long_wave = np.tile(speaker_wave(speakers["female"], 5.0, 5.0), 5)  # 25 s of real speech, 0.8 MB
    big = np.tile(speaker_wave(speakers["female"], 5.0, 5.0), 10)      # 50 s, 1.6 MB: over 2 MiB as float32
    truncated_body, truncated_headers = multipart([("file", "x.flac", "audio/flac", flac)])
    return {
        "no_file_field": ({"files": {"audio": ("x.flac", flac, "audio/flac")}}, 422, "missing_file"),
        "form_without_file": ({"data": {"note": "hello"}, "files": {"other": ("x.txt", b"x", "text/plain")}},
                              422, "missing_file"),
        "not_multipart": ({"content": flac, "headers": {"content-type": "audio/flac"}}, 400, "bad_multipart"),
        "bad_multipart": ({"content": b"this is not multipart", "headers": {
            "content-type": "multipart/form-data; boundary=zzz"}}, 400, "bad_multipart"),
        "truncated_multipart": ({"content": truncated_body[:-30], "headers": truncated_headers}, 400,
                                "bad_multipart"),
        "text_plain": ({"files": {"file": ("notes.txt", b"hello, I am not audio", "text/plain")}}, 415,
                       "unsupported_media_type"),
        "empty_file": ({"files": {"file": ("empty.wav", b"", "audio/wav")}}, 400, "empty_file"),
        "corrupt_audio": ({"files": {"file": ("broken.flac", flac[:64] + os.urandom(4096), "audio/flac")}}, 422,
                          "unreadable_audio"),
        "not_audio_at_all": ({"files": {"file": ("x.wav", b"RIFF" + os.urandom(2000), "audio/wav")}}, 422,
                             "unreadable_audio"),
        "over_size": ({"files": {"file": ("big.wav", wav_bytes(big, subtype="FLOAT"), "audio/wav")}}, 413,
                      "too_large"),
        "over_long": ({"files": {"file": ("long.wav", wav_bytes(long_wave), "audio/wav")}}, 413, "too_long"),
        "bad_query": ({"params": {"timeline": "maybe"}, "files": {"file": ("x.flac", flac, "audio/flac")}}, 422,
                      "invalid_request"),
    }


@pytest.mark.parametrize("case", ["no_file_field", "form_without_file", "not_multipart", "bad_multipart",
                                  "truncated_multipart", "text_plain", "empty_file", "corrupt_audio",
                                  "not_audio_at_all", "over_size", "over_long", "bad_query"])
def test_bad_upload_is_a_4xx_json_error(client, bad_requests, upload_dir, case):
    kwargs, status, error = bad_requests[case]
    assert_error(client.post("/v1/classify", **kwargs), status, error)
    healthy(client)
    assert list(upload_dir.iterdir()) == []


def test_the_clients_file_name_is_never_a_path(client, speakers, upload_dir):
    name = "../../escape.flac"
    r = client.post("/v1/classify", files={"file": (name, speakers["male"].paths[0].read_bytes(), "audio/flac")})
    assert r.status_code == 200 and r.json()["filename"] == name and r.json()["label"] == "male"
    assert not (upload_dir.parent / "escape.flac").exists() and not (upload_dir.parent.parent / "escape.flac").exists()
    assert list(upload_dir.iterdir()) == []


def test_an_exception_in_a_request_is_a_500_and_the_service_goes_on(client, clip_3s, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(Service, "classify_file", broken)
    assert_error(client.post("/v1/classify", files={"file": ("a.wav", clip_3s[0].read_bytes(), "audio/wav")}),
                 500, "internal_error")
    monkeypatch.undo()
    healthy(client)
    upload = {"file": ("a.wav", clip_3s[0].read_bytes(), "audio/wav")}
    assert client.post("/v1/classify", files=upload).status_code == 200


def test_uploads_go_to_model_worker_processes(run_dir, pipe, clip_3s, tmp_path):
    """model_workers=2 with a pipeline factory: two worker processes, each with its own pipeline,
    answer uploads (also several at once) exactly as the pipeline does in process."""
    import functools

    settings = ServeSettings(model_workers=2, tmp_dir=str(tmp_path))
    data = clip_3s[0].read_bytes()
    with TestClient(create_app(functools.partial(GenderPipeline.from_run, run_dir), settings)) as c:
        workers = c.app.state.service.workers
        assert workers is not None and len(workers.pids()) == 2 and os.getpid() not in workers.pids()
        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(lambda i: c.post("/v1/classify", files={"file": (f"{i}.wav", data, "audio/wav")}),
                                    range(4)))
        assert [r.status_code for r in answers] == [200] * 4, answers[0].text
        pids = workers.pids()
    want = pipe.classify_wave(load_audio(clip_3s[0]))
    assert {r.json()["p_male"] for r in answers} == {want.p_male} and answers[0].json()["label"] == clip_3s[1]
    assert not any(Path(f"/proc/{pid}").exists() for pid in pids)  # the workers stop with the app


def wait_for(check, timeout_s: float, what: str, step_s: float = 0.05):
    """Poll ``check()`` until it returns something true; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if out := check():
            return out
        time.sleep(step_s)
    raise AssertionError(f"{what}: not within {timeout_s} s")


def test_a_killed_model_worker_is_replaced_and_uploads_go_on(run_dir, speakers, clip_3s, tmp_path):
    """The probe's case: kill -9 of a model worker. The request it held is retried on the other
    worker (200, right label); /healthz says degraded (1 of 2) until a new worker has loaded, then ok;
    uploads meanwhile are answered 200 or 503 with Retry-After, never 500. With every worker killed,
    an upload is a 503 with Retry-After until replacements load."""
    import functools
    import signal

    long_clip = wav_bytes(speaker_wave(speakers["male"], 40.0, 40.0))
    short = clip_3s[0].read_bytes()
    settings = ServeSettings(model_workers=2, tmp_dir=str(tmp_path), max_duration_s=60)
    with TestClient(create_app(functools.partial(GenderPipeline.from_run, run_dir), settings)) as c:
        workers = c.app.state.service.workers
        assert c.get("/healthz").json()["workers"] == {"alive": 2, "expected": 2, "restarts": 0}
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(c.post, "/v1/classify", files={"file": ("long.wav", long_clip, "audio/wav")})
            busy = wait_for(lambda: [w.process.pid for w in workers._slots if w.busy], 60, "a busy worker")
            os.kill(busy[0], signal.SIGKILL)
            answer = pending.result(timeout=120)
        assert answer.status_code == 200 and answer.json()["label"] == "male", answer.text  # retried once
        health = wait_for(lambda: (h := c.get("/healthz").json())["workers"]["restarts"] >= 1 and h, 10, "a restart")
        assert busy[0] not in workers.pids()
        statuses = []
        while (health := c.get("/healthz").json())["status"] != "ok":  # degraded while the new one loads
            assert health["status"] == "degraded" and health["workers"]["alive"] < 2, health
            r = c.post("/v1/classify", files={"file": ("a.wav", short, "audio/wav")})
            statuses.append(r.status_code)
            assert r.status_code == 200 or (r.status_code == 503 and int(r.headers["Retry-After"]) >= 1), r.text
            assert len(statuses) < 600, "the worker was not replaced"
        assert health["workers"]["alive"] == 2 and 200 in statuses + [200]
        for pid in workers.pids():  # every worker at once: nothing to retry on
            os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not any(w.alive() for w in workers._slots if w.ready) or None, 10, "the kills")
        r = c.post("/v1/classify", files={"file": ("a.wav", short, "audio/wav")})
        if r.status_code != 200:  # 200 only if a replacement loaded already
            assert_error(r, 503, "workers_unavailable")
            assert int(r.headers["Retry-After"]) >= 1
        wait_for(lambda: c.get("/healthz").json()["status"] == "ok", 300, "both workers back", 0.5)
        r = c.post("/v1/classify", files={"file": ("a.wav", short, "audio/wav")})
        assert r.status_code == 200 and r.json()["label"] == "male"
        assert c.get("/healthz").json()["workers"]["restarts"] >= 3
        pids = workers.pids()
    assert not any(Path(f"/proc/{pid}").exists() for pid in pids)


def test_a_loaded_pipeline_is_served_in_process(pipe, tmp_path):
    with TestClient(create_app(pipe, ServeSettings(model_workers=2, tmp_dir=str(tmp_path)))) as c:
        assert c.app.state.service.workers is None
        healthy(c)


# -------------------------------------------------------------------------------------------- stream

def stream_pcm(client: TestClient, pcm: bytes, rate: int, dtype: str, chunk_bytes: int) -> list[dict]:
    """Send ``pcm`` in chunks, then the empty end frame; every message up to ``end``."""
    with client.websocket_connect(f"/v1/stream?rate={rate}&dtype={dtype}") as ws:
        ready = ws.receive_json()
        assert ready["type"] == "ready" and ready["rate"] == rate, ready
        for i in range(0, len(pcm), chunk_bytes):
            ws.send_bytes(pcm[i:i + chunk_bytes])
        ws.send_bytes(b"")
        messages = []
        while not messages or messages[-1]["type"] not in ("end", "error"):
            messages.append(ws.receive_json())
        assert ws.receive()["code"] == 1000
    return messages


@pytest.mark.parametrize("rate,dtype", [(16_000, "int16"), (8_000, "int16"), (44_100, "float32")])
def test_stream_a_real_clip(client, speakers, rate, dtype):
    spk = speakers["male"] if rate != 8_000 else speakers["female"]
    wave = resample(speaker_wave(spk, 5.0, 7.0), SR, rate)
    pcm = int16_pcm(wave).tobytes() if dtype == "int16" else wave.astype("<f4").tobytes()
    chunk_bytes = int(CHUNK_S * rate) * (2 if dtype == "int16" else 4)
    messages = stream_pcm(client, pcm, rate, dtype, chunk_bytes)
    events, end = messages[:-1], messages[-1]
    assert end["type"] == "end", end
    assert all(e["type"] == "event" and set(e) == {"type", "t_s", "label", "p_male", "speech_s", "changed",
                                                   "p_label", "heard", "text", "quality"} for e in events)
    assert all(e["text"].split()[1] == e["label"].capitalize() for e in events)  # the held label, as stream prints
    duration_s = len(wave) / rate
    assert len(events) >= int(duration_s / 0.3) - 2  # one decision per 0.3 s hop
    assert [e["t_s"] for e in events] == sorted(e["t_s"] for e in events)
    assert events[-1]["t_s"] == pytest.approx(duration_s, abs=0.4)
    assert end["label"] == spk.gender and events[-1]["label"] == spk.gender
    changes = [e["label"] for e in events if e["changed"]]
    assert changes == [spk.gender], changes  # unknown -> the speaker's gender, once
    assert max(end["speaking_time_s"], key=end["speaking_time_s"].get) == spk.gender
    assert end["duration_s"] == pytest.approx(duration_s, abs=0.01)


GARBAGE = {
    "odd_int16_bytes": ("rate=16000&dtype=int16", b"\x01\x02\x03", "bad_frame"),
    "text_frame": ("rate=16000&dtype=int16", "hello", "text_frame"),
    "nan_float32": ("rate=16000&dtype=float32", np.full(1600, np.nan, "<f4").tobytes(), "bad_samples"),
    "int16_as_float32": ("rate=16000&dtype=float32", np.full(1600, 32000, "<i2").tobytes(), "bad_samples"),
    "oversized_frame": ("rate=16000&dtype=int16", bytes(2 * 2**20), "frame_too_large"),
    "bad_rate": ("rate=abc&dtype=int16", None, "bad_format"),
    "impossible_rate": ("rate=1000000&dtype=int16", None, "bad_format"),
    "bad_dtype": ("rate=16000&dtype=int24", None, "bad_format"),
}


@pytest.mark.parametrize("case", list(GARBAGE))
def test_garbage_on_the_socket_is_an_error_then_a_close(client, speakers, case):
    query, frame, error = GARBAGE[case]
    with client.websocket_connect(f"/v1/stream?{query}") as ws:
        if frame is not None:
            assert ws.receive_json()["type"] == "ready"
            ws.send_text(frame) if isinstance(frame, str) else ws.send_bytes(frame)
        msg = ws.receive_json()
        assert msg["type"] == "error" and msg["error"] == error and msg["detail"], msg
        close = ws.receive()
        assert close["type"] == "websocket.close" and close["code"] == (1009 if error == "frame_too_large" else 1008)
    # the service is still up, and a new stream works
    healthy(client)
    wave = speaker_wave(speakers["male"], 3.0, 3.0)
    messages = stream_pcm(client, int16_pcm(wave).tobytes(), SR, "int16", int(CHUNK_S * SR) * 2)
    assert messages[-1]["type"] == "end" and len(messages) > 5


def test_a_client_leaving_mid_stream_frees_its_stream(client, speakers, monkeypatch):
    sessions: list[weakref.ref] = []
    new_session = Service.new_session

    def tracked(self, *args):
        s = new_session(self, *args)
        sessions.append(weakref.ref(s.streamer))
        return s

    monkeypatch.setattr(Service, "new_session", tracked)
    pcm = int16_pcm(speaker_wave(speakers["male"], 3.0, 3.0)).tobytes()
    with client.websocket_connect("/v1/stream?rate=16000&dtype=int16") as ws:
        assert ws.receive_json()["type"] == "ready"
        assert client.get("/healthz").json()["active_streams"] == 1
        for i in range(0, len(pcm) // 2, 3200):
            ws.send_bytes(pcm[i:i + 3200])
        assert ws.receive_json()["type"] == "event"
    # the client left without the end frame
    deadline = time.monotonic() + 10
    while client.get("/healthz").json()["active_streams"] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert client.get("/healthz").json()["active_streams"] == 0
    gc.collect()
    assert len(sessions) == 1 and sessions[0]() is None, "the stream's VAD and state are freed"


# ------------------------------------------------------------------------- the verb, a real server, load

def test_serve_config_and_settings():
    with initialize_config_module(version_base="1.3", config_module="conf"):
        cfg = compose("serve", overrides=["max_upload_mb=5", "stream.hop_s=0.5"])
    assert cfg.host == "127.0.0.1" and cfg.port == 8000 and cfg.run == "default"
    s = serve_settings(cfg, "r")
    assert s.max_upload_bytes == 5 * 2**20 and s.max_duration_s == 600 and s.stream.hop_s == 0.5 and s.run_name == "r"
    assert s.model_workers == 2 == ServeSettings().model_workers
    with initialize_config_module(version_base="1.3", config_module="conf"):
        plain = serve_settings(compose("serve"))
    assert plain == ServeSettings(stream=plain.stream, tmp_dir=plain.tmp_dir, examples=plain.examples), \
        "conf/serve.yaml and ServeSettings' defaults disagree"
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("example.org")


@pytest.fixture(scope="module")
def server(request, tmp_path_factory) -> str:
    return shared_server(request, tmp_path_factory)


def test_real_server_takes_concurrent_uploads(server, run_dir, clip_3s):
    """The verb's real uvicorn server: 20 uploads, 8 at once (one client's share), and an over-size body
    refused early."""
    url, (path, gender) = server, clip_3s
    data = path.read_bytes()
    assert httpx.get(f"{url}/").status_code == 200

    def upload(i: int) -> httpx.Response:
        with httpx.Client(timeout=120) as c:
            return c.post(f"{url}/v1/classify", files={"file": (f"clip{i}.wav", data, "audio/wav")})

    with ThreadPoolExecutor(ServeSettings().max_uploads_per_client) as pool:  # one client: its share of slots at once
        responses = list(pool.map(upload, range(LOAD_REQUESTS)))
    assert [r.status_code for r in responses] == [200] * LOAD_REQUESTS, [r.text for r in responses][:3]
    assert {r.json()["label"] for r in responses} == {gender}
    assert len({json.dumps(r.json()["p_male"]) for r in responses}) == 1, "same answer under concurrency"
    health = httpx.get(f"{url}/healthz").json()
    assert health["run"] == run_dir.name
    # a declared body over max_upload_mb is answered at once, without waiting for the body
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=x"
                     b"\r\nContent-Length: 52428800\r\n\r\n")
        answer = b""
        while b'"detail"' not in answer and (chunk := sock.recv(4096)):  # the status and the JSON body
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 413") and b'"too_large"' in answer, answer
    assert httpx.get(f"{url}/healthz").status_code == 200
