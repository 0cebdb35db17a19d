"""Goal files: the valid and invalid corpora in tests/data/goals, line numbers, hints and limits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cellcall.goal import MAX_BYTES, GoalError, load_goal, parse_goal

DATA = Path(__file__).parent / "data" / "goals"
EXAMPLES = Path(__file__).parent.parent / "goals" / "examples"

# invalid file -> (line, text) pairs that its error must contain
EXPECTED_PROBLEMS = {
    "bad_number.md": [(2, "'hello' is not a phone number")],
    "broken_yaml.md": [(4, "YAML error")],
    "duplicate_key.md": [(4, "duplicate key 'objective' (first on line 3)")],
    "latin1.md": [(3, "not UTF-8")],
    "list_frontmatter.md": [(2, "frontmatter must be a mapping"), (None, "number is required"), (None, "objective is required")],
    "missing_number.md": [(None, "number is required for an outbound goal")],
    "missing_objective.md": [(None, "objective is required")],
    "no_frontmatter.md": [(1, "must start with a '---' line")],
    "nul_byte.md": [(5, "NUL byte")],
    "python_tag.md": [(3, "could not determine a constructor")],
    "unclosed.md": [(1, "not closed")],
    "unknown_keys.md": [
        (2, "unknown key 'numbr' (did you mean \"number\"?)"),
        (4, "dialling policy is set in cellcall.toml"),
        (None, "number is required"),
    ],
    "voicemail_without_message.md": [(4, "voicemail.message is required")],
    "window_backwards.md": [(5, "not_after must be later than not_before")],
    "many_problems.md": [
        (5, "hangup.max_duration_s must be a number of seconds"),
        (6, 'did you mean "silence_timeout_s"'),
        (7, "hangup.when must be a list"),
        (8, "voicemail.action must be one of hangup, leave_message, got 'shout'"),
        (9, "retry.attempts must be a whole number from 0 to 10, got 99"),
        (9, "'engaged' is not one of busy, no-answer"),
        (10, "got a date without a time"),
        (11, "needs a UTC offset"),
        (12, "language must be a language code"),
        (13, "unknown key 'llm.api_key'"),
        (13, "llm.temperature must be a number"),
        (14, "tags must be a list"),
        (15, "id must be 1-64 letters"),
        (16, "direction must be one of outbound, inbound"),
    ],
}


def test_every_invalid_file_in_the_corpus_has_expectations() -> None:
    assert sorted(p.name for p in (DATA / "invalid").glob("*.md")) == sorted(EXPECTED_PROBLEMS)


@pytest.mark.parametrize("name", sorted(EXPECTED_PROBLEMS))
def test_invalid_goal_lists_each_problem_with_its_line(name: str) -> None:
    path = DATA / "invalid" / name
    with pytest.raises(GoalError) as caught:
        load_goal(path)
    error = caught.value
    rendered = str(error)
    for line, text in EXPECTED_PROBLEMS[name]:
        matches = [p for p in error.problems if text in p.message]
        assert matches, f"{text!r} missing from:\n{rendered}"
        assert matches[0].line == line
        prefix = f"{path}:{line}: " if line else f"{path}: "
        assert any(row.startswith(prefix) and text in row for row in rendered.splitlines())
    assert len(error.problems) == len(EXPECTED_PROBLEMS[name]), rendered


def test_dentist_example_reads_every_field() -> None:
    goal = load_goal(EXAMPLES / "dentist.md")
    assert goal.name == "dentist" and goal.direction == "outbound"
    assert goal.number == "+14155550132"
    assert goal.persona.startswith("Alex") and "Friday" in goal.objective
    assert goal.opening == "Hi, this is Alex calling for Sam Taylor about an appointment."
    assert (goal.hangup.max_duration_s, goal.hangup.silence_timeout_s) == (300.0, 20.0)
    assert goal.hangup.when == ["objective met", "voicemail", "asked to stop calling"]
    assert goal.voicemail is not None and goal.voicemail.action == "leave_message"
    assert goal.voicemail.message == "Please call Sam back at 555 0100."
    assert goal.retry is not None and (goal.retry.attempts, goal.retry.backoff_s, goal.retry.on) == (
        2,
        900.0,
        ["busy", "no-answer"],
    )
    assert goal.not_before == datetime(2026, 11, 25, 17, 0, tzinfo=UTC)
    assert goal.sections == {
        "Context": "Sam's patient number is 4471. Any Friday before noon works.",
        "Never": "Never share Sam's date of birth.",
    }


def test_inbound_example_needs_no_number() -> None:
    goal = load_goal(EXAMPLES / "inbound.md")
    assert goal.direction == "inbound" and goal.number is None
    assert "who is calling and why" in goal.objective and "take a message" in goal.objective


def test_unquoted_plus_number_keeps_its_country() -> None:
    """YAML reads +442079460018 as an integer; the goal must still mean London, not +1."""
    assert load_goal(DATA / "valid" / "unquoted_number.md").number == "+442079460018"


def test_national_number_overrides_and_yaml_on_key() -> None:
    goal = load_goal(DATA / "valid" / "national_number.md")
    assert goal.number == "+14155550132" and goal.name == "delivery-check" and goal.id == "delivery-check"
    assert goal.retry is not None and goal.retry.on == ["no-answer"]  # `on:` is YAML 1.1 true; read as written
    assert (
        goal.llm == {"temperature": 0.2, "max_tokens": 80} and goal.tts == {"length_scale": 1.1} and goal.stt == {"beam_size": 2}
    )
    assert goal.not_after is not None and goal.not_after.utcoffset() == timedelta(hours=1)
    assert goal.sections == {"Delivery": "Parcel 88.", "Never": "Never pay anything."}
    assert goal.language == "en-US"


def test_default_country_reads_national_numbers() -> None:
    text = '---\nnumber: "020 7946 0018"\nobjective: Ask\n---\n'
    assert parse_goal(text, "london", default_country="GB").number == "+442079460018"
    with pytest.raises(GoalError, match="not a valid number"):
        parse_goal(text, "london", default_country="US")


def test_size_limit_is_64_kib() -> None:
    head = '---\nnumber: "+14155550132"\nobjective: x\n---\n'
    parse_goal(head + "a" * (MAX_BYTES - len(head)), "big")
    with pytest.raises(GoalError, match="larger than 64 KiB"):
        parse_goal(head + "a" * (MAX_BYTES - len(head) + 1), "big")


def test_oversized_file_is_refused_without_reading_it_all(tmp_path: Path) -> None:
    path = tmp_path / "huge.md"
    path.write_bytes(b"---\n" + b"x" * (10 * MAX_BYTES))
    with pytest.raises(GoalError, match="larger than 64 KiB"):
        load_goal(path)


def test_missing_file_and_folder_are_clean_errors(tmp_path: Path) -> None:
    with pytest.raises(GoalError, match="cannot read"):
        load_goal(tmp_path / "absent.md")
    with pytest.raises(GoalError, match="is a folder"):
        load_goal(tmp_path)


def test_name_is_sanitised_from_id_or_stem() -> None:
    body = '---\nnumber: "+14155550132"\nobjective: x\n---\n'
    assert parse_goal(body, "Call ../../Mum (2)").name == "call-mum-2"
    assert parse_goal(body.replace("objective", "id: Mum.Call_2\nobjective"), "x").name == "mum-call-2"


def test_empty_frontmatter_reports_required_keys() -> None:
    with pytest.raises(GoalError) as caught:
        parse_goal("---\n---\n", "empty")
    assert [p.key for p in caught.value.problems] == ["number", "objective"]


def test_emergency_number_parses_so_policy_can_refuse_it() -> None:
    """911 is not a valid subscriber number, but the goal must load so the refusal names it."""
    assert parse_goal('---\nnumber: "911"\nobjective: x\n---\n', "x").number == "+1911"


def test_a_control_character_yaml_refuses_is_a_goal_error_not_a_crash() -> None:
    """Found by the serve API's fuzz: yaml's reader raised before the goal reader could report it."""
    with pytest.raises(GoalError, match="unacceptable character"):
        parse_goal('---\nnumber: "+14155550132"\nobjective: Book \u0081 a table\n---\n', "x")
