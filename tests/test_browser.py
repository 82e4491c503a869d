"""The web page in a real headless Chromium, against a real ``python -m src.serve``.

Chromium's fake microphone plays a WAV of real speech (one sure speaker's clips joined,
16 kHz mono 16-bit); the test clicks Record like a person (a DevTools mouse event, so the
page has a user gesture for its AudioContext) and waits for the live label. It drives
Chromium over the DevTools protocol with the ``websockets`` package; nothing is
downloaded. Skipped when Debian's Chromium is not installed (``.ci/run`` installs it).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import soundfile as sf
from test_serve import (
    REPO_DIR,
    SR,
    free_port,
    serve_process,
    serve_run,
    shared_server,
    speaker_wave,
    stop_process,
    sure_speakers,
)

CHROMIUM_PATH = Path("/usr/bin/chromium")
LABEL_TIMEOUT_S = 30
BROWSER_START_TIMEOUT_S = 60

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM_PATH.exists(), reason="needs Debian's Chromium at /usr/bin/chromium "
                                                           "(apt-get install chromium; .ci/run does it)"),
]


class DevTools:
    """A minimal DevTools-protocol client over one page's WebSocket."""

    def __init__(self, ws_url: str):
        from websockets.sync.client import connect

        self.ws = connect(ws_url, max_size=None, open_timeout=20)
        self.next_id = 0
        self.console: list[str] = []

    def call(self, method: str, timeout_s: float = 30.0, **params) -> dict:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        deadline = time.monotonic() + timeout_s
        while True:
            msg = json.loads(self.ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            if msg.get("method") == "Runtime.consoleAPICalled":
                self.console.append(" ".join(str(a.get("value", a.get("description", ""))) for a in
                                             msg["params"]["args"]))
            elif msg.get("method") == "Runtime.exceptionThrown":
                self.console.append(f"exception: {msg['params']['exceptionDetails']}")

    def eval(self, expression: str):
        r = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r:
            raise RuntimeError(f"{expression}: {r['exceptionDetails']}")
        return r["result"].get("value")

    def wait_for(self, expression: str, timeout_s: float, what: str):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            value = self.eval(expression)
            if value:
                return value
            time.sleep(0.25)
        raise AssertionError(f"{what} not within {timeout_s} s; page said: {self.status()}; console: {self.console}")

    def status(self) -> str:
        return self.eval("document.getElementById('live-status').textContent + ' | ' + "
                         "document.getElementById('file-status').textContent")

    def click(self, selector: str) -> None:
        """A real mouse click in the middle of the element (counts as a user gesture)."""
        rect = self.eval(f"(() => {{ const e = document.querySelector({json.dumps(selector)}); "
                         "e.scrollIntoView({block: 'center'}); const r = e.getBoundingClientRect(); "
                         "return {x: r.x + r.width / 2, y: r.y + r.height / 2}; })()")
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=rect["x"], y=rect["y"], button="left", clickCount=1)

    def close(self) -> None:
        self.ws.close()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return serve_run(tmp_path_factory)


@pytest.fixture(scope="module")
def speaker(run_dir):
    return sure_speakers(run_dir)["female"]


@pytest.fixture(scope="module")
def speech_wav(speaker, tmp_path_factory) -> Path:
    """5-10 s of one real speaker, 16 kHz mono 16-bit (what Chromium's fake device plays)."""
    path = tmp_path_factory.mktemp("fake-mic") / "speech.wav"
    sf.write(path, speaker_wave(speaker, 6.0, 10.0), SR, subtype="PCM_16")
    return path


@pytest.fixture(scope="module")
def server(request, tmp_path_factory) -> str:
    return shared_server(request, tmp_path_factory)  # python -m src.serve, shared with test_serve.py


