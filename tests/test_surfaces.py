"""Every surface answers alike, with the shipped model and the same defaults (timeline on): the
command line, ``GenderPipeline`` on a path, ``POST /v1/classify`` and the WebSocket stream, for one
real two-voice file; and every route's JSON is what its OpenAPI schema says (``/docs``).

The voices are CMU ARCTIC's axb (a woman) and aew (a man) from ``data/sample`` (training data of the
shipped model: this checks that the surfaces agree, not accuracy).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from fastapi.testclient import TestClient
from jsonschema import Draft202012Validator

from src.data.audio import SAMPLE_RATE_HZ, load_audio
from src.inference.pipeline import GenderPipeline
from src.inference.run_folder import RunFolder
from src.labels import MIXED
from src.serving import ServeSettings, create_app
from src.serving.examples import Example

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SR = SAMPLE_RATE_HZ
SAMPLE_AUDIO = Path(__file__).resolve().parents[1] / "data" / "sample" / "audio"


def speaker(name: str) -> np.ndarray:
    return np.concatenate([load_audio(p) for p in sorted((SAMPLE_AUDIO / name).glob("*.flac"))])


@pytest.fixture(scope="module")
def pipe() -> GenderPipeline:
    return GenderPipeline.from_pretrained()


@pytest.fixture(scope="module")
def two_voices(tmp_path_factory) -> Path:
    """A woman, 0.5 s of silence, a man: about 14 s, as a 16-bit WAV."""
    wave = np.concatenate([speaker("arctic-axb"), np.zeros(SR // 2, np.float32), speaker("arctic-aew")])
    path = tmp_path_factory.mktemp("surfaces") / "two_voices.wav"
    sf.write(path, wave, SR, subtype="PCM_16")
    return path


@pytest.fixture(scope="module")
def client(pipe, tmp_path_factory):
    card = RunFolder.shipped().dir / "MODEL_CARD.md"
    clip = next((SAMPLE_AUDIO / "arctic-axb").glob("*.flac"))
    settings = ServeSettings(tmp_dir=str(tmp_path_factory.mktemp("uploads")), model_workers=1, run_name="default",
                             model_card=str(card), examples=(Example("a woman", str(clip), "training data"),))
    with TestClient(create_app(pipe, settings)) as c:
        yield c


def stream_end(client: TestClient, path: Path) -> dict:
    pcm = np.round(np.clip(load_audio(path), -1, 1) * 32767).astype(np.int16).tobytes()
    with client.websocket_connect(f"/v1/stream?rate={SR}&dtype=int16") as ws:
        assert ws.receive_json()["type"] == "ready"
        step = int(0.5 * SR) * 2
        for i in range(0, len(pcm), step):
            ws.send_bytes(pcm[i:i + step])
        ws.send_bytes(b"")
        while (m := ws.receive_json())["type"] not in ("end", "error"):
            pass
    return m


def test_one_two_voice_file_gets_one_answer_on_every_surface(pipe, client, two_voices, run_cli, tmp_path):
    cli = json.loads(run_cli("src.predict", f"input={two_voices}", "progress=false",
                             f"hydra.run.dir={tmp_path / 'log'}").stdout)
    py = pipe(two_voices).to_dict()
    api = client.post("/v1/classify", files={"file": ("two_voices.wav", two_voices.read_bytes(), "audio/wav")}).json()
    end = stream_end(client, two_voices)
    assert cli["label"] == py["label"] == api["label"] == end["label"] == MIXED, (cli, py, api, end)
    for k in ("p_male", "p_female", "speech_s", "speaking_time_s", "timeline", "status", "model"):
        assert cli[k] == py[k] == api[k], k
    assert cli["model"].startswith("default") and py["p_male"] is not None
    assert set(end["speaking_time_s"]) >= {"female", "male"}


def resolved(schema: dict, spec: dict) -> Draft202012Validator:
    return Draft202012Validator({**schema, "components": spec["components"]})


def check(spec: dict, path: str, method: str, response) -> None:
    """``response``'s JSON against the schema ``/openapi.json`` gives for that route and status."""
    doc = spec["paths"][path][method]["responses"][str(response.status_code)]
    schema = doc["content"]["application/json"]["schema"]
    errors = [f"{'/'.join(map(str, e.path))}: {e.message}" for e in resolved(schema, spec).iter_errors(response.json())]
    assert not errors, (path, response.status_code, errors)


def test_every_route_answers_what_its_schema_says(client, two_voices, tmp_path):
    spec = client.get("/openapi.json").json()
    routes = {(p, m) for p, ops in spec["paths"].items() for m in ops}
    assert routes == {("/healthz", "get"), ("/v1/classify", "post"), ("/v1/examples", "get"),
                      ("/v1/examples/{index}", "get"), ("/v1/model/card", "get")}, routes
    check(spec, "/healthz", "get", client.get("/healthz"))
    check(spec, "/v1/examples", "get", client.get("/v1/examples"))
    assert client.get("/v1/examples/0").content[:4] == b"fLaC"
    card = client.get("/v1/model/card")
    assert card.status_code == 200 and "Limits" in card.text and client.get("/healthz").json()["model_card"]
    wav = two_voices.read_bytes()
    for query in ("", "?timeline=false"):  # mixed (timeline, segments with speech_s), and without a timeline
        r = client.post(f"/v1/classify{query}", files={"file": ("x.wav", wav, "audio/wav")})
        assert r.status_code == 200 and r.json()["age_group"] and r.json()["model"]
        check(spec, "/v1/classify", "post", r)
    silence = tmp_path / "silence.wav"
    sf.write(silence, np.zeros(SR, np.float32), SR)
    check(spec, "/v1/classify", "post", client.post("/v1/classify", files={"file": ("s.wav", silence.read_bytes())}))
    bad = client.post("/v1/classify", files={"file": ("note.m4a", b"\x00\x00\x00\x18ftypM4A " + bytes(3000))})
    assert bad.status_code == 422 and "FFmpeg" in bad.json()["detail"], bad.json()
    check(spec, "/v1/classify", "post", bad)
