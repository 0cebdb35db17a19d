"""Who answered, end to end: phone menus, mailboxes, hold and a long-winded person on the emulated
SIM7600, through the real driver (AT+VTS for keys) with the real models, in real time."""

from __future__ import annotations

import dataclasses

import pytest
import test_call_e2e as calls
from speech import wer
from test_call_e2e import DENTIST, agent_said, dial

from cellcall.config import Settings
from cellcall.engines.cache import Engines
from cellcall.goal import load_goal
from cellcall.record import CallStatus, ObjectiveMet, Speaker

pytestmark = pytest.mark.slow

MESSAGE = "Please call Sam back at 555 0100."
call_settings, engines = calls.call_settings, calls.engines  # the same session fixtures (engines load once)


def system_lines(result) -> list[str]:  # type: ignore[no-untyped-def]
    return [turn.text for turn in result.record.turns if turn.speaker is Speaker.SYSTEM]


def test_a_phone_menu_gets_the_appointments_key_then_the_receptionist_books(call_settings: Settings, engines: Engines) -> None:
    result, emulator = dial(call_settings, engines, "menu")
    record = result.record
    assert emulator.metrics.dtmf_heard.startswith("2"), emulator.metrics.dtmf_heard
    prompt = next(turn for turn in emulator.metrics.turns if turn.dtmf_heard_at is not None)
    assert prompt.dtmf_heard_at is not None
    print(f"menu key latency after the prompt's end: {(prompt.dtmf_heard_at - prompt.ended_at) * 1000:.0f} ms")
    assert record.dtmf_sent[:1] == ["2"] and record.answered_by == "ivr"
    assert any("pressed 2" in line for line in system_lines(result))
    assert any(turn.speaker is Speaker.AGENT for turn in record.turns)  # the receptionist was talked to
    assert record.objective_met is ObjectiveMet.YES, record.turns


def test_a_menu_with_no_way_through_ends_after_three_hearings(call_settings: Settings, engines: Engines) -> None:
    result, emulator = dial(call_settings, engines, "menu-no-route")
    record = result.record
    assert "repeated 3 times" in record.hangup_reason and emulator.metrics.ended_by == "host"
    assert record.answered_by == "ivr" and record.objective_met is not ObjectiveMet.YES
    assert emulator.metrics.heard_agent_utterances == 0  # never talked to the machine


def test_a_mailbox_without_a_beep_still_gets_the_message_once(call_settings: Settings, engines: Engines) -> None:
    result, emulator = dial(call_settings, engines, "voicemail-no-beep")
    record = result.record
    assert record.status is CallStatus.VOICEMAIL and record.hangup_reason == "voicemail: message left"
    assert record.answered_by == "voicemail" and record.objective_met is ObjectiveMet.NO
    assert emulator.metrics.heard_agent_utterances == 1
    assert wer(MESSAGE, agent_said(engines, emulator.metrics, -1)) <= 0.5


def test_a_full_mailbox_and_an_unavailable_number_end_with_their_reason(call_settings: Settings, engines: Engines) -> None:
    full, emulator = dial(call_settings, engines, "mailbox-full")
    assert full.record.status is CallStatus.VOICEMAIL and full.record.hangup_reason == "voicemail: mailbox full"
    assert emulator.metrics.heard_agent_utterances == 0
    gone, emulator = dial(call_settings, engines, "unavailable")
    assert gone.record.status is CallStatus.NO_ANSWER and gone.record.hangup_reason.startswith("announcement")
    assert emulator.metrics.heard_agent_utterances == 0


def test_hold_music_is_waited_out_and_the_person_after_it_gets_the_call(call_settings: Settings, engines: Engines) -> None:
    result, emulator = dial(call_settings, engines, "hold")
    record = result.record
    assert any("hold" in line for line in system_lines(result)), system_lines(result)
    far_end = emulator.metrics.turns
    music_end = next(turn.ended_at for turn in far_end if turn.text.startswith("[music"))
    assert all(u.start >= music_end for u in emulator.metrics.utterances)  # not a word into the hold
    assert record.answered_by == "human" and record.objective_met is ObjectiveMet.YES, record.turns


def test_a_person_with_a_long_greeting_is_a_person(call_settings: Settings, engines: Engines) -> None:
    result, emulator = dial(call_settings, engines, "long-greeting")
    record = result.record
    assert record.answered_by == "human" and record.status is CallStatus.COMPLETED
    assert emulator.metrics.heard_agent_utterances >= 2 and record.objective_met is ObjectiveMet.YES, record.turns


def test_hold_max_ends_a_hold_that_never_ends(call_settings: Settings, engines: Engines) -> None:
    goal = load_goal(DENTIST)
    goal = dataclasses.replace(goal, hangup=dataclasses.replace(goal.hangup, hold_max_s=5.0))
    result, emulator = dial(call_settings, engines, "hold", goal)
    assert result.record.hangup_reason == "on hold longer than 5 s" and emulator.metrics.ended_by == "host"
    assert emulator.metrics.heard_agent_utterances == 0
