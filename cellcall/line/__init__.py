"""The Line protocol: what every phone transport (SIM7600 modem, emulator, SIP) offers the call.

The voice loop and the call talk only to this shape, so a modem, the emulator and a SIP trunk
are interchangeable. Audio is raw s16le mono PCM in 20 ms frames at `sample_rate`.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

FRAME_MS = 20
SAMPLE_WIDTH = 2


def frame_bytes(sample_rate: int) -> int:
    """Bytes in one 20 ms s16le mono frame (320 at 8 kHz, 640 at 16 kHz)."""
    return sample_rate * FRAME_MS // 1000 * SAMPLE_WIDTH


class LineEventKind(str, enum.Enum):
    """What a line reports, from call control and from the audio thread."""

    RINGING = "ringing"  # outbound: the far end is alerting
    INCOMING = "incoming"  # inbound: RING (+ caller number once +CLIP arrives)
    ANSWERED = "answered"  # VOICE CALL: BEGIN and audio routed
    REMOTE_HANGUP = "remote_hangup"  # far end ended the call
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    MISSED = "missed"  # inbound call that ended before it was answered
    DTMF = "dtmf"  # detail = the digit
    TX_STARTED = "tx_started"  # the first byte of a tagged uplink chunk reached the port; tag = the tag
    TX_IDLE = "tx_idle"  # the uplink queue ran dry (playback finished)
    ERROR = "error"  # the line is unusable (port vanished, audio not routed...); detail says why


@dataclass(frozen=True)
class LineEvent:
    kind: LineEventKind
    detail: str = ""
    number: str | None = None
    tag: object | None = None
    at: float = field(default_factory=time.monotonic)


@dataclass(frozen=True)
class LineStatus:
    """What `cellcall doctor` and `cellcall status` show about a line."""

    ready: bool
    registered: bool | None = None
    operator: str | None = None
    signal_dbm: int | None = None
    sim: str | None = None
    model: str | None = None
    ports: dict[str, str] = field(default_factory=dict)
    detail: str = ""


class LineError(RuntimeError):
    """A line could not do what was asked (port missing, modem silent, audio not routed)."""


@runtime_checkable
class Line(Protocol):
    """A telephone line: call control, events, and a full-duplex 20 ms PCM stream."""

    @property
    def sample_rate(self) -> int:
        """8000 or 16000, detected from the measured downlink byte rate (read-only for the call)."""

    def open(self) -> None:
        """Open ports and initialise; raises LineError with a clear reason."""

    def close(self) -> None:
        """Hang up if needed and release everything; safe to call twice."""

    def status(self) -> LineStatus: ...

    def dial(self, number: str) -> None:
        """Start an outbound call to an E.164 number; the outcome arrives as events."""

    def answer(self) -> None:
        """Answer the ringing inbound call; ANSWERED follows once audio is routed."""

    def hangup(self) -> None:
        """End the current call (no-op when idle)."""

    def next_event(self, timeout: float) -> LineEvent | None:
        """The next event, or None after `timeout` seconds."""

    def read_frame(self, timeout: float) -> bytes | None:
        """The next downlink frame (exactly frame_bytes(sample_rate)), or None after `timeout`."""

    def write(self, pcm: bytes, tag: object | None = None) -> None:
        """Queue uplink audio; never blocks on pacing. A tag yields TX_STARTED when it is played."""

    def clear_tx(self) -> None:
        """Drop queued uplink audio and reset the port's output buffer (barge-in)."""

    def send_dtmf(self, digits: str) -> None:
        """Press phone keys during the answered call (AT+VTS on the modem, RFC 4733 on SIP); blocks until sent."""

    def tx_queued_ms(self) -> float:
        """Milliseconds of uplink audio still queued on the host side."""
