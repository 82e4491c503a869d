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
from test_serve import (CHUNK_S, assert_error, int16_pcm, serve_run, speaker_wave, stream_pcm, sure_speakers,
                        wav_bytes)

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
def client(tmp_path_factory) -> Iterator[TestClient]:
    pipe = GenderPipeline.from_run(serve_run(tmp_path_factory))
    settings = ServeSettings(max_upload_mb=2.0, max_duration_s=20.0, max_uploads=1, upload_timeout_s=5.0,
                             upload_idle_timeout_s=IDLE_TIMEOUT_S, tmp_dir=str(tmp_path_factory.mktemp("lim")))
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
                    log: list | None = None) -> httpx.Response:
    """POST whose body stops after ``body_start`` for ``pause_s``, then ends."""

    async def body():
        yield body_start
        if log is not None:
            log.append("first chunk sent")
        await anyio.sleep(pause_s)
        yield body_end

    transport = httpx.ASGITransport(app=app)
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
