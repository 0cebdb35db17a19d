"""Inbound calls while the runner is idle: count the rings, pick the inbound goal, answer or refuse.

One `InboundDesk` per runner, owned by the runner thread: it alone holds the call now ringing
and the callers already recorded as missed (so the modem's late MISSED_CALL is not a second record).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cellcall.goal import Goal, GoalError
from cellcall.line import LineError, LineEvent, LineEventKind
from cellcall.watch import reports

if TYPE_CHECKING:
    from cellcall.watch.calltap import CallLine
    from cellcall.watch.runner import Runner


@dataclass
class _Ringing:
    """One inbound call while it rings (several RING / INCOMING events)."""

    number: str | None
    rings: int = 0
    last_at: float = field(default_factory=time.monotonic)
    ignored: bool = False  # no inbound goal or inbound disabled: let it ring out (MISSED follows)


def caller_refusal(number: str | None, allow: list[str], deny: list[str]) -> str | None:
    """Why an inbound caller is not answered (deny list, or not on a non-empty allow list)."""
    for prefix in deny:
        if number and number.startswith(prefix.replace(" ", "")):
            return f"{number} matches inbound.deny_callers {prefix}"
    if allow and not (number and any(number.startswith(p.replace(" ", "")) for p in allow)):
        return f"{number or 'a withheld number'} is not on inbound.allow_callers"
    return None


class InboundDesk:
    """Answers the phone for the runner between outbound calls."""

    def __init__(self, runner: Runner) -> None:
        self._runner = runner
        self._ringing: _Ringing | None = None
        self._already_recorded: dict[str, float] = {}  # caller -> until when a late MISSED is a repeat

    def forget(self) -> None:
        """The line went away: whatever rang is over."""
        self._ringing = None

    def is_ringing(self) -> bool:
        """True while an inbound call rings (never dial out then); a long gap since the last RING ends it."""
        if self._ringing is not None and time.monotonic() - self._ringing.last_at > self._runner.options.ring_gap_s:
            self._ringing = None
        return self._ringing is not None

    def idle_event(self, event: LineEvent) -> None:
        if event.kind is LineEventKind.ERROR:
            self._runner.line_lost(event.detail or "line error")
        elif event.kind is LineEventKind.INCOMING:
            self._incoming(event)
        elif event.kind is LineEventKind.MISSED:
            ringing, self._ringing = self._ringing, None
            self._idle_missed(event.number or (ringing.number if ringing else None))

    def rang_during_call(self, tap: CallLine) -> None:
        """Record the calls that rang in during a call as missed, once each."""
        missed = {e.number: e.kind for e in tap.rang_in if e.number}
        for number, kind in missed.items():
            self.missed(number, "missed: rang during another call")
            if kind is LineEventKind.INCOMING:  # still ringing, perhaps: its MISSED may follow
                self._already_recorded[number] = time.monotonic() + 60.0

    def missed(self, number: str | None, reason: str) -> None:
        """A missed-call record in the outbox (and a log line)."""
        runner = self._runner
        folder = reports.missed(runner.outbox_root, number, reason)
        runner.log.emit("missed-call", number=number, reason=reason, outbox=str(folder))
        runner.publish_report(folder, f"cellcall: missed call from {number or 'unknown'}")

    def _incoming(self, event: LineEvent) -> None:
        runner = self._runner
        now = time.monotonic()
        ringing = self._ringing
        if (
            ringing is None
            or now - ringing.last_at > runner.options.ring_gap_s
            or (event.number and ringing.number and event.number != ringing.number)
        ):
            self._ringing = _Ringing(event.number)
            runner.log.emit("incoming", number=event.number)
        ringing = self._ringing
        assert ringing is not None
        ringing.rings += 1
        ringing.last_at = now
        ringing.number = event.number or ringing.number
        if ringing.ignored:
            return
        goal, reason = self._inbound_goal()
        if goal is None:
            ringing.ignored = True
            runner.log.emit("incoming-not-answered", number=ringing.number, reason=reason)
            return
        inbound = runner.settings.inbound
        if ringing.number is None and ringing.rings < inbound.answer_after_rings:
            return  # the caller id (+CLIP) usually follows the first RING
        refusal = caller_refusal(ringing.number, inbound.allow_callers, inbound.deny_callers)
        if refusal:
            self._ringing = None  # hung up: the next RING is another call
            runner.log.emit("incoming-rejected", number=ringing.number, reason=refusal)
            self._hangup_quietly()
            self.missed(ringing.number, f"rejected: {refusal}")
            return
        if ringing.rings >= inbound.answer_after_rings:
            self._ringing = None
            self._answer(goal, ringing.number)

    def _inbound_goal(self) -> tuple[Goal | None, str]:
        runner = self._runner
        if not runner.settings.inbound.enabled:
            return None, "inbound.enabled is false"
        if not runner.inbound_path.is_file():
            return None, f"no inbound goal at {runner.inbound_path}"
        try:
            goal = runner.load_goal(runner.inbound_path)
        except (GoalError, OSError) as exc:
            return None, f"inbound goal invalid: {str(exc).splitlines()[0]}"
        return goal, ""

    def _hangup_quietly(self) -> None:
        try:
            assert self._runner.line is not None
            self._runner.line.hangup()
        except LineError as exc:
            self._runner.line_lost(str(exc))

    def _idle_missed(self, number: str | None) -> None:
        if number and self._already_recorded.pop(number, 0.0) > time.monotonic():
            return  # recorded when it rang during a call; this is the modem's late MISSED_CALL for it
        self.missed(number, "missed: the caller hung up before the answer")

    def _answer(self, goal: Goal, number: str | None) -> None:
        runner = self._runner
        runner.log.emit("answering", number=number, goal=goal.name)
        outcome = runner.observed(lambda line, obs, stop: runner.answer(goal, line, number, obs, stop), None, goal.name, number)
        runner.log.emit(
            "inbound-done",
            number=number,
            status=outcome.status.value,
            outbox=str(outcome.folder) if outcome.folder else None,
            error=outcome.error,
        )
        runner.commit(outcome.folder, f"cellcall: inbound call from {number or 'unknown'} {outcome.status.value}")
