"""Make ``docs/web-page.png``: the service's page in headless Chromium after one click on an example clip.

    python scripts/web_page_screenshot.py            # starts python -m src.serve run=default on a free port

Needs ``/usr/bin/chromium`` and the ``serve`` extra. Drives Chromium over the DevTools protocol (websockets).
"""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from websockets.sync.client import connect

REPO_DIR = Path(__file__).resolve().parents[1]
OUT_PATH = REPO_DIR / "docs" / "web-page.png"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"no answer from {url}")


def main() -> None:
    port, dev_port = free_port(), free_port()
    server = subprocess.Popen([sys.executable, "-m", "src.serve", "run=default", f"port={port}", "log_level=warning"],
                              cwd=REPO_DIR, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    profile = tempfile.mkdtemp(prefix="chromium-")
    chrome = subprocess.Popen(["/usr/bin/chromium", "--headless=new", "--no-sandbox", "--disable-gpu",
                               f"--user-data-dir={profile}", f"--remote-debugging-port={dev_port}",
                               "--window-size=800,1000", "--hide-scrollbars", "about:blank"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz")
        wait_http(f"http://127.0.0.1:{dev_port}/json/version")
        page = next(t for t in httpx.get(f"http://127.0.0.1:{dev_port}/json/list").json() if t["type"] == "page")
        ws = connect(page["webSocketDebuggerUrl"], max_size=None, legacy=True)
        n = 0

        def call(method: str, **params) -> dict:
            nonlocal n
            n += 1
            ws.send(json.dumps({"id": n, "method": method, "params": params}))
            while True:
                msg = json.loads(ws.recv(timeout=60))
                if msg.get("id") == n:
                    return msg.get("result", {})

        def js(expr: str):
            reply = call("Runtime.evaluate", expression=expr, returnByValue=True, awaitPromise=True)
            return reply["result"].get("value")

        call("Page.navigate", url=f"http://127.0.0.1:{port}/")
        for _ in range(200):
            if js("document.querySelectorAll('#examples button').length > 1"):
                break
            time.sleep(0.2)
        js("document.querySelectorAll('#examples button')[0].click()")
        for _ in range(300):
            if js("!document.getElementById('file-result').hidden && "
                  "document.getElementById('file-audio').duration > 0"):
                break
            time.sleep(0.2)
        height = js("document.getElementById('live-section').getBoundingClientRect().top - 8")
        shot = call("Page.captureScreenshot", format="png",
                    clip={"x": 0, "y": 0, "width": 800, "height": height, "scale": 0.75})
        OUT_PATH.parent.mkdir(exist_ok=True)
        OUT_PATH.write_bytes(base64.b64decode(shot["data"]))
        print(f"{OUT_PATH} ({OUT_PATH.stat().st_size // 1024} KB)")
    finally:
        chrome.terminate()
        server.terminate()
        chrome.wait(10)
        server.wait(20)


if __name__ == "__main__":
    main()
