"""One established SIP call's audio on the loop's 20 ms clock: downlink frames in, uplink frames out.

The `sip-media` thread (one per established call) owns the call's `CallAudio` (baresip allows one
reader and one writer, from any thread): each 20 ms tick it moves what RTP delivered into exact
frames for `read_frame`, and hands the stack one uplink frame taken from the UplinkQueue (agent
audio, or silence), catching up by whole frames when the thread was late. baresip's aumem driver
never blocks, so a tick is a few microseconds. Downlink silence for `media_timeout_s` ends the call
(`on_dead`): a far end that vanished without a BYE must not hold the line open.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

import baresip

from cellcall.line import FRAME_MS, frame_bytes
from cellcall.line.framing import Reframer
from cellcall.line.pacing import UplinkQueue
from cellcall.line.threads import stop_thread

log = logging.getLogger(__name__)

TICK_S = FRAME_MS / 1000
LEAD_FRAMES = 2  # uplink frames kept in the stack's buffer: absorbs a late tick without a gap
HISTORY = 3000  # send intervals kept for `send_intervals_ms` (one minute)


class PcmStream(Protocol):
    """What baresip's CallAudio offers (read never blocks; write returns the bytes taken)."""

    def read(self, max_bytes: int) -> bytes: ...
    def write(self, pcm: bytes) -> int: ...
    def flush_tx(self) -> None: ...


class MediaPump:
    """The 20 ms clock between one call's PcmStream and the Line's frame queue / uplink queue."""

    def __init__(
        self,
        stream: PcmStream,
        sample_rate: int,
        txq: UplinkQueue,
        push_frame: Callable[[bytes], None],
        on_tx: Callable[[list[object], bool], None],
        on_dead: Callable[[str], None],
        media_timeout_s: float,
    ) -> None:
        self._stream = stream
        self._size = frame_bytes(sample_rate)
        self._reframer = Reframer(self._size)
        self._txq = txq
        self._push_frame = push_frame
        self._on_tx = on_tx
        self._on_dead = on_dead
        self._media_timeout_s = media_timeout_s
        self._flush = threading.Event()
        self._stop = threading.Event()
        self.send_times: deque[float] = deque(maxlen=HISTORY)
        self.rx_bytes = 0
        self._last_rx = time.monotonic()
        self._lead: deque[bool] = deque([False] * LEAD_FRAMES, maxlen=LEAD_FRAMES)  # media thread only
        self._lead_voiced = 0  # agent frames among the last LEAD_FRAMES handed to the stack (read by any thread)
        self._thread = threading.Thread(target=self._run, name="sip-media", daemon=True)

    def start(self) -> MediaPump:
        self._thread.start()
        return self

    def stop(self) -> None:
        stop_thread(self._thread, self._stop)

    def flush(self) -> None:
        """Barge-in: the media thread drops what the stack still holds for the uplink on its next tick."""
        self._flush.set()

    @property
    def pending_ms(self) -> float:
        """Agent audio still in the stack's buffer: the lead frames that carried speech, not silence fill
        (a constant here made the loop think the agent was always talking, so caller speech was a barge-in)."""
        return self._lead_voiced * FRAME_MS

    def send_intervals_ms(self) -> list[float]:
        times = list(self.send_times)
        return [(b - a) * 1000 for a, b in zip(times, times[1:], strict=False)]

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._loop()
                return
            except baresip.AudioRestarted:  # a re-INVITE replaced the streams: the next call rebinds
                log.info("SIP audio renegotiated; media goes on")
            except baresip.BaresipError as exc:  # the stream is gone (call closed under us): end quietly
                if not self._stop.is_set():
                    log.info("SIP media ended: %s", exc)
                return

    def _loop(self) -> None:
        start = time.monotonic()
        sent = 0
        for _ in range(LEAD_FRAMES):
            self._send_one()
            sent += 1
        while not self._stop.is_set():
            now = time.monotonic()
            data = self._stream.read(self._size * 8)
            if data:
                self._last_rx = now
                self.rx_bytes += len(data)
                for frame in self._reframer.feed(data):
                    self._push_frame(frame)
            elif now - self._last_rx >= self._media_timeout_s:
                self._on_dead(f"no audio from the far end for {self._media_timeout_s:g} s")
                return
            if self._flush.is_set():
                self._flush.clear()
                self._stream.flush_tx()
                self._lead.extend([False] * LEAD_FRAMES)
                self._lead_voiced = 0
            due = int((now - start) / TICK_S) + LEAD_FRAMES
            while sent < due:  # one frame per elapsed tick; more only after a late wake-up
                self._send_one()
                sent += 1
            self._stop.wait(max(0.0, start + (sent - LEAD_FRAMES + 1) * TICK_S - time.monotonic()))

    def _send_one(self) -> None:
        taken = self._txq.take(self._size)
        self._stream.write(taken.data)
        self.send_times.append(time.monotonic())
        self._lead.append(bool(taken.data.strip(b"\0")))
        self._lead_voiced = sum(self._lead)
        if taken.tags or taken.went_idle:
            self._on_tx(taken.tags, taken.went_idle)
