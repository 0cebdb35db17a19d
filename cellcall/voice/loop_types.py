"""What the voice loop is given and what it gives back: the opening, the answering plan, the result.

Kept apart from the loop itself so the call (cellcall.call) and the opening's preparation
(cellcall.voice.opening) can build them without the loop's machinery. `Opening` is filled in by the
"opening" thread while the phone rings and read by the loop thread: its `prepared` event orders the two.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from cellcall.record import CallStatus, Turn, TurnLatency


class State(str, enum.Enum):
    LISTENING = "listening"
    THINKING = "thinking"
    SPEAKING = "speaking"
    HANGING_UP = "hanging-up"


@dataclass
class Opening:
    """How the agent opens. Filled in while the phone rings (text, then audio) and read when needed,
    so a slow preparation never delays the call: whatever is ready by then is used."""

    text: str | None  # None until the model has written it (goal without an opening line)
    audio: list[bytes] | None = None  # pre-synthesised at the TTS's rate
    speak_first: bool = False  # inbound: we answered, so we talk first
    fallback: str = "Hello, this is an automated assistant."
    prepared: threading.Event = field(default_factory=threading.Event)  # set when preparation ended
    wait_s: float = 15.0  # how long a reply waits for audio in preparation before synthesising itself
    apology: list[bytes] | None = None  # "sorry, I have to end the call", ready for when the engines fail

    def line(self) -> tuple[str, Callable[[], list[bytes] | None]]:
        """(text, audio source) to speak now. The audio source waits for a synthesis already under way
        (one synthesis, not two competing for the CPU) and gives None if it is not this text's."""
        text = self.text or self.fallback

        def audio() -> list[bytes] | None:
            self.prepared.wait(self.wait_s)
            return self.audio if self.text == text else None

        return text, audio


@dataclass
class LoopResult:
    reason: str
    status: CallStatus
    error: str | None = None
    tags: set[str] = field(default_factory=set)
    turns: list[Turn] = field(default_factory=list)
    latencies: list[TurnLatency] = field(default_factory=list)
    barge_ins: list[float] = field(default_factory=list)  # monotonic times the caller's speech stopped the agent
    backchannels: list[float] = field(default_factory=list)  # of those, the ones the agent went on after (mm-hm)
    answered_by: str = ""  # outbound: human | voicemail | ivr | unknown (cellcall.answering.screen.Answerer)
    dtmf_sent: list[str] = field(default_factory=list)  # keys pressed, in order
    ended_at: float | None = None  # monotonic: when the call's end was decided (a hang-up, a timer, a stop)
