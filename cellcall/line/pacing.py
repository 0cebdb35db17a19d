"""The uplink: agent audio queued by the call, written to the PCM port at exactly real time.

The modem plays what it receives at its sample clock and has a small buffer: writing too fast
builds a backlog (late barge-in, pitch drop), too slow starves it (choppy audio). So a writer
thread keeps the bytes handed to the port at `elapsed * byte_rate + lead` by a monotonic clock,
fills silence when nothing is queued, and fades the edges of agent audio (10 ms) to avoid clicks.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from cellcall.line import SAMPLE_WIDTH
from cellcall.line.threads import stop_thread

log = logging.getLogger(__name__)

FADE_MS = 10
LEAD_MS = 50


@dataclass
class Taken:
    """One block pulled from the queue: audio (or silence), tags whose first byte is in it, drained?"""

    data: bytes
    tags: list[object] = field(default_factory=list)
    went_idle: bool = False


class UplinkQueue:
    """Thread-safe FIFO of agent PCM; `take(n)` always returns n bytes, silence-filled and faded."""

    def __init__(self, sample_rate: int = 8000, fade_ms: int = FADE_MS) -> None:
        self._chunks: deque[tuple[bytearray, object | None]] = deque()
        self._offset = 0  # bytes already taken from the first chunk
        self._total = 0
        self._lock = threading.Lock()
        self._fade_ms = fade_ms
        self._fade_in_done = 0  # samples played since audio resumed after idle
        self._playing = False
        self.set_sample_rate(sample_rate)

    def set_sample_rate(self, sample_rate: int) -> None:
        self._fade_samples = max(1, sample_rate * self._fade_ms // 1000)

    def put(self, pcm: bytes, tag: object | None = None) -> None:
        if len(pcm) % SAMPLE_WIDTH:
            raise ValueError(f"uplink audio must be whole s16le samples, got {len(pcm)} bytes")
        if not pcm:
            return
        with self._lock:
            self._chunks.append((bytearray(pcm), tag))
            self._total += len(pcm)

    def clear(self) -> int:
        """Drop everything queued; returns the bytes dropped."""
        with self._lock:
            dropped = self._total
            self._chunks.clear()
            self._offset = self._total = 0
            self._playing = False
            return dropped

    @property
    def queued_bytes(self) -> int:
        return self._total

    def take(self, nbytes: int) -> Taken:
        if nbytes % SAMPLE_WIDTH:
            raise ValueError("take() needs whole samples")
        out = bytearray(nbytes)
        taken = Taken(b"")
        with self._lock:
            remaining_before = self._total
            pos = 0
            while pos < nbytes and self._chunks:
                chunk, tag = self._chunks[0]
                if self._offset == 0 and tag is not None:
                    taken.tags.append(tag)
                count = min(nbytes - pos, len(chunk) - self._offset)
                out[pos : pos + count] = chunk[self._offset : self._offset + count]
                pos += count
                self._offset += count
                if self._offset == len(chunk):
                    self._chunks.popleft()
                    self._offset = 0
            self._total -= pos
            if pos:
                self._fade(out, pos, remaining_before)
                taken.went_idle = self._total == 0
                self._playing = not taken.went_idle
        taken.data = bytes(out)
        return taken

    def _fade(self, out: bytearray, audio_bytes: int, remaining_before: int) -> None:
        """Fade in after idle, fade out over the last samples before the queue runs dry."""
        samples = np.frombuffer(out, dtype="<i2", count=audio_bytes // SAMPLE_WIDTH).astype(np.float32)
        fade = self._fade_samples
        index = np.arange(samples.size, dtype=np.float32)
        if not self._playing:
            self._fade_in_done = 0
        gain_in = np.minimum(1.0, (self._fade_in_done + index + 1) / fade)
        gain_out = np.minimum(1.0, (remaining_before // SAMPLE_WIDTH - index) / fade)
        self._fade_in_done += samples.size
        gain = np.minimum(gain_in, gain_out)
        if gain.min() < 1.0:
            faded = np.clip(np.rint(samples * gain), -32768, 32767).astype("<i2")
            out[:audio_bytes] = faded.tobytes()


class PacedWriter:
    """Writer thread: real-time pacing by a monotonic clock with a small lead, never a burst."""

    def __init__(
        self,
        queue: UplinkQueue,
        write_some: Callable[[bytes], int],
        *,
        on_started: Callable[[object], None],
        on_idle: Callable[[], None],
        on_error: Callable[[Exception], None],
        byte_rate: int = 16000,
        lead_ms: int = LEAD_MS,
        tick_s: float = 0.005,
    ) -> None:
        self._queue = queue
        self._write_some = write_some
        self._on_started = on_started
        self._on_idle = on_idle
        self._on_error = on_error
        self._lead_ms = lead_ms
        self._tick_s = tick_s
        self._lock = threading.Lock()
        self._pending = bytearray()  # taken from the queue, not yet accepted by the port
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="uplink-writer", daemon=True)
        self.bytes_sent = 0
        self.underruns = 0  # times the modem must have run dry, by our clock
        self.skipped_bytes = 0  # time (in bytes) it played silence for; never made up later
        self._dry = True  # the modem's buffer starts empty: the first tick's catch-up is not an underrun
        self.max_gap_s = 0.0  # longest time between two ticks: CPU starvation beyond the lead underruns the modem
        self._byte_rate = byte_rate
        self._t0 = 0.0

    @property
    def byte_rate(self) -> int:
        return self._byte_rate

    @property
    def pending_bytes(self) -> int:
        return len(self._pending)

    def start(self) -> PacedWriter:
        self._t0 = time.monotonic()
        self._thread.start()
        return self

    def stop(self) -> None:
        stop_thread(self._thread, self._stop)

    def set_byte_rate(self, byte_rate: int) -> None:
        """Switch rate (8 -> 16 kHz detected) without a burst or a gap."""
        with self._lock:
            self._byte_rate = byte_rate
            self._queue.set_sample_rate(byte_rate // SAMPLE_WIDTH)
            self._anchor(time.monotonic())

    def discard(self, flushed_from_port: int) -> None:
        """Forget pending bytes and the `flushed_from_port` bytes the port's buffer dropped (barge-in).

        The clock is kept, so the next tick refills the lead with silence at once: the modem
        must not starve because its feed was flushed. Either drop can end mid-sample (the port
        takes odd byte counts); one padding byte then puts the modem back on 16-bit samples,
        or every later sample would be noise.
        """
        with self._lock:
            self._pending.clear()
            self.bytes_sent = max(0, self.bytes_sent - flushed_from_port)
            if self.bytes_sent % SAMPLE_WIDTH:
                self._pending += bytes(SAMPLE_WIDTH - self.bytes_sent % SAMPLE_WIDTH)

    def _lead(self) -> int:
        return self._byte_rate * self._lead_ms // 1000

    def _anchor(self, now: float) -> None:
        """Set the clock origin so that the target equals what is already sent or pending."""
        self._t0 = now - (self.bytes_sent + len(self._pending) - self._lead()) / self._byte_rate

    def _run(self) -> None:
        last = time.monotonic()
        while not self._stop.wait(self._tick_s):
            now = time.monotonic()
            self.max_gap_s, last = max(self.max_gap_s, now - last), now
            try:
                self._tick()
            except Exception as exc:  # noqa: BLE001 - the port vanished (OSError / SerialException)
                if not self._stop.is_set():
                    self._on_error(exc)
                return

    def _tick(self) -> None:
        now = time.monotonic()
        with self._lock:
            ahead = self.bytes_sent + len(self._pending)
            played = int((now - self._t0) * self._byte_rate)  # the modem's playback position, by our clock
            if ahead < played:
                # It ran dry (this thread was starved, or the port stopped taking bytes) and played
                # silence meanwhile. Owing it that time would add the gap to the latency for good.
                self.underruns += not self._dry
                self.skipped_bytes += played - ahead
                self._t0 += (played - ahead) / self._byte_rate
                played = ahead
            self._dry = ahead <= played
            target = played + self._lead()
            # Hold at most one lead's worth the port has not taken: a stalled port stalls us too.
            need = min(target - ahead, self._lead() - len(self._pending)) // SAMPLE_WIDTH * SAMPLE_WIDTH
            taken = self._queue.take(need) if need > 0 else None
            if taken is not None:
                self._pending += taken.data
            if self._pending:
                accepted = self._write_some(bytes(self._pending))
                del self._pending[:accepted]
                self.bytes_sent += accepted
        if taken is not None:
            for tag in taken.tags:
                self._on_started(tag)
            if taken.went_idle:
                self._on_idle()
