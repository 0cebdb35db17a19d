"""A tiny hand-written AT + audio client for the emulator tests (deliberately NOT the project's driver).

It speaks to the emulated modem exactly like any program would: pyserial on the two pty paths.
"""

from __future__ import annotations

import queue
import re
import threading
import time

import numpy as np
import serial

FINAL = re.compile(r"^(OK|ERROR|NO CARRIER|\+CME ERROR: .*|> ?)$")


class AtClient:
    """Sends commands and collects every line (responses and URCs) from a reader thread."""

    def __init__(self, path: str) -> None:
        self.port = serial.Serial(path, timeout=0.05)
        self.lines: queue.Queue[str] = queue.Queue()
        self.raw = bytearray()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        buf = bytearray()
        while not self._stop.is_set():
            try:
                data = self.port.read(256)
            except (serial.SerialException, OSError, TypeError):
                return
            self.raw += data
            buf += data
            while True:
                if buf.startswith(b"> ") or buf == b">":
                    self.lines.put(buf.decode())
                    buf.clear()
                    break
                cut = next((i for i, b in enumerate(buf) if b in (10, 13)), None)
                if cut is None:
                    break
                line = buf[:cut].decode("ascii", "replace").strip()
                del buf[: cut + 1]
                if line:
                    self.lines.put(line)

    def send(self, text: str | bytes) -> None:
        self.port.write(text.encode() + b"\r" if isinstance(text, str) else text)

    def wait_for(self, pattern: str, timeout: float = 3.0) -> str:
        """The first line matching `pattern` (regex), skipping others."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no line matching {pattern!r} within {timeout} s")
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            if re.search(pattern, line):
                return line

    def command(self, text: str, timeout: float = 3.0) -> list[str]:
        """Send a command; the lines up to and including its final result (echo and URCs included).

        Lines that arrived before the command are dropped first, so the reply is only this command's.
        """
        while not self.lines.empty():
            self.lines.get_nowait()
        self.send(text)
        got: list[str] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.05)
            except queue.Empty:
                continue
            got.append(line)
            if FINAL.match(line):
                return got
        raise AssertionError(f"{text!r}: no final result within {timeout} s (got {got})")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=1)
        self.port.close()


class AudioClient:
    """Reads the downlink continuously; writes queued uplink paced at real time with a small lead."""

    def __init__(self, path: str, rate: int = 8000, lead_ms: int = 120, fill_silence: bool = True) -> None:
        self.port = serial.Serial(path, timeout=0.02)
        self.rate = rate
        self.lead = rate * 2 * lead_ms // 1000
        self.fill_silence = fill_silence
        self.received = bytearray()
        self.chunks: list[tuple[float, int]] = []  # (time, size) of every downlink read
        self._out = bytearray()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=f, daemon=True) for f in (self._reader, self._writer)]
        for t in self._threads:
            t.start()

    def _reader(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.port.read(4096)
            except (serial.SerialException, OSError, TypeError):
                return
            if data:
                self.chunks.append((time.monotonic(), len(data)))
                self.received += data

    def _writer(self) -> None:
        # Start the uplink clock when the downlink starts: before that the modem discards what it gets.
        while not self.received:
            if self._stop.wait(0.005):
                return
        start = time.monotonic()
        sent = 0
        while not self._stop.wait(0.01):
            due = int((time.monotonic() - start) * self.rate * 2) + self.lead - sent
            due -= due % 2
            if due <= 0:
                continue
            with self._lock:
                chunk = bytes(self._out[:due])
                del self._out[:due]
            if len(chunk) < due and self.fill_silence:
                chunk += bytes(due - len(chunk))
            if not chunk:
                # Nothing to say and no silence fill: let the modem run dry; the next words go out with a fresh lead.
                sent = int((time.monotonic() - start) * self.rate * 2)
                continue
            try:
                self.port.write(chunk)
            except (serial.SerialException, OSError, TypeError):  # TypeError: closed while blocked
                return
            sent += due

    def play(self, pcm: bytes) -> None:
        with self._lock:
            self._out += pcm

    def queued(self) -> int:
        with self._lock:
            return len(self._out)

    def close(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=1)
        self.port.close()


def tone(ms: int, rate: int = 8000, hz: float = 440.0, level: float = 0.3) -> bytes:
    n = rate * ms // 1000
    return (np.sin(2 * np.pi * hz * np.arange(n) / rate) * level * 32767).astype("<i2").tobytes()


def loud_spans(pcm: bytes, rate: int, threshold: float = 300.0, merge_s: float = 0.2) -> list[tuple[float, float]]:
    """(start_s, end_s) of loud stretches of 20 ms frames in `pcm` (gaps under `merge_s` merged)."""
    size = rate // 50 * 2
    spans: list[list[float]] = []
    for i in range(len(pcm) // size):
        frame = np.frombuffer(pcm[i * size : (i + 1) * size], dtype="<i2").astype(np.float32)
        if np.sqrt(np.mean(frame * frame)) >= threshold:
            t = i * 0.02
            if spans and t - spans[-1][1] < merge_s:
                spans[-1][1] = t + 0.02
            else:
                spans.append([t, t + 0.02])
    return [(a, b) for a, b in spans]
