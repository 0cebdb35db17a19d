"""Downlink framing: unaligned serial reads -> exact 20 ms frames, and the sample rate from the byte rate.

The modem's PCM port hands out whatever the USB transfer held (odd byte counts included), so the
leftover of each read is carried into the next; nothing is dropped or duplicated. The sample rate
is measured, not trusted: VoLTE calls can arrive at 16 kHz whatever AT+CPCMFRM? says.
"""

from __future__ import annotations

import threading
from collections import deque

from cellcall.line import SAMPLE_WIDTH

RATES = (8000, 16000)


class Reframer:
    """Cuts a byte stream into frames of exactly `frame_size` bytes, carrying the remainder."""

    def __init__(self, frame_size: int) -> None:
        if frame_size <= 0 or frame_size % SAMPLE_WIDTH:
            raise ValueError(f"frame size must be a positive multiple of {SAMPLE_WIDTH}, got {frame_size}")
        self.frame_size = frame_size
        self._rest = bytearray()

    @property
    def leftover(self) -> int:
        return len(self._rest)

    def feed(self, data: bytes) -> list[bytes]:
        self._rest += data
        size = self.frame_size
        count = len(self._rest) // size
        frames = [bytes(self._rest[i * size : (i + 1) * size]) for i in range(count)]
        del self._rest[: count * size]
        return frames

    def reset(self) -> None:
        self._rest.clear()


class RateDetector:
    """Decides 8 vs 16 kHz from the measured downlink byte rate over the first `window_s` seconds.

    The clock starts at the first chunk (whose bytes are not counted: they may have queued up
    before we looked), so a burst at start cannot double the estimate.
    """

    def __init__(self, window_s: float = 0.4) -> None:
        self.window_s = window_s
        self._start: float | None = None
        self._bytes = 0
        self.sample_rate: int | None = None
        self.measured_bps: float | None = None

    def feed(self, nbytes: int, now: float) -> int | None:
        """Account a chunk received at `now`; returns the sample rate once decided."""
        if self.sample_rate is not None:
            return self.sample_rate
        if self._start is None:
            self._start = now
            return None
        self._bytes += nbytes
        elapsed = now - self._start
        if elapsed >= self.window_s:
            self.measured_bps = self._bytes / elapsed
            self.sample_rate = nearest_rate(self.measured_bps)
        return self.sample_rate


def nearest_rate(bytes_per_s: float) -> int:
    """The standard rate whose s16le byte rate is closest to `bytes_per_s`."""
    return min(RATES, key=lambda rate: abs(rate * SAMPLE_WIDTH - bytes_per_s))


class DownlinkQueue:
    """The received 20 ms frames between a transport's audio thread and the call: bounded, oldest dropped.

    The audio thread `push`es, the call's thread `read`s (waiting up to a timeout); both under one
    condition, so neither ever blocks the other for longer than a deque operation."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.dropped = 0  # frames lost because the call read too slowly
        self._frames: deque[bytes] = deque()
        self._ready = threading.Condition()

    def push(self, frame: bytes) -> None:
        with self._ready:
            if len(self._frames) >= self.limit:
                self._frames.popleft()
                self.dropped += 1
            self._frames.append(frame)
            self._ready.notify()

    def read(self, timeout: float) -> bytes | None:
        with self._ready:
            if not self._ready.wait_for(lambda: bool(self._frames), timeout):
                return None
            return self._frames.popleft()

    def clear(self) -> None:
        with self._ready:
            self._frames.clear()
