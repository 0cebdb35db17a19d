"""CallAudio: the SIM7600's raw PCM port for one line: downlink frames in, paced uplink out.

The driver (`sim7600.py`) opens the port and hands it over; everything audio lives here, so call
control never waits on audio and audio never waits on call control. Owners, one per piece of state:

- audio-reader thread (`attach` starts it, `detach` ends it): the only reader of the port. It feeds
  the current call's `_Downlink` (rate detection, reframing, byte count), starts that call's uplink
  clock on the first downlink bytes, and writes `sample_rate` once the rate is measured.
- the driver's control thread: the only caller of `begin_call` / `end_call`, so a call's audio is
  started and stopped in the order the call-control steps ran (never on the AT reader, whose URC
  handlers must stay quick). Each call gets a fresh `_Downlink` and `PacedWriter`, published by one
  assignment, so the reader never sees half of one. Teardown calls `detach` once the driver has
  stopped its control thread.
- the frame queue (`DownlinkQueue`, its own lock): the reader pushes (dropping the oldest beyond
  `frame_queue`), `read_frame` (the call's thread) pops.
- the uplink queue (`UplinkQueue`, its own lock): `write` fills it, the uplink-writer thread drains
  it; `clear_tx` (the call's thread) empties it and flushes the port (`PacedWriter.discard` locks).
"""

from __future__ import annotations

import logging
import os
import select
import threading
import time
from collections.abc import Callable

import serial

from cellcall.line import LineError, frame_bytes
from cellcall.line.framing import DownlinkQueue, RateDetector, Reframer
from cellcall.line.pacing import PacedWriter, UplinkQueue
from cellcall.line.threads import stop_thread

log = logging.getLogger(__name__)

READ_CHUNK = 4096


class _Downlink:
    """One call's audio: its downlink decoding (audio-reader thread only) and its uplink writer."""

    def __init__(self, rate_window_s: float, writer: PacedWriter) -> None:
        self.detector = RateDetector(rate_window_s)
        self.reframer: Reframer | None = None
        self.held = bytearray()  # downlink bytes received while the rate is being measured
        self.received = 0
        self.writer = writer
        self.rate_known = threading.Event()
        self.live = True  # cleared by end_call (control thread); the reader then ignores this call


def _write_some(fd: int, data: bytes) -> int:
    """Non-blocking write: what the port took (0 when its buffer is full)."""
    try:
        return os.write(fd, data)
    except BlockingIOError:
        return 0


