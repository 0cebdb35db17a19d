"""A persona's state machine on fake transcripts: moves, captures, re-asks, gives up, interrupts."""

from __future__ import annotations

from cellcall.emulator.listening import SILENT, Reaction
from cellcall.eval.persona import load_persona, parse_persona
from cellcall.eval.script import PersonaScript

PERSONA = """\
start = "ask"
retries = 1

[states.ask]
say = "Which day?"
reask = "Sorry, which day?"
give_up = "Never mind. Goodbye."
interrupt_ms = 1500
interrupt = "Quickly please, which day?"
[[states.ask.on]]
match = '(?P<day>monday|friday)'
goto = "booked"

[states.booked]
say = "Booked for {day}. Bye."
hangup = true
"""


def script() -> PersonaScript:
    return PersonaScript(parse_persona(PERSONA))


def test_a_match_moves_on_and_fills_the_captured_value() -> None:
    s = script()
    assert s.start() == Reaction("Which day?")
    assert s.hear("Friday would be great.") == Reaction("Booked for Friday. Bye.", hangup=True)
    assert s.visits == ["ask", "booked"] and s.values == {"day": "Friday"} and s.ended
    assert s.hear("anything") == Reaction(None)  # after the hang-up line nothing more is said


def test_no_match_reasks_then_gives_up_and_hangs_up() -> None:
    s = script()
    s.start()
    assert s.hear("Hello there.") == Reaction("Sorry, which day?")
    assert s.hear(SILENT) == Reaction("Never mind. Goodbye.", hangup=True)
    assert s.gave_up and s.ended and [h.matched for h in s.heard] == [None, None]


def test_interrupt_once_per_visit_and_no_reask_for_the_words_it_talked_over() -> None:
    s = script()
    s.start()
    assert s.interrupt_after_ms() == 1500
    assert s.interrupt() == Reaction("Quickly please, which day?")
    assert s.interrupt_after_ms() is None  # once per visit
    assert s.hear("Hi, this is Alex calling ab", spoken_over=True) == Reaction(None)
    assert s.hear("Monday.") == Reaction("Booked for Monday. Bye.", hangup=True)
    assert s.interrupts == 1


def test_not_started_script_never_interrupts() -> None:
    assert script().interrupt_after_ms() is None  # listening first (inbound): no state yet


def test_receptionist_books_only_after_the_name_and_a_chosen_slot() -> None:
    s = PersonaScript(load_persona("receptionist"))
    s.start()
    s.hear("Hi, this is Alex calling for Sam Taylor about an appointment.")
    assert s.state == "ask_name"
    s.hear("It's for my client.")  # no name: asked again
    assert s.state == "ask_name"
    s.hear("Sam Taylor.")
    s.hear("We'd like to move it to a Friday.")
    assert s.state == "offer"
    s.hear("Yes, that works.")  # which one? still not chosen
    assert s.state == "offer"
    s.hear("Friday at 9:30, please.")
    assert s.state == "booked" and s.values["slot"] == "9:30"


def test_receptionist_books_the_afternoon_slot_when_that_is_what_the_agent_picks() -> None:
    s = PersonaScript(load_persona("receptionist"))
    s.start()
    for text in ("about an appointment", "Sam Taylor", "move it to Friday", "Two in the afternoon is fine."):
        s.hear(text)
    assert s.state == "booked_afternoon" and "booked" not in s.visits


def test_sales_caller_accepts_a_refusal_and_notes_an_agreement() -> None:
    refused = PersonaScript(load_persona("caller-sales"))
    refused.start()
    assert refused.hear("Sorry, Sam is not interested. Goodbye.").hangup and refused.state == "accept"
    agreed = PersonaScript(load_persona("caller-sales"))
    agreed.start()
    agreed.hear("Oh, tell me more.")
    assert agreed.hear("Sure, that sounds good.").hangup and agreed.state == "agreed"
