"""The service under hostile input (issue 14): bounded cost per upload, a slow body, too many
uploads at once, and a stream's end verdict taken from the whole stream.

Same session run and real speech as ``test_serve.py``. The slow bodies go through the real
ASGI app in process (httpx's ASGI transport hands the body over chunk by chunk, as a socket
would); ``bench/serve.py`` does the same against a real uvicorn server on loopback.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

import anyio
import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from test_serve import (
    CHUNK_S,
    assert_error,
    int16_pcm,
    serve_process,
    serve_run,
    speaker_wave,
    stream_pcm,
    sure_speakers,
    wav_bytes,
)

from src.data.audio import SAMPLE_RATE_HZ
from src.inference.pipeline import GenderPipeline
from src.inference.streaming import stream_verdict
from src.labels import MIXED, UNKNOWN
from src.serving import ServeSettings, create_app

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SR = SAMPLE_RATE_HZ
IDLE_TIMEOUT_S = 1.0


@pytest.fixture(scope="module")
def speakers(tmp_path_factory):
    return sure_speakers(serve_run(tmp_path_factory))


@pytest.fixture(scope="module")
def pipe(tmp_path_factory) -> GenderPipeline:
    return GenderPipeline.from_run(serve_run(tmp_path_factory))


@pytest.fixture(scope="module")
def client(pipe, tmp_path_factory) -> Iterator[TestClient]:
    settings = ServeSettings(max_upload_mb=2.0, max_duration_s=20.0, max_uploads=1, upload_timeout_s=5.0,
                             upload_idle_timeout_s=IDLE_TIMEOUT_S, tmp_dir=str(tmp_path_factory.mktemp("lim")),
                             stream_idle_timeout_s=2.0, max_streams_per_client=2)
    with TestClient(create_app(pipe, settings)) as c:
        yield c


def test_a_wav_whose_header_says_1_hz_is_refused_before_decoding(client, speakers):
    """The probe's 1 kB WAV declared at 1 Hz became 500 s of audio and 42 s of model time."""
    data = bytearray(wav_bytes(speaker_wave(speakers["male"], 0.03, 0.03)))  # 480 real samples, ~1 kB
    data[24:32] = struct.pack("<II", 1, 2)
    r = client.post("/v1/classify", files={"file": ("one_hz.wav", bytes(data), "audio/wav")})
    assert_error(r, 422, "unsupported_rate")
    assert "1 Hz" in r.json()["detail"] and "one_hz.wav" in r.json()["detail"]


def multipart(wave_bytes: bytes, boundary: str = "b0undary") -> tuple[bytes, bytes, dict[str, str]]:
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"c.wav\"\r\n"
            f"Content-Type: audio/wav\r\n\r\n").encode()
    return head + wave_bytes, f"\r\n--{boundary}--\r\n".encode(), {
        "content-type": f"multipart/form-data; boundary={boundary}"}


