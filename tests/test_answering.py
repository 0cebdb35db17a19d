"""Who answered, from words and tones: a person is never taken for a machine; menus give their keys."""

from __future__ import annotations

import numpy as np
import pytest
from fakes import speech_like

from cellcall.answering.menu import MenuRoute, Option, options
from cellcall.answering.screen import Act, Answerer, AnsweringPlan, AnswerScreen, Mode, words_filter
from cellcall.answering.tones import ToneMeter
from cellcall.answering.wording import Heard, heard
from cellcall.record import CallStatus
from cellcall.tags import Tag

RATE = 8000
FRAME = 160

PEOPLE = [
    "Hello?",
    "Bright Smile Dental, this is Maria. How can I help you?",
    "Good morning and thank you for calling Bright Smile Dental. My name is Maria, I'm at the front desk today. "
    "How can I help you?",
    "Sorry, she can't come to the phone right now. Can I take a message?",
    "Would you like to leave a message for her?",
    "Hi, thanks for holding, this is Maria. How can I help you?",
    "He's not available at the moment, can I help?",
    "Yes, speaking.",
    "You have reached the right person, how can I help?",
]
MACHINES = [
    ("Hi, you have reached the voicemail of Sam Taylor.", Heard.MAILBOX),
    ("Please leave a message after the tone.", Heard.MAILBOX),
    ("Hi, you have reached the voice mill of Santailer.", Heard.MAILBOX),  # "voicemail" misheard at 8 kHz (CI)
    ("Hi, this is Sam Taylor. I can't take your call right now. Please leave a message and I'll call you back.", Heard.MAILBOX),
    ("The person you are calling is not available. Please leave your message after the beep.", Heard.MAILBOX),
    ("The mailbox of Sam Taylor is full and cannot accept any new messages. Goodbye.", Heard.MAILBOX_FULL),
    ("The number you have dialled is not available. Please try again later.", Heard.UNAVAILABLE),
    ("The number you have dialed is not in service.", Heard.UNAVAILABLE),
    ("have dialed is not available. Please try again later.", Heard.UNAVAILABLE),  # its start lost under load
    ("The mobile you are calling is switched off.", Heard.UNAVAILABLE),
    ("Thank you for calling Bright Smile Dental. For opening hours, press 1. For appointments, press 2.", Heard.MENU),
    ("For billing, press three.", Heard.MENU),
    ("All of our staff are busy right now. Please hold.", Heard.HOLD),
    ("Your call is important to us.", Heard.HOLD),
]


@pytest.mark.parametrize("text", PEOPLE)
def test_a_persons_words_are_a_person(text: str) -> None:
    assert heard(text) is Heard.PERSON


@pytest.mark.parametrize(("text", "kind"), MACHINES)
def test_a_machines_words_say_which_machine(text: str, kind: Heard) -> None:
    assert heard(text) is kind


def test_menu_options_are_read_both_ways_round() -> None:
    text = "For opening hours, press 1. For appointments, press two. Press 3 for billing. To repeat this menu press 9."
    assert {o.key: o.label for o in options(text)} == {
        "1": "opening hours",
        "2": "appointments",
        "3": "billing",
        "9": "repeat this menu",
    }


def test_menu_options_survive_the_recognisers_full_stops() -> None:
    heard_as = "Thank you for calling. For opening hours. Press one for appointments. Press two for billing. Press three."
    assert [(o.key, o.label) for o in options(heard_as)] == [("1", "opening hours"), ("2", "appointments"), ("3", "billing")]
    assert [o.key for o in options("Press 1 for billing, press 2 for support.")] == ["1", "2"]


