"""What the runner puts between one call and the rest of the appliance.

`CallLine` is the line as a call sees it (calls ringing in meanwhile are set aside, a lost line is
noticed); `CallObserver` follows the call for the event log and the claim's state file; `Outcome`
is what the runner keeps of a finished call. All three live on the runner thread for one call.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cellcall import observe
from cellcall.line import Line, LineEvent, LineEventKind
from cellcall.record import CallStatus, Turn, TurnLatency

if TYPE_CHECKING:
    from cellcall.watch.inbox import Claim
    from cellcall.watch.runner import Runner


class CallObserver(observe.CallObserver):
    """Follows one call for the log and, for a claimed goal, the state file (outbox folder first)."""

    def __init__(self, runner: Runner, claim: Claim | None, label: str) -> None:
        self._runner = runner
        self._claim = claim
        self._label = label
        self.folder: Path | None = None

    def on_outbox(self, folder: Path) -> None:
        self.folder = Path(folder)
        if self._claim is not None:
            self._runner.inbox.update(self._claim, outbox=str(folder))
        self._runner.publish(current={"goal": self._label, "outbox": str(folder)})
        self._runner.log.emit("call-outbox", goal=self._label, folder=str(folder))

    def on_state(self, state: str) -> None:
        self._runner.log.emit("call-state", goal=self._label, state=state)

    def on_turn(self, turn: Turn) -> None:
        self._runner.log.emit(
            "call-turn", goal=self._label, index=turn.index, speaker=turn.speaker.value, barged_in=turn.barged_in or None
        )  # never the words: they stay in the outbox

    def on_latency(self, latency: TurnLatency) -> None:
        self._runner.log.emit("call-latency", goal=self._label, turn=latency.turn, first_audio_ms=latency.first_audio_ms)


class CallLine:
    """The line as a call sees it: calls ringing in meanwhile are set aside (to be recorded as
    missed) instead of reaching the voice loop, and a lost line is noticed for the runner."""

    def __init__(self, line: Line, caller: str | None = None) -> None:
        self._line = line
        self._caller = caller
        self.rang_in: list[LineEvent] = []
        self.lost: str | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._line, name)

    def next_event(self, timeout: float) -> LineEvent | None:
        deadline = time.monotonic() + timeout
        while True:
            event = self._line.next_event(max(0.0, deadline - time.monotonic()))
            if event is None:
                return None
            if event.kind is LineEventKind.ERROR:
                self.lost = event.detail or "line error"
            if event.kind in (LineEventKind.INCOMING, LineEventKind.MISSED):
                if event.number and event.number != self._caller:
                    self.rang_in.append(event)
                continue
            return event


@dataclass
class Outcome:
    status: CallStatus
    folder: Path | None
    report: Path | None
    error: str | None = None
