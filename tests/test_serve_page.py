"""The live page (GET /) in a real headless Chromium (Debian package `chromium`) against a real server.

A call is in progress (a real dial on the emulated modem, scripted words): the page must show the
line, the queue, the transcript as the event stream delivered it and the latency chart, and the
screenshot must be a rendered page (right size, the header's colour, many colours, the chart's bars).
The token goes in the address's #fragment and is dropped from the address by the page.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import struct
import subprocess
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from runner_support import goal_text, wait_for
from serve_support import SCRIPT, TOKEN, TalkingCalls, serve_settings, served

WIDTH, HEIGHT = 1200, 900
HEADER = (0x1D, 0x23, 0x30)
BAR = (0x24, 0x56, 0xA4)


class Browser:
    """Headless Chromium driven over the DevTools protocol on a pipe (fd 3 in, fd 4 out; no extra packages).

    Real time, not virtual time: the page's event stream never ends, so the test polls the live DOM
    until the words are there, then takes the screenshot.
    """

    def __init__(self, tmp_path: Path) -> None:
        binary = shutil.which("chromium")
        if binary is None:
            pytest.fail("headless Chromium is needed: apt-get install chromium (.ci/run installs it)")
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()
        assert min(to_chrome_r, from_chrome_w) > 4  # so the dup2s below never overwrite each other
        self.process = subprocess.Popen(
            [
                binary,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                f"--user-data-dir={tmp_path / 'chrome-profile'}",
                f"--window-size={WIDTH},{HEIGHT}",
                "--remote-debugging-pipe",
                "about:blank",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            pass_fds=(3, 4, to_chrome_r, from_chrome_w),  # 3 and 4: what preexec_fn puts there
            preexec_fn=lambda: (os.dup2(to_chrome_r, 3), os.dup2(from_chrome_w, 4)),
        )
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buffer = b""
        self._next = 0
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]

    def send(self, method: str, session: str | None = None, **params: object) -> dict:
        self._next += 1
        message = {"id": self._next, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._to_chrome, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            while b"\0" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\0", 1)
                reply = json.loads(raw)
                if reply.get("id") == self._next:
                    assert "error" not in reply, reply
                    return reply["result"]
            chunk = os.read(self._from_chrome, 1 << 20)
            assert chunk, "chromium closed the DevTools pipe"
            self._buffer += chunk
        raise AssertionError(f"no DevTools reply to {method}")

    def page(self, method: str, **params: object) -> dict:
        return self.send(method, self.session, **params)

    def evaluate(self, expression: str) -> object:
        return self.page("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get("value")

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        os.close(self._to_chrome)
        os.close(self._from_chrome)


def read_png(path: Path) -> np.ndarray:
    """RGB(A) pixels of an 8-bit non-interlaced PNG (what Chromium writes), filters undone."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, pos = {}, 8
    idat = b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        if kind == b"IDAT":
            idat += body
        chunks[kind] = body
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", chunks[b"IHDR"])
    assert depth == 8 and colour in (2, 6) and interlace == 0
    channels = 3 if colour == 2 else 4
    raw = np.frombuffer(zlib.decompress(idat), dtype=np.uint8).reshape(height, 1 + width * channels)
    out = np.zeros((height, width * channels), dtype=np.int32)
    for y in range(height):
        kind, line = raw[y, 0], raw[y, 1:].astype(np.int32)
        up = out[y - 1] if y else np.zeros_like(line)
        if kind == 0:
            out[y] = line
        elif kind == 2:
            out[y] = (line + up) % 256
        else:  # sub, average, paeth depend on the pixel to the left: row by row
            row = np.zeros_like(line)
            for x in range(line.size):
                left = row[x - channels] if x >= channels else 0
                upleft = up[x - channels] if x >= channels else 0
                if kind == 1:
                    pred = left
                elif kind == 3:
                    pred = (left + up[x]) // 2
                else:
                    p = left + up[x] - upleft
                    pa, pb, pc = abs(p - left), abs(p - up[x]), abs(p - upleft)
                    pred = left if pa <= pb and pa <= pc else (up[x] if pb <= pc else upleft)
                row[x] = (line[x] + pred) % 256
            out[y] = row
    return out.reshape(height, width, channels)[:, :, :3].astype(np.uint8)


def test_the_live_page_shows_the_call_in_progress_in_headless_chromium(tmp_path: Path) -> None:
    settings = serve_settings(tmp_path)
    seam = TalkingCalls(tmp_path / "outbox", hold_s=60)
    with served(settings, tmp_path / "goals", seam) as (api, _):
        call_id = api.post_goal(goal_text(extra="id: dentist\n")).json()["call_id"]
        queued = api.post_goal(goal_text(objective="Call the garage next")).json()["call_id"]
        wait_for(lambda: seam.spoken.is_set(), 20, "the scripted turns")
        browser = Browser(tmp_path)
        try:
            browser.page("Emulation.setDeviceMetricsOverride", width=WIDTH, height=HEIGHT, deviceScaleFactor=1, mobile=False)
            browser.page("Page.navigate", url=f"{api.url}/#token={TOKEN}")
            wait_for(
                lambda: SCRIPT[-1][1] in str(browser.evaluate("document.getElementById('transcript').textContent")),
                20,
                "the page to show the last turn",
            )
            dom = str(browser.evaluate("document.documentElement.outerHTML"))
            address = browser.evaluate("location.href")
            shot = tmp_path / "page.png"
            shot.write_bytes(base64.b64decode(browser.page("Page.captureScreenshot", format="png")["data"]))
        finally:
            browser.close()
        api.client.post(f"/v1/calls/{call_id}/hangup")

    text = re.sub(r"<script>.*?</script>", "", dom, flags=re.S)
    for _, words in SCRIPT:
        assert words in text  # arrived through the event stream, rendered by the page's script
    assert f"answered: {call_id}" in text and queued in text and ">live<" in text
    assert re.search(r'<span id="line" class="pill up">up</span>', text)
    assert text.count("<rect") == 2 and ">640<" in text and ">840<" in text  # one bar per reply, labelled in ms
    assert TOKEN not in text and TOKEN not in str(address)  # the token left the address and the page
    pixels = read_png(shot)
    assert pixels.shape == (HEIGHT, WIDTH, 3)
    assert (pixels[5:40, 300:1100] == HEADER).all(axis=-1).mean() > 0.9  # the header bar
    assert (pixels == BAR).all(axis=-1).sum() > 5000  # the chart's bars
    colours = np.unique(pixels.reshape(-1, 3), axis=0)
    assert len(colours) > 50  # text, not a blank or one-colour page