def test_the_route_comes_from_the_goal_keys_then_menu_then_objective() -> None:
    offered = options("For opening hours, press 1. For appointments, press 2. For the front desk, press 0.")
    assert MenuRoute(["5", "1"], None, "").choose(offered, final=False) == Option("5", "the goal's keys")
    assert MenuRoute([], "opening hours", "").choose(offered, final=False) == Option("1", "opening hours")
    route = MenuRoute([], None, "Move Sam's cleaning from Tuesday to Friday morning")
    assert route.choose(offered, final=False) == Option("2", "appointments")
    nothing = MenuRoute([], None, "Ask about the parking")
    assert nothing.choose(offered, final=False) is None  # more options may come
    assert nothing.choose(offered, final=True) == Option("0", "the front desk")  # a person is the next best


def frames(pcm: bytes) -> list[bytes]:
    return [pcm[i : i + 2 * FRAME] for i in range(0, len(pcm) - 2 * FRAME + 1, 2 * FRAME)]


def tone(hz: float, seconds: float, level: float = 8000.0) -> bytes:
    t = np.arange(int(seconds * RATE)) / RATE
    return (level * np.sin(2 * np.pi * hz * t)).astype("<i2").tobytes()


def music(seconds: float) -> bytes:
    t = np.arange(int(seconds * RATE)) / RATE
    notes = [262.0, 294.0, 330.0, 392.0]
    out = np.zeros_like(t)
    for i in range(int(seconds / 0.4) + 1):
        part = slice(int(i * 0.4 * RATE), int((i + 1) * 0.4 * RATE))
        root = notes[i % len(notes)]
        out[part] = sum(np.sin(2 * np.pi * root * ratio * t[part]) for ratio in (1.0, 1.25, 1.5)) * 1500
    return out.astype("<i2").tobytes()


def feed(meter: ToneMeter, pcm: bytes, start: float) -> float:
    now = start
    for frame in frames(pcm):
        now += 0.02
        meter.feed(frame, now)
    return now


def test_a_beep_is_heard_and_its_end_timed() -> None:
    meter = ToneMeter(RATE)
    end = feed(meter, tone(1000, 0.5), 0.0)
    feed(meter, bytes(3200), end)
    assert len(meter.beep_ends) == 1 and abs(meter.beep_ends[0] - (end + 0.02)) < 0.001


def test_speech_a_click_and_a_dial_tone_are_not_beeps() -> None:
    meter = ToneMeter(RATE)
    now = feed(meter, speech_like(2.0, 6000), 0.0)
    now = feed(meter, tone(1000, 0.04) + bytes(3200), now)  # a 40 ms click
    feed(meter, tone(425, 4.0) + bytes(3200), now)  # a dial tone is too long
    assert meter.beep_ends == []


def test_music_is_music_and_speech_is_not() -> None:
    speech, held = ToneMeter(RATE), ToneMeter(RATE)
    feed(speech, speech_like(4.0, 6000), 0.0)
    feed(held, music(4.0), 0.0)
    assert held.music() and not speech.music()


def screen(message: str | None = "Please call Sam back.", keys: tuple[str, ...] = ()) -> AnswerScreen:
    plan = AnsweringPlan(message, keys, None, "Move Sam's cleaning to Friday", hold_max_s=30.0)
    return AnswerScreen.for_plan(plan, RATE, 0.0)


def test_a_mailbox_message_waits_for_the_beep() -> None:
    s = screen()
    assert s.heard("Hi, you have reached the voicemail of Sam Taylor.", 1.0) == Act("prepare", note="voicemail greeting")
    assert s.answered_by is Answerer.VOICEMAIL and s.mode is Mode.MAILBOX
    now = 1.0
    for frame in frames(tone(1000, 0.5)):
        now += 0.02
        assert s.feed(frame, now, voice=False) is None
        assert s.due(now, far_end_quiet=True) is None  # not during the beep
    s.feed(bytes(320), now + 0.02, voice=False)
    assert s.due(now + 0.1, far_end_quiet=True) is None  # the mailbox starts recording at the beep's end
    assert s.due(now + 0.25, far_end_quiet=True) == Act("message", note="after the beep")
    assert s.due(now + 5.0, far_end_quiet=True) is None  # said once


