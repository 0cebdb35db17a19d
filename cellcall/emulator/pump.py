"""The emulated modem's audio clock for one route: both directions paced at exactly the sample rate.

The emulator's audio thread alone calls `run`; the AT thread only creates a pump when AT+CPCMREG=1
is accepted and drops it when the route or the call ends (the emulator publishes it by assignment).
Uplink is consumed with back-pressure (the modem's own buffer is small) and handed to the far end;
downlink is written in real time, and what the host did not read is dropped in whole samples.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from cellcall.emulator.farend import FarEnd

log = logging.getLogger(__name__)

TICK_S = (0.006, 0.014)  # audio thread wake-ups, jittered so chunk sizes are irregular like USB transfers
UPLINK_BUFFER_MS = 40  # the modem's own uplink buffer; beyond it the host's writes back up in the port


class AudioPort(Protocol):
    """The host side of the route: the audio pty (PtyPort), or a SIP call's relay (sip.RelayPort)."""

    @property
    def present(self) -> bool: ...

    def read(self, limit: int) -> bytes: ...

    def write(self, data: bytes) -> int: ...


@dataclass
class AudioPump:
    """The modem's audio clock for one route: paces both directions at exactly `rate`."""

    farend: FarEnd | None
    rate: int
    t0: float
    stall_at: float | None
    played: int = 0  # uplink samples played to the network
    written: int = 0  # downlink bytes written to the port
    dropped: int = 0  # downlink bytes the host did not read in time
    up: bytearray = field(default_factory=bytearray)
    down: bytearray = field(default_factory=bytearray)

    def run(self, now: float, port: AudioPort) -> None:
        due = int((now - self.t0) * self.rate)
        need = due - self.played
        if need > 0:
            stalled = self.stall_at is not None and now >= self.stall_at
            want = 2 * need
            if not stalled:
                self.up += port.read(want + self.rate * 2 * UPLINK_BUFFER_MS // 1000 - len(self.up))
            take = bytes(self.up[: min(want, len(self.up) - len(self.up) % 2)])  # whole samples only:
            del self.up[: len(take)]  # an odd byte left behind starts the next sample
            short_from = len(take) if len(take) < want and not stalled else None
            self.played = due
            if self.farend is not None:
                self.farend.uplink(take + bytes(want - len(take)), short_from)
        count = int((now - self.t0) * self.rate * 2) - self.written
        if count > 0:
            if len(self.down) < count:
                samples = (count - len(self.down) + 1) // 2
                self.down += self.farend.downlink(samples) if self.farend else bytes(2 * samples)
            chunk = bytes(self.down[:count])
            del self.down[:count]
            sent = port.write(chunk)
            lost = count - sent
            if lost % 2:  # drop whole samples only, so the host's stream stays on 16-bit boundaries
                self.down[:0] = chunk[-1:]
                lost -= 1
            self.dropped += lost
            self.written += count


def run_audio_clock(
    port: AudioPort, stop: threading.Event, current: Callable[[], AudioPump | None], drop: Callable[[], None]
) -> None:
    """The emulator's audio thread: run the `current` pump every tick until `stop`; `drop` it when it fails."""
    rng = random.Random(7)
    while not stop.wait(rng.uniform(*TICK_S)):
        if not port.present:
            continue
        pump = current()
        now = time.monotonic()
        if pump is None or now < pump.t0:
            port.read(65536)  # not routed: the modem discards what the host sends
            continue
        try:
            pump.run(now, port)
        except Exception:  # keep the clock running; a far-end bug costs this route, not the modem
            log.exception("emulated audio route failed; dropping it")
            drop()
