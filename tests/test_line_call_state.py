"""CallTracker: URCs in, line events and control-thread steps out; handlers never do the slow work themselves."""

from __future__ import annotations

import threading
import time

from cellcall.line import LineEvent, LineEventKind
from cellcall.line.at import parse_urc
from cellcall.line.call_state import CallState, CallTracker

K = LineEventKind


class Recorder:
    """Stands in for the driver: collects events and the steps handed to its control thread."""

    def __init__(self) -> None:
        self.events: list[LineEvent] = []
        self.steps: list[tuple[str, int | None, str]] = []  # (step, call id, thread that handed it over)
        self.calls = CallTracker(self.events.append, on_begin=self._begin, on_over=self._over)

    def _begin(self, call_id: int) -> None:
        self.steps.append(("route", call_id, threading.current_thread().name))

    def _over(self) -> None:
        self.steps.append(("stop-audio", None, threading.current_thread().name))

    def urc(self, line: str) -> None:
        urc = parse_urc(line)
        assert urc is not None, line
        self.calls.on_urc(urc)


def test_an_answered_call_hands_routing_and_stopping_to_the_control_thread_once() -> None:
    rec = Recorder()
    call_id = rec.calls.begin(CallState.DIALING)
    rec.urc('+CLCC: 1,0,3,0,0,"+14155550132",145')
    rec.urc("VOICE CALL: BEGIN")
    rec.urc("VOICE CALL: BEGIN")  # a repeat changes nothing
    assert rec.calls.state is CallState.ACTIVE
    rec.urc("VOICE CALL: END: 000017")
    rec.urc("NO CARRIER")  # right after END: not a second hang-up
    assert [(e.kind, e.detail) for e in rec.events] == [(K.RINGING, "alerting"), (K.REMOTE_HANGUP, "call ended after 17 s")]
    assert [(step, cid) for step, cid, _ in rec.steps] == [("route", call_id), ("stop-audio", None)]
    assert rec.calls.state is CallState.IDLE


def test_the_end_of_a_call_the_host_hung_up_is_not_reported_but_still_stops_the_audio() -> None:
    rec = Recorder()
    rec.calls.begin(CallState.DIALING)
    rec.urc("VOICE CALL: BEGIN")
    assert rec.calls.hang_up_by_host()
    rec.urc("VOICE CALL: END: 000003")
    assert rec.events == []
    assert [step for step, _, _ in rec.steps] == ["route", "stop-audio"]
    assert not rec.calls.hang_up_by_host()  # idle now: nothing to hang up


def test_busy_no_answer_and_an_unanswered_ring_become_their_own_events() -> None:
    rec = Recorder()
    rec.calls.begin(CallState.DIALING)
    rec.urc("BUSY")
    rec.calls.begin(CallState.DIALING)
    rec.urc("NO ANSWER")
    rec.urc("RING")
    rec.urc('+CLIP: "+27839776374",145,,,"",0')
    rec.urc("MISSED_CALL: 10:31AM +27839776374")
    assert [(e.kind, e.number) for e in rec.events] == [
        (K.BUSY, None),
        (K.NO_ANSWER, None),
        (K.INCOMING, "+27839776374"),
        (K.MISSED, "+27839776374"),
    ]
    assert rec.calls.state is CallState.IDLE


def test_a_ring_without_clip_is_announced_by_the_timer_without_a_number() -> None:
    rec = Recorder()
    rec.urc("RING")
    deadline = time.monotonic() + 2.0
    while not rec.events and time.monotonic() < deadline:
        time.sleep(0.02)
    assert [(e.kind, e.number) for e in rec.events] == [(K.INCOMING, None)]
    assert rec.calls.is_current(rec.calls.call_id) is True  # an incoming call is a call in progress