def test_a_mailbox_without_a_beep_gets_the_message_after_quiet() -> None:
    s = screen()
    s.heard("Please leave a message and I'll call you back.", 1.0)
    s.feed(bytes(320), 1.2, voice=True)  # the greeting's last words
    assert s.due(3.0, far_end_quiet=True) is None
    assert s.due(3.8, far_end_quiet=True) == Act("message", note="no beep heard")


def test_hangup_action_full_mailbox_and_announcements_end_the_call() -> None:
    assert screen(None).heard("Please leave a message after the tone.", 1.0) == Act(
        "end", reason="voicemail: hung up without a message", status=CallStatus.VOICEMAIL
    )
    full = screen().heard("The mailbox is full and cannot accept new messages.", 1.0)
    assert full is not None and full.status is CallStatus.VOICEMAIL and full.reason == "voicemail: mailbox full"
    gone = screen().heard("The number you have dialled is not available.", 1.0)
    assert gone is not None and gone.kind == "end" and gone.status is CallStatus.NO_ANSWER


def test_a_menu_gets_its_key_and_a_menu_heard_three_times_ends_the_call() -> None:
    s = screen()
    act = s.heard("For opening hours, press 1. For appointments, press 2.", 1.0)
    assert act is not None and act.kind == "press" and act.keys == "2" and s.answered_by is Answerer.IVR
    stuck = screen()
    menu = "For prescription refills, press 1. For store hours, press 3."
    assert stuck.heard(menu, 1.0) == Act("note", note="phone menu")
    assert stuck.due(2.6, far_end_quiet=True) is None  # nothing fits and no operator: wait
    assert stuck.heard(menu, 8.0) is None
    last = stuck.heard(menu, 15.0)
    assert last is not None and last.kind == "end" and "repeated 3 times" in last.reason


def test_the_goals_keys_are_pressed_menu_after_menu() -> None:
    s = screen(keys=("1", "4#"))
    first, second = s.heard("For English press 1.", 1.0), s.heard("Enter your account number.", 3.0)
    assert first is not None and first.keys == "1"
    assert heard("Enter your account number.") is Heard.PERSON and second is None  # not a menu: no key
    third = s.heard("Press 4 followed by the pound key.", 5.0)
    assert third is not None and third.keys == "4#"


def test_hold_is_silent_until_a_person_and_ends_after_hold_max() -> None:
    s = screen()
    assert s.heard("Please hold.", 1.0) == Act("note", note="on hold")
    assert s.holding() and s.answered_by is Answerer.UNKNOWN  # a person may say "please hold" too
    assert s.due(20.0, far_end_quiet=True) is None
    ended = s.due(31.5, far_end_quiet=True)
    assert ended is not None and ended.kind == "end" and "hold" in ended.reason
    back = screen()
    back.heard("Please hold.", 1.0)
    back.person()
    assert not back.holding() and back.answered_by is Answerer.HUMAN and back.due(40.0, far_end_quiet=True) is None


def test_hold_music_puts_the_call_on_hold_and_screens_what_is_heard_in_it() -> None:
    s = screen()
    now, acts = 0.0, []
    for frame in frames(music(4.0)):
        now += 0.02
        acts.append(s.feed(frame, now, voice=True))
    assert Act("note", note="hold music") in acts and s.mode is Mode.HOLD
    assert s.words_filter()("Thank you.") == {Tag.SCREENED}  # whisper's words for music are not a person


def test_the_reply_filter_lets_a_person_through_and_stops_machines() -> None:
    fresh = words_filter(Mode.CONVERSATION, settled=False, music=False)
    assert fresh("Hello, Bright Smile Dental.") == set() and fresh("Please leave a message.") == {Tag.SCREENED}
    talking = words_filter(Mode.CONVERSATION, settled=True, music=False)
    assert talking("Do you want to leave a message? Press one if so.") == set()  # a person said it
    assert talking("Please hold.") == {Tag.SCREENED}
    assert words_filter(Mode.MAILBOX, settled=False, music=False)("Sam Taylor.") == {Tag.SCREENED}
