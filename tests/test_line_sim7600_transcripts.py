"""Sim7600Line against recorded modem transcripts: the exact command sequence, and failure handling."""

from __future__ import annotations

import time

import pytest
from scripted_modem import scripted_line

from cellcall.line import LineEventKind
from cellcall.line.sim7600 import ModemOptions


@pytest.mark.slow
def test_audio_that_never_routes_is_a_clear_line_error_and_a_hang_up() -> None:
    events = []
    with scripted_line("cpcmreg_never_routes.txt", ModemOptions(route_attempts=2)) as (line, modem):
        line.open()
        line.dial("+14155550132")
        deadline = time.monotonic() + 10
        while not modem.done.is_set() and time.monotonic() < deadline:
            event = line.next_event(0.05)
            if event is not None:
                events.append(event)
        time.sleep(0.2)
        events += iter(lambda: line.next_event(0.01), None)
    assert not modem.mismatches and modem.done.is_set()
    errors = [e for e in events if e.kind is LineEventKind.ERROR]
    assert [e.detail for e in errors] == ["audio not routed: AT+CPCMREG=1 did not take after 2 attempts"]
    assert not [e for e in events if e.kind in (LineEventKind.ANSWERED, LineEventKind.REMOTE_HANGUP)]
