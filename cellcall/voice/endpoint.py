"""Endpointing: from per-frame speech decisions to turn events, with a speculative point.

A turn starts after `min_speech_ms` of speech (shorter blips are clicks and coughs). Inside a turn,
silence shorter than `speculative_ms` is a breath; at `speculative_ms` the loop may start STT and the
LLM early; at `endpoint_ms` the turn ends. Speech that returns before the end RESUMES the turn, so a
caller reading out a phone number with pauses is not cut off. Pure logic on timestamps: unit-testable.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from cellcall.line import FRAME_MS


class EndpointKind(str, enum.Enum):
    SPEECH_START = "speech_start"  # at = when the first frame of the turn's speech arrived
    SPECULATIVE = "speculative"  # a pause long enough to start work early
    RESUMED = "resumed"  # speech came back after SPECULATIVE: discard early work
    END_OF_TURN = "end_of_turn"  # at = end of the last speech frame


@dataclass(frozen=True)
class EndpointEvent:
    kind: EndpointKind
    at: float  # monotonic seconds


class Endpointer:
    """Feed one decision per 20 ms frame with its arrival time; get turn events back."""

    def __init__(self, min_speech_ms: int, speculative_ms: int, endpoint_ms: int, resume_ms: int = 60) -> None:
        if not 0 < speculative_ms <= endpoint_ms:
            raise ValueError("need 0 < speculative_silence_ms <= endpoint_silence_ms")
        if min_speech_ms < FRAME_MS:
            raise ValueError(f"min_speech_ms must be at least one frame ({FRAME_MS} ms)")
        self.min_speech_ms = min_speech_ms
        self.speculative_ms = speculative_ms
        self.endpoint_ms = endpoint_ms
        self.resume_ms = resume_ms
        self.reset()

    def reset(self) -> None:
        """Forget any turn in progress (after the agent took the floor, or a barge-in was handled)."""
        self.in_turn = False
        self.speculated = False
        self._run_ms = 0  # consecutive speech frames, in ms
        self._silence_ms = 0  # pause since the last confirmed speech, in ms (frame clock, jitter-free)
        self._run_start = 0.0
        self._last_speech_end = 0.0

    def push(self, speech: bool, at: float) -> EndpointEvent | None:
        """One frame's decision; `at` is when the frame arrived (its end). Timing counts frames, not `at`."""
        if speech:
            if self._run_ms == 0:
                self._run_start = at - FRAME_MS / 1000.0
            self._run_ms += FRAME_MS
            return self._on_speech(at)
        self._run_ms = 0
        return self._on_silence() if self.in_turn else None

    def _on_speech(self, at: float) -> EndpointEvent | None:
        if not self.in_turn:
            if self._run_ms >= self.min_speech_ms:
                self.in_turn, self._last_speech_end = True, at
                return EndpointEvent(EndpointKind.SPEECH_START, self._run_start)
            return None
        if self._silence_ms and self._run_ms < self.resume_ms:
            return self._on_silence()  # a blip inside a pause: the pause goes on
        self._silence_ms, self._last_speech_end = 0, at
        if self.speculated:
            self.speculated = False
            return EndpointEvent(EndpointKind.RESUMED, at)
        return None

    def _on_silence(self) -> EndpointEvent | None:
        self._silence_ms += FRAME_MS
        if self._silence_ms >= self.endpoint_ms:
            end = self._last_speech_end
            self.reset()
            return EndpointEvent(EndpointKind.END_OF_TURN, end)
        if not self.speculated and self._silence_ms >= self.speculative_ms:
            self.speculated = True
            return EndpointEvent(EndpointKind.SPECULATIVE, self._last_speech_end)
        return None
