"""The plain data model of one call: what the outbox renders and what call.json holds.

Kept free of I/O so reports render in tests without a call, and so every layer agrees on names.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any


class CallStatus(str, enum.Enum):
    COMPLETED = "completed"
    NO_ANSWER = "no-answer"
    BUSY = "busy"
    FAILED = "failed"
    REFUSED = "refused"
    INTERRUPTED = "interrupted"
    VOICEMAIL = "voicemail"  # a mailbox answered (a message left or not: see hangup_reason)


class ObjectiveMet(str, enum.Enum):
    YES = "yes"
    NO = "no"
    UNKNOWN = "unknown"


class Direction(str, enum.Enum):
    OUTBOUND = "outbound"
    INBOUND = "inbound"


class Speaker(str, enum.Enum):
    AGENT = "agent"
    CALLER = "caller"  # the far end, whoever placed or answered the call
    SYSTEM = "system"  # line events worth showing in the transcript (answered, DTMF, hang-up)


@dataclass
class Turn:
    """One utterance. `at_s` is seconds since the call was answered (or placed, before that)."""

    index: int
    speaker: Speaker
    text: str
    at_s: float
    barged_in: bool = False  # agent speech cut off by the caller
    spoken_text: str | None = None  # what was actually played before a barge-in cut it


@dataclass
class Evidence:
    """A verbatim sentence of the other party's turn `turn` that backs the objective verdict."""

    turn: int
    quote: str


@dataclass
class Fact:
    """Something learned on the call: `text` in short, `quote` verbatim from turn `turn` (None: an old report)."""

    text: str
    turn: int | None = None
    quote: str = ""


@dataclass
class TurnLatency:
    """Milliseconds from the end of the caller's speech, per agent reply. None = not reached."""

    turn: int
    endpoint_ms: float | None = None  # end of speech -> endpoint decided
    stt_ms: float | None = None  # end of speech -> final transcript
    llm_first_token_ms: float | None = None
    llm_first_sentence_ms: float | None = None
    tts_first_audio_ms: float | None = None
    first_audio_ms: float | None = None  # end of speech -> first agent audio frame written to the line
    voice_to_voice_ms: float | None = None  # as measured by the far end (emulator), when known
    barge_in_stop_ms: float | None = None
    served_by: str | None = None  # with engines.relay: "relay", "local" or e.g. "stt=relay llm=local tts=local"

    SPANS = (
        "endpoint_ms",
        "stt_ms",
        "llm_first_token_ms",
        "llm_first_sentence_ms",
        "tts_first_audio_ms",
        "first_audio_ms",
        "voice_to_voice_ms",
    )


@dataclass
class CallRecord:
    call_id: str
    goal: str  # goal name (file stem or id)
    number: str | None
    direction: Direction
    status: CallStatus
    started: datetime
    goal_path: str | None = None
    objective: str = ""
    objective_met: ObjectiveMet = ObjectiveMet.UNKNOWN
    objective_evidence: list[Evidence] = field(default_factory=list)  # what the other party said, verbatim
    duration_s: float = 0.0
    hangup_reason: str = ""  # e.g. "agent [HANGUP]", "remote hang-up", "silence timeout", "policy: ..."
    answered_by: str = ""  # outbound, once answered: human | voicemail | ivr | unknown
    dtmf_sent: list[str] = field(default_factory=list)  # keys the agent pressed, in order
    summary: str = ""
    outcome: str = ""
    facts: list[Fact] = field(default_factory=list)
    next_steps: list[str] = field(default_factory=list)
    turns: list[Turn] = field(default_factory=list)
    latency: list[TurnLatency] = field(default_factory=list)
    error: str | None = None
    tags: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def new(cls, goal: str, number: str | None, direction: Direction, status: CallStatus, **fields: Any) -> CallRecord:
        """A record for a call starting now, with a fresh id (the one way records are made)."""
        return cls(
            call_id=uuid.uuid4().hex[:12],
            goal=goal,
            number=number,
            direction=direction,
            status=status,
            started=datetime.now(UTC),
            **fields,
        )

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (enums as values, datetimes as ISO 8601)."""

        def clean(value: Any) -> Any:
            if isinstance(value, enum.Enum):
                return value.value
            if isinstance(value, datetime):
                return value.isoformat()
            if isinstance(value, dict):
                return {k: clean(v) for k, v in value.items()}
            if isinstance(value, list):
                return [clean(v) for v in value]
            return value

        return clean(asdict(self))