@pytest.fixture(scope="module")
def page(server, speech_wav, tmp_path_factory) -> Iterator[DevTools]:
    """Headless Chromium on the service's page, its fake microphone playing ``speech_wav``."""
    port = free_port()
    profile = tmp_path_factory.mktemp("chromium-profile")
    proc = subprocess.Popen([
        str(CHROMIUM_PATH), "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={profile}", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={speech_wav}", f"--remote-debugging-port={port}",
        "--window-size=1200,1000", "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    tools = None
    try:
        deadline = time.monotonic() + BROWSER_START_TIMEOUT_S
        while True:
            assert proc.poll() is None, "Chromium exited at start"
            try:
                targets = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=2).json()
                pages = [t for t in targets if t.get("type") == "page"]
                if pages:
                    break
            except (httpx.TransportError, ValueError):
                pass
            assert time.monotonic() < deadline, f"Chromium's DevTools did not answer in {BROWSER_START_TIMEOUT_S} s"
            time.sleep(0.3)
        tools = DevTools(pages[0]["webSocketDebuggerUrl"])
        tools.call("Runtime.enable")
        tools.call("Page.enable")
        tools.call("Page.navigate", url=f"{server}/")
        tools.wait_for("document.readyState === 'complete' && !!document.getElementById('record') && "
                       "document.getElementById('health').textContent.includes('resemblyzer')", 30, "the page")
        yield tools
    finally:
        if tools is not None:
            tools.close()
        stop_process(proc, 10)
        shutil.rmtree(profile, ignore_errors=True)


def test_record_shows_the_live_label(page, speaker):
    assert page.eval("document.getElementById('live-label').textContent") == "–"
    page.click("#record")
    label = page.wait_for("(() => { const l = document.getElementById('live-label').dataset.label; "
                          "return (l === 'male' || l === 'female') ? l : null; })()", LABEL_TIMEOUT_S,
                          "a male/female live label")
    assert label == speaker.gender, f"{page.status()}; console: {page.console}"
    assert page.eval("document.querySelectorAll('#live-timeline .seg').length") >= 1
    assert page.eval("parseFloat(document.getElementById('live-confidence').style.width)") > 50
    assert page.eval("parseFloat(document.getElementById('live-level').style.width)") > 0  # the mic level meter
    assert "listening" in page.eval("document.getElementById('live-status').textContent")
    page.click("#record")  # stop: the page sends the end frame and shows the speaking time
    page.wait_for("document.getElementById('live-status').textContent.includes('speaking time')", 15,
                  "the end of the stream")
    # the headline after Stop is the stream's whole answer, the one its end message gives
    final = page.eval("document.getElementById('live-label').dataset.label")
    assert f"stopped · {final} · " in page.eval("document.getElementById('live-status').textContent")


def test_a_picked_file_shows_its_result(page, speech_wav, speaker):
    set_file(page, speech_wav)
    label = page.wait_for("document.getElementById('file-result').hidden ? null : "
                          "document.getElementById('file-label').dataset.label", 60, "the file's result")
    assert label == speaker.gender, page.status()
    assert page.eval("document.querySelectorAll('#file-timeline .seg').length") >= 1
    assert "speaking time" in page.eval("document.getElementById('file-talk').textContent")


def set_file(page: DevTools, path: Path) -> None:
    doc = page.call("DOM.getDocument")
    node = page.call("DOM.querySelector", nodeId=doc["root"]["nodeId"], selector="#file-input")
    page.call("DOM.setFileInputFiles", files=[str(path)], nodeId=node["nodeId"])


@pytest.fixture(scope="module")
def default_server(tmp_path_factory) -> Iterator[str]:
    """``python -m src.serve run=default``: the shipped model a new user meets first."""
    with serve_process(REPO_DIR / "models" / "default", tmp_path_factory.mktemp("default-server")) as url:
        yield url


def open_page(page: DevTools, url: str) -> None:
    page.call("Page.navigate", url=f"{url}/")
    page.wait_for("document.readyState === 'complete' && "
                  "document.getElementById('health').textContent.includes('resemblyzer')", 30, "the page")


def test_an_example_clip_plays_and_gets_the_right_label(page, default_server):
    open_page(page, default_server)
    examples = httpx.get(f"{default_server}/v1/examples", timeout=10).json()
    assert [e["name"] for e in examples][:2] == ["p225_020.flac", "p226_011.flac"]  # conf/serve.yaml
    expected = {"p225_020.flac": "female", "p226_011.flac": "male"}  # data/sample/manifest.csv
    page.wait_for("document.querySelectorAll('#examples button').length >= 2", 15, "the example buttons")
    for i, name in enumerate(expected):
        page.click(f"#examples button:nth-of-type({i + 1})")
        label = page.wait_for(f"document.getElementById('file-name').textContent === {json.dumps(name)} && "
                              "!document.getElementById('file-result').hidden && "
                              "document.getElementById('file-label').dataset.label", 60, f"the result of {name}")
        assert label == expected[name], page.status()
    numbers = page.eval("document.getElementById('file-numbers').textContent")
    assert "p(female) = " in numbers and "p(male) = " in numbers, numbers  # both probabilities
    assert page.eval("document.getElementById('file-audio').src").startswith("blob:")  # the player has the clip
    page.wait_for("document.getElementById('file-audio').duration > 5", 15, "the player loading the clip")
    ticks = page.eval("[...document.querySelectorAll('#file-axis span')].map(s => s.textContent)")
    assert ticks[0] == "0 s" and len(ticks) >= 3, ticks  # the strip sits on a time axis
    assert page.eval("document.querySelectorAll('#file-timeline .seg').length") >= 1
    colour = page.eval("getComputedStyle(document.documentElement).getPropertyValue('--male').trim()")
    assert colour == "#138a7a"  # src/labels.py's LABEL_COLOURS, handed over by /healthz


def test_a_failed_upload_clears_the_previous_result(page, speech_wav, tmp_path):
    good = tmp_path / "again.wav"  # another name: the input fires no change for the file it already holds
    good.write_bytes(speech_wav.read_bytes())
    set_file(page, good)
    page.wait_for("!document.getElementById('file-result').hidden && "
                  "document.getElementById('file-name').textContent === 'again.wav'", 60, "a first result")
    bad = tmp_path / "notes.wav"
    bad.write_text("this is not audio at all " * 40)
    set_file(page, bad)
    page.wait_for("document.getElementById('file-status').classList.contains('error')", 30, "the upload's error")
    assert page.eval("document.getElementById('file-result').hidden") is True, page.status()
    assert page.eval("document.getElementById('file-label').textContent") == "–"
    assert not page.eval("document.getElementById('file-audio').getAttribute('src')")
