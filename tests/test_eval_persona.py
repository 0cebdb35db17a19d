"""Persona files: the shipped personas parse, and every mistake names its file, line and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from cellcall.eval.persona import PersonaError, builtin_personas, load_persona, parse_persona
from cellcall.eval.tomllines import KeyLines

MINIMAL = """\
name = "tiny"
start = "hello"

[success]
reached = "done"

[states.hello]
say = "Hello, who is calling?"
[[states.hello.on]]
match = '(?P<who>alex)'
goto = "done"

[states.done]
say = "Thanks {who}, bye."
hangup = true
"""


def error_of(text: str) -> str:
    with pytest.raises(PersonaError) as caught:
        parse_persona(text, Path("p.toml"))
    return str(caught.value)


def test_every_builtin_persona_parses_and_names_an_existing_goal_of_its_direction() -> None:
    from cellcall.goal import load_goal

    names = builtin_personas()
    assert {"receptionist", "receptionist-full", "receptionist-verify", "receptionist-impatient", "receptionist-noisy"} <= set(
        names
    )
    assert {"caller-message", "caller-sales"} <= set(names)
    for name in names:
        persona = load_persona(name)
        assert persona.goal is not None and persona.goal.is_file(), name
        assert load_goal(persona.goal).direction == persona.direction, name
    assert load_persona("receptionist-noisy").noise_snr_db == 12
    assert any(s.interrupt_ms for s in load_persona("receptionist-impatient").states.values())


def test_minimal_persona_defaults() -> None:
    persona = parse_persona(MINIMAL, Path("p.toml"))
    assert persona.direction == "outbound" and persona.speaks_first and persona.silence_ms == 400
    assert persona.success.objective == "reached" and persona.success.reached == ("done",)
    assert persona.states["hello"].retries == 2 and persona.states["done"].hangup
    assert persona.texts() == ["Hello, who is calling?", "Sorry, I can't help with that. Goodbye."]  # not the {who} line


def test_toml_syntax_error_gives_the_line() -> None:
    message = error_of(MINIMAL.replace('say = "Hello, who is calling?"', 'say = "Hello'))
    assert message.startswith("p.toml: not valid TOML") and "line 8" in message


@pytest.mark.parametrize(
    ("change", "line", "words"),
    [
        (('goto = "done"', 'goto = "dnoe"'), 11, "no state 'dnoe' (did you mean 'done'?)"),
        (("match = '(?P<who>alex)'", "match = '(?P<who>alex'"), 10, "not a valid regular expression"),
        (('say = "Thanks {who}, bye."', 'say = "Thanks {whom}, bye."'), 14, "{whom} is captured by no match pattern"),
        (('say = "Thanks {who}, bye."', 'say = "Thanks {who, bye."'), 14, "literal braces"),
        (('reached = "done"', 'reached = "finished"'), 5, "no state 'finished'"),
        (('start = "hello"', 'start = "helo"'), 2, "no state 'helo' (did you mean 'hello'?)"),
        (("hangup = true", "hangup = tru"), 15, "not valid TOML"),
        (("hangup = true", "hangup = 1"), 15, "expected true or false"),
        (("hangup = true", "hang_up = true"), 15, "unknown key (did you mean 'hangup'?)"),
        (('name = "tiny"', 'name = "tiny"\ndirection = "sideways"'), 2, "no direction 'sideways'"),
        (('say = "Hello, who is calling?"', 'say = "Hello?"\ninterrupt = "Hurry up"'), 9, "needs interrupt_ms"),
    ],
)
def test_semantic_errors_point_at_the_offending_line(change: tuple[str, str], line: int, words: str) -> None:
    message = error_of(MINIMAL.replace(*change))
    assert message.startswith(f"p.toml:{line}: ") or (words == "not valid TOML" and f"line {line}" in message), message
    assert words in message, message


def test_structural_errors_are_clear() -> None:
    assert "has no way on" in error_of(MINIMAL.replace("hangup = true", ""))
    no_states = 'name = "x"\n'
    assert "needs at least one state" in error_of(no_states)
    assert 'needs say = "..."' in error_of(MINIMAL.replace('say = "Hello, who is calling?"\n', ""))
    assert "p.toml:5: success.outcome: needs success.reached" in error_of(MINIMAL.replace('reached = "done"', "outcome = 'x'"))
    assert "p.toml:5: success.objective" in error_of(MINIMAL.replace('reached = "done"', 'objective = "maybe"'))


def test_unknown_persona_name_suggests_the_closest(tmp_path: Path) -> None:
    with pytest.raises(PersonaError, match="did you mean 'receptionist'"):
        load_persona("recepshionist")
    with pytest.raises(PersonaError, match="not found"):
        load_persona(str(tmp_path / "nope.toml"))


def test_key_lines_follow_arrays_of_tables_and_inline_tables() -> None:
    text = '[a]\nx = 1\n[[a.on]]\nm = "1"\n[[a.on]]\nm = "2"\ninline = { k = 1, j = 2 }\n[b.c]\n"quoted.key" = 3\n'
    lines = KeyLines(text)
    assert lines.line(("a", "x")) == 2
    assert lines.line(("a", "on", 0, "m")) == 4 and lines.line(("a", "on", 1, "m")) == 6
    assert lines.line(("a", "on", 1, "inline", "j")) == 7
    assert lines.line(("b", "c", "quoted.key")) == 9
    assert lines.line(("b", "c", "missing")) == 8  # falls back to its table