class CallAudio:
    """Downlink reader, rate detection, frame queue and paced uplink over one PCM port."""

    def __init__(
        self,
        *,
        rate_window_s: float,
        frame_queue: int,
        lead_ms: int,
        on_tx_started: Callable[[object], None],
        on_tx_idle: Callable[[], None],
        on_lost: Callable[[str], None],
    ) -> None:
        self.sample_rate = 8000  # written by the audio-reader thread when a call's rate is measured
        self._rate_window_s = rate_window_s
        self._lead_ms = lead_ms
        self._on_tx_started = on_tx_started
        self._on_tx_idle = on_tx_idle
        self._on_lost = on_lost
        self._downlink = DownlinkQueue(frame_queue)
        self._txq = UplinkQueue(self.sample_rate)
        self._port: serial.Serial | None = None
        self._reader: threading.Thread | None = None
        self._reader_stop = threading.Event()
        self._call: _Downlink | None = None

    # ---- port lifetime (the driver's open and teardown) --------------------------------------

    def attach(self, port: serial.Serial) -> None:
        """Start the audio-reader thread on `port` (opened by the driver, closed by it after `detach`)."""
        self._port = port
        self._reader_stop = threading.Event()
        self._reader = threading.Thread(target=self._read, args=(port, self._reader_stop), name="audio-reader", daemon=True)
        self._reader.start()

    def detach(self) -> None:
        """Stop the call's audio and the reader; the driver calls it after its control thread ended."""
        self._reader_stop.set()  # first, so the reader does not report the closing port as lost
        self.end_call()
        if self._reader is not None:
            stop_thread(self._reader, self._reader_stop)
        self._port = None

    # ---- a call's audio (control thread) -----------------------------------------------------

    def begin_call(self) -> None:
        """(Re)start measuring the downlink and pacing the uplink for the current call."""
        self.end_call()
        port = self._port
        if port is None:
            raise LineError("the audio port is not open")
        self._downlink.clear()
        fd = port.fileno()
        writer = PacedWriter(
            self._txq,
            lambda data: _write_some(fd, data),
            on_started=self._on_tx_started,
            on_idle=self._on_tx_idle,
            on_error=lambda exc: self._on_lost(f"audio port vanished: {exc}"),
            byte_rate=self.sample_rate * 2,
            lead_ms=self._lead_ms,
        )
        self._call = _Downlink(self._rate_window_s, writer)

    def end_call(self) -> None:
        """Stop the call's uplink writer (joins it) and drop queued uplink; idempotent."""
        call = self._call
        if call is not None and call.live:
            call.live = False
            call.writer.stop()
        self._txq.clear()

    def wait_rate(self, timeout: float) -> bool:
        """True once the current call's downlink rate is measured (PCM flows), within `timeout` s."""
        call = self._call
        return call is not None and call.live and call.rate_known.wait(timeout)

    # ---- downlink (audio-reader thread) ------------------------------------------------------

    def _read(self, port: serial.Serial, stop: threading.Event) -> None:
        """select + read, never blocked by anything else; EIO or end of file means the port vanished."""
        fd = port.fileno()
        while not stop.is_set():
            try:
                ready, _, _ = select.select([fd], [], [], 0.05)
                if not ready:
                    continue
                data = os.read(fd, READ_CHUNK)
            except (OSError, ValueError) as exc:
                if not stop.is_set():
                    self._on_lost(f"audio port vanished: {exc}")
                return
            if not data:
                if not stop.is_set():
                    self._on_lost("audio port vanished: end of file")
                return
            self._on_downlink(data, time.monotonic())

    def _on_downlink(self, data: bytes, now: float) -> None:
        call = self._call
        if call is None or not call.live:
            return
        if call.received == 0:
            # The modem's PCM clock starts with the first downlink bytes; before that it drops
            # uplink, so the uplink's clock (and its lead) starts here too.
            call.writer.start()
        call.received += len(data)
        reframer = call.reframer
        if reframer is None:
            call.held += data
            rate = call.detector.feed(len(data), now)
            if rate is None:
                return
            reframer = call.reframer = Reframer(frame_bytes(rate))
            self.sample_rate = rate
            call.writer.set_byte_rate(rate * 2)
            call.rate_known.set()
            data = bytes(call.held)
            call.held.clear()
        for frame in reframer.feed(data):
            self._push_frame(frame)

    def _push_frame(self, frame: bytes) -> None:
        self._downlink.push(frame)

    @property
    def frames_dropped(self) -> int:
        return self._downlink.dropped

    # ---- the call's side (any thread) ----------------------------------------------------------

    def read_frame(self, timeout: float) -> bytes | None:
        return self._downlink.read(timeout)

    def write(self, pcm: bytes, tag: object | None = None) -> None:
        self._txq.put(pcm, tag)

    def clear_tx(self) -> None:
        """Barge-in: drop the host queue and what the port's output buffer still holds."""
        self._txq.clear()
        port, writer = self._port, self.uplink
        if port is None:
            return
        try:
            flushed = port.out_waiting
            port.reset_output_buffer()
        except (serial.SerialException, OSError) as exc:
            log.warning("could not flush the audio port: %s", exc)
            return
        if writer is not None:
            writer.discard(flushed)

    def tx_queued_ms(self) -> float:
        writer = self.uplink
        pending = writer.pending_bytes if writer is not None else 0
        return (self._txq.queued_bytes + pending) * 1000 / (self.sample_rate * 2)

    @property
    def uplink(self) -> PacedWriter | None:
        """The running call's uplink writer, or None between calls."""
        call = self._call
        return call.writer if call is not None and call.live else None

    @property
    def downlink_bytes(self) -> int:
        """Downlink bytes received in the current (or last) call."""
        call = self._call
        return call.received if call is not None else 0
