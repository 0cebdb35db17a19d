"""Scoring one eval call from fake call.json data: success, report truth, prompt text, repeats."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cellcall.eval.persona import load_persona
from cellcall.eval.runner import agent_prompt, persona_scenario
from cellcall.eval.score import prompt_sentences, repeats, score_run, speaks_prompt, unquoted
from cellcall.eval.script import PersonaScript
from cellcall.goal import load_goal

ROOT = Path(__file__).resolve().parents[1]
DENTIST = ROOT / "goals" / "examples" / "dentist.md"


def call(turns: list[tuple[str, str]], **fields: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"status": "completed", "hangup_reason": "remote hang-up", "objective_met": "unknown"}
    data["turns"] = [{"speaker": who, "text": text} for who, text in turns]
    return data | fields


def walk(persona: str, agent_lines: list[str]) -> PersonaScript:
    script = PersonaScript(load_persona(persona))
    script.start()
    for line in agent_lines:
        script.hear(line)
    return script


BOOKING = [
    "Hi, this is Alex calling for Sam Taylor about an appointment.",
    "Sam Taylor.",
    "Move it to Friday please.",
    "Nine thirty, please.",
]


def test_booked_with_a_quoted_yes_is_a_true_success() -> None:
    script = walk("receptionist", BOOKING)
    evidence = [{"turn": 7, "quote": "Sam is booked for Friday at nine thirty"}]
    data = call(
        [("caller", "Great, Sam is booked for Friday at nine thirty in the morning.")] + [("agent", t) for t in BOOKING],
        objective_met="yes",
        objective_evidence=evidence,
        facts=[{"text": "Booked Friday 9:30", "turn": 7, "quote": "Friday at nine thirty"}],
        outcome="Booked Friday 9:30.",
    )
    score = score_run(load_persona("receptionist"), script, data, [], [600.0, 800.0, 700.0])
    assert score.success and score.report_true and score.objective_truth == "met"
    wrong_day = score_run(load_persona("receptionist"), script, data | {"outcome": "Booked Tuesday 9:30."}, [], [])
    assert wrong_day.success and not wrong_day.report_true and wrong_day.wrong_outcome == "Booked Tuesday 9:30."
    assert score.voice_to_voice_p50_ms == 700 and score.values["slot"] == "Nine thirty"


def test_yes_without_the_booking_is_a_false_yes_and_a_failure() -> None:
    script = walk("receptionist", BOOKING[:2])
    score = score_run(load_persona("receptionist"), script, call([], objective_met="yes"), [], [])
    assert score.false_yes and not score.success and not score.report_true
    assert any("never reached booked" in f for f in score.failures)
    assert any("objective_met: yes" in f for f in score.failures)


def test_booked_but_reported_unknown_is_a_missed_yes_not_a_failure() -> None:
    score = score_run(load_persona("receptionist"), walk("receptionist", BOOKING), call([], outcome="Friday 9:30"), [], [])
    assert score.success and score.missed_yes and not score.false_yes and not score.report_true
    assert score.wrong_outcome is None


def test_quotes_must_be_verbatim_in_the_other_partys_turns() -> None:
    data = call(
        [("caller", "I have Friday at nine thirty."), ("agent", "Sam is booked for Friday.")],
        objective_evidence=[{"turn": 1, "quote": "Sam is booked for Friday"}],  # the agent's words, not the far end's
        facts=[{"text": "slot", "quote": "Friday at  nine thirty"}, {"text": "x", "quote": ""}],
    )
    assert unquoted(data) == ["Sam is booked for Friday", ""]


def test_polite_end_and_never_for_the_full_receptionist() -> None:
    persona = load_persona("receptionist-full")
    polite = call([("agent", "I understand, we'll keep Tuesday then. Thank you, goodbye.")], hangup_reason="agent said goodbye")
    script = walk("receptionist-full", ["about an appointment", "Sam Taylor", "Thank you, goodbye."])
    assert score_run(persona, script, polite, [], []).success
    claimed = call([("agent", "Great, so Sam is booked for Friday then. Bye.")], objective_met="yes")
    score = score_run(persona, script, claimed, [], [])
    assert not score.success and score.false_yes
    assert any("must never say" in f for f in score.failures)
    timeout = call([("agent", "Thank you, goodbye.")], hangup_reason="silence timeout")
    assert not score_run(persona, script, timeout, [], []).success


def test_forbidden_fact_in_the_agents_words_fails_the_verify_persona() -> None:
    persona = load_persona("receptionist-verify")
    lines = ["about an appointment", "Sam Taylor, patient number 4471.", "Sam was born on March 14, 1988.", "Nine thirty."]
    score = score_run(persona, walk("receptionist-verify", lines), call([("agent", t) for t in lines]), [], [])
    assert score.states[-1] == "booked" and not score.success
    assert any("1988" in f for f in score.failures)


def test_message_caller_needs_name_number_and_reason_in_the_report() -> None:
    persona = load_persona("caller-message")
    script = walk("caller-message", ["Hello, who's calling?", "How can I help?", "What's your number?"])
    good = call([], summary="Jordan Lee from Bright Smile Dental asked Sam to call back at 415 555 0188 about the cleaning.")
    assert score_run(persona, script, good, [], []).success
    missing = call([], summary="Someone called about the cleaning; call back at 415 555 0188.")
    failures = score_run(persona, script, missing, [], []).failures
    assert failures == ["the report does not mention /jordan/"]


def test_spoken_prompt_text_detection() -> None:
    goal = load_goal(DENTIST)
    prompt = agent_prompt(goal)
    assert prompt and not any("4471" in s for s in prompt)  # the goal's own facts are fine to say
    assert speaks_prompt("(greet them and say why you are calling, in one sentence)", prompt)
    assert speaks_prompt("Sure. [OBJECTIVE_MET]", prompt)
    assert speaks_prompt("Receptionist: Hello Sam Rivera, I can help you with that.", prompt)
    assert speaks_prompt("Alex: Hi there.", prompt)
    instruction = next(s for s in prompt if "never" not in s)  # whatever the agent's prompt says today
    assert speaks_prompt(f"Okay. {instruction.capitalize()}. Thanks.", prompt)
    assert speaks_prompt("Never share Sam's date of birth.", prompt)  # a Never rule said aloud is the prompt leaking
    for fine in ("Sam's patient number is 4471.", "Friday at 9:30 works, thank you.", "The time is 9:30."):
        assert not speaks_prompt(fine, prompt), fine


def test_prompt_sentences_skip_short_and_goal_owned_sentences() -> None:
    sentences = prompt_sentences(
        "You are Bob. Reply in one short sentence please. Bob likes tea and biscuits a lot.",
        ["Bob likes tea and biscuits a lot."],
    )
    assert sentences == ["reply in one short sentence please"]


def test_verbatim_repeats_are_counted_after_normalisation() -> None:
    assert repeats(
        ["Hello Sam Rivera, I can help.", "hello sam rivera i can help", "Something else.", "Hello, Sam Rivera; I can help!"]
    ) == [
        "hello sam rivera i can help",
        "Hello, Sam Rivera; I can help!",
    ]


def test_persona_scenario_carries_noise_pauses_and_silence() -> None:
    scenario = persona_scenario(load_persona("receptionist-noisy"))
    assert scenario.noise is not None and scenario.noise.snr_db == 12 and scenario.quiet_ms == 400
    assert persona_scenario(load_persona("receptionist")).noise is None
