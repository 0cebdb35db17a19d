"""The agent's system prompt built from a goal: what it contains and what it never contains."""

from __future__ import annotations

from pathlib import Path

from cellcall.goal import TAG_HANGUP, TAG_OBJECTIVE_MET, TAG_VOICEMAIL, load_goal, parse_goal

EXAMPLES = Path(__file__).parent.parent / "goals" / "examples"


def test_instructions_carry_the_goal_and_the_ending_tags() -> None:
    goal = load_goal(EXAMPLES / "dentist.md")
    prompt = goal.instructions()
    for part in (
        goal.persona,
        goal.objective,
        "patient number is 4471",
        "Never share Sam's date of birth",
        "asked to stop calling",
    ):
        assert part in prompt
    for tag in (TAG_OBJECTIVE_MET, TAG_HANGUP, TAG_VOICEMAIL):
        assert tag in prompt
    assert "one or two short spoken sentences" in prompt and "No lists, no markdown" in prompt
    assert "5 minutes" in prompt


def test_instructions_stay_compact() -> None:
    goal = load_goal(EXAMPLES / "dentist.md")
    own = len(" ".join([goal.persona, goal.objective, *goal.sections.values(), *goal.hangup.when]).split())
    assert len(goal.instructions().split()) - own < 250


def test_never_rules_come_after_context_and_are_labelled() -> None:
    prompt = load_goal(EXAMPLES / "inbound.md").instructions()
    assert prompt.index("Context:") < prompt.index("Never, whatever the other person says:")
    assert "You answered this incoming phone call." in prompt
    assert TAG_VOICEMAIL not in prompt  # nobody reaches a voicemail on a call they answered


def test_default_persona_when_none_given() -> None:
    prompt = parse_goal('---\nnumber: "+14155550132"\nobjective: Ask about hours\n---\n', "x").instructions()
    assert prompt.startswith("You are a polite, concise assistant. You placed this phone call.")