async def slow_post(app, body_start: bytes, body_end: bytes, headers: dict, pause_s: float,
                    log: list | None = None, client: str = "127.0.0.1") -> httpx.Response:
    """POST whose body stops after ``body_start`` for ``pause_s``, then ends (from the address ``client``)."""

    async def body():
        yield body_start
        if log is not None:
            log.append("first chunk sent")
        await anyio.sleep(pause_s)
        yield body_end

    transport = httpx.ASGITransport(app=app, client=(client, 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        return await c.post("/v1/classify", content=body(), headers=headers, timeout=30)


def test_a_body_that_stalls_is_a_408_and_counted(client, speakers):
    start, end, headers = multipart(wav_bytes(speaker_wave(speakers["male"], 3.0, 3.0)))
    before = client.get("/healthz").json()["uploads"]
    r = anyio.run(slow_post, client.app, start, end, headers, IDLE_TIMEOUT_S + 1.5)
    assert_error(r, 408, "timeout")
    assert "upload_idle_timeout_s" in r.json()["detail"]
    after = client.get("/healthz").json()["uploads"]
    assert after["timed_out"] == before["timed_out"] + 1 and after["active"] == 0
    # a body that pauses less than the limit is answered
    r = anyio.run(slow_post, client.app, start, end, headers, IDLE_TIMEOUT_S / 4)
    assert r.status_code == 200 and r.json()["label"] == "male", r.text


def test_an_upload_over_max_uploads_is_a_503_and_counted(client, speakers):
    """max_uploads=1: while one upload is in progress a second is refused at once."""
    start, end, headers = multipart(wav_bytes(speaker_wave(speakers["female"], 3.0, 3.0)))
    whole = start + end
    before = client.get("/healthz").json()["uploads"]
    results: dict[str, httpx.Response] = {}

    async def both():
        sent: list[str] = []

        async def first():
            results["slow"] = await slow_post(client.app, start, end, headers, IDLE_TIMEOUT_S / 2, sent)

        async with anyio.create_task_group() as tg:
            tg.start_soon(first)
            while not sent:
                await anyio.sleep(0.01)
            transport = httpx.ASGITransport(app=client.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
                results["second"] = await c.post("/v1/classify", content=whole, headers=headers)

    anyio.run(both)
    assert_error(results["second"], 503, "busy")
    assert results["second"].headers["retry-after"]
    assert results["slow"].status_code == 200 and results["slow"].json()["label"] == "female"
    after = client.get("/healthz").json()
    assert after["uploads"]["refused_busy"] == before["refused_busy"] + 1 and after["uploads"]["active"] == 0
    assert after["limits"]["max_uploads"] == 1


def test_stream_verdict_is_the_majority_of_speaking_time():
    assert stream_verdict({"male": 9.6, "female": 4.2, "unknown": 3.0}) == "male"  # the probe's stream: 70 %
    assert stream_verdict({"male": 5.0, "female": 4.5}) == MIXED
    assert stream_verdict({"unknown": 2.0}) == stream_verdict({}) == UNKNOWN


@pytest.mark.parametrize("male_s, female_s, verdict", [(10.0, 3.0, "male"), (5.0, 5.0, MIXED)])
def test_a_streams_end_verdict_comes_from_the_whole_stream(client, speakers, male_s, female_s, verdict):
    """A long male turn then a short female one: the last decision is female, the stream male."""
    wave = np.concatenate([speaker_wave(speakers["male"], male_s, male_s), np.zeros(SR // 2, np.float32),
                           speaker_wave(speakers["female"], female_s, female_s)])
    messages = stream_pcm(client, int16_pcm(wave).tobytes(), SR, "int16", int(CHUNK_S * SR) * 2)
    end = messages[-1]
    assert end["type"] == "end", end
    assert end["last_label"] == "female", end  # the last decision, as the end message used to say
    assert end["label"] == verdict == stream_verdict(end["speaking_time_s"]), end


async def trickle_post(app, client: str, body_start: bytes, n_bytes: int, every_s: float, until_s: float,
                       headers: dict) -> httpx.Response:
    """The probe's trickle: a multipart body ``n_bytes`` at a time every ``every_s`` (ends after ``until_s``)."""

    async def body():
        t0 = anyio.current_time()
        for i in range(0, len(body_start), n_bytes):
            yield body_start[i:i + n_bytes]
            await anyio.sleep(every_s)
            if anyio.current_time() - t0 > until_s:
                return

    transport = httpx.ASGITransport(app=app, client=(client, 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        return await c.post("/v1/classify", content=body(), headers=headers, timeout=60)


def test_trickled_uploads_are_let_go_early_and_one_client_holds_only_its_share(pipe, tmp_path, speakers):
    """The probe: 32 connections trickling about 12 bytes each shut every other upload out (503) for
    up to 60 s. Now one address holds at most max_uploads_per_client slots (the rest 503 at once), a
    body under upload_min_rate_kbs is a 408 after upload_rate_grace_s, and another client's upload is
    answered meanwhile."""
    settings = ServeSettings(max_uploads=32, max_uploads_per_client=3, upload_timeout_s=60.0,
                             upload_idle_timeout_s=10.0, upload_min_rate_kbs=8.0, upload_rate_grace_s=1.5,
                             tmp_dir=str(tmp_path))
    clip = wav_bytes(speaker_wave(speakers["female"], 3.0, 3.0))
    start, end, headers = multipart(clip)
    results: dict[str, object] = {}

    async def flood_and_one_upload():
        async with anyio.create_task_group() as tg:
            async def attacker(i: int):
                t0 = anyio.current_time()
                r = await trickle_post(app, "10.0.0.66", start, 12, 0.5, 30.0, headers)
                results[f"attack{i}"] = (r, anyio.current_time() - t0)

            for i in range(6):
                tg.start_soon(attacker, i)
            await anyio.sleep(0.3)
            t0 = anyio.current_time()
            results["other"] = (await slow_post(app, start, end, headers, 0.0, client="10.0.0.7"),
                                anyio.current_time() - t0)

    app = create_app(pipe, settings)
    with TestClient(app) as c:
        anyio.run(flood_and_one_upload)
        health = c.get("/healthz").json()
    attacks = [results[f"attack{i}"] for i in range(6)]
    assert sorted(r.status_code for r, _ in attacks) == [408] * 3 + [503] * 3, [r.text for r, _ in attacks]
    for r, took_s in attacks:
        if r.status_code == 408:
            assert "upload_min_rate_kbs" in r.json()["detail"] and took_s < 5.0, (r.text, took_s)
        else:
            assert "max_uploads_per_client" in r.json()["detail"] and took_s < 1.0 and r.headers["retry-after"]
    other, took_s = results["other"]
    assert other.status_code == 200 and other.json()["label"] == "female", other.text
    assert health["uploads"]["active"] == 0 and health["uploads"]["timed_out"] == 3


def test_an_idle_websocket_is_closed_and_one_client_holds_only_its_share(client):
    """The probe: 8 idle sockets held every stream slot for 95 s. Now a socket with no frame for
    stream_idle_timeout_s (2 s here) is closed, and one address holds max_streams_per_client (2)."""
    import time

    t0 = time.monotonic()
    with client.websocket_connect("/v1/stream?rate=16000") as ws:
        assert ws.receive_json()["type"] == "ready"
        error = ws.receive_json()  # nothing sent: the server gives up
    assert error["type"] == "error" and error["error"] == "idle_timeout", error
    assert 1.5 < time.monotonic() - t0 < 10
    with client.websocket_connect("/v1/stream") as a, client.websocket_connect("/v1/stream") as b:
        assert a.receive_json()["type"] == b.receive_json()["type"] == "ready"
        with client.websocket_connect("/v1/stream") as c:
            refused = c.receive_json()
        assert refused["error"] == "busy" and "max_streams_per_client" in refused["detail"], refused
        a.send_bytes(b"")
        b.send_bytes(b"")
        assert a.receive_json()["type"] == b.receive_json()["type"] == "end"


def test_a_real_server_times_out_trickled_headers_and_survives_a_flood_of_half_open_connections(tmp_path,
                                                                                                tmp_path_factory):
    """The probe: headers trickled 1 byte / 2 s were never timed out, and under a file limit 1,100
    half-open connections made /healthz time out and wrote 213 MB of log in 20 s. A real
    ``python -m src.serve`` with 256 files at most, on loopback: a trickled request line is answered
    408 and closed after header_timeout_s; while 400 half-open connections are held, /healthz answers
    (the connection that waited longest makes room) and the log stays small."""
    import socket
    import time

    with serve_process(serve_run(tmp_path_factory), tmp_path / "srv", "model_workers=1", "header_timeout_s=2",
                       "log_level=info", fd_limit=256) as url:
        host, port = url.removeprefix("http://").split(":")
        t0 = time.monotonic()
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            answer = b""
            sock.settimeout(0.5)
            for byte in b"GET /healthz HTTP/1.1\r\nHost: x\r\n":  # one byte every 0.5 s, at most 15 s
                try:
                    sock.sendall(bytes([byte]))
                    if not (chunk := sock.recv(4096)):
                        break
                    answer += chunk
                except TimeoutError:
                    pass
                except OSError:  # reset: the server closed between our bytes
                    break
        took_s = time.monotonic() - t0
        assert 1.5 < took_s < 6, took_s
        assert answer.startswith(b"HTTP/1.1 408") or not answer, answer
        log_path = tmp_path / "srv" / "serve.log"
        log_before = log_path.stat().st_size
        flood, refused = [], 0
        try:
            for _ in range(400):
                try:
                    s = socket.create_connection((host, int(port)), timeout=2)
                    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
                    flood.append(s)
                except OSError:
                    refused += 1
            t0 = time.monotonic()
            health = httpx.get(f"{url}/healthz", timeout=10)
            took_s = time.monotonic() - t0
        finally:
            for s in flood:
                s.close()
        assert health.status_code == 200 and health.json()["status"] == "ok" and took_s < 5, (took_s, health.text)
        time.sleep(1.0)
        grew = log_path.stat().st_size - log_before
        assert grew < 200_000, (grew, log_path.read_text()[-3000:])
        assert httpx.get(f"{url}/healthz", timeout=10).status_code == 200
