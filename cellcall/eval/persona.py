"""Persona files: a far end that listens to the agent and follows a script of states (docs/personas.md).

A persona is TOML written by hand for a user's own goal, so every mistake (bad TOML, an unknown key, a
state that does not exist, a regex that does not compile, a {value} no pattern captures) is reported
with the file and line before any call is placed: a persona that breaks half-way through a call would
measure nothing. Parsing gives frozen dataclasses; the running state lives in `script.PersonaScript`.
"""

from __future__ import annotations

import difflib
import re
import string
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path as FilePath
from typing import Any

from cellcall.eval.tomllines import KeyLines, Path

DIRECTIONS = ("outbound", "inbound")
OBJECTIVE_TRUTHS = ("reached", "never", "any")
DEFAULT_GIVE_UP = "Sorry, I can't help with that. Goodbye."
REPO_ROOT = FilePath(__file__).resolve().parents[2]


class PersonaError(ValueError):
    """A persona file cannot be used; the message names the file, the line and the key."""


@dataclass(frozen=True)
class Transition:
    """When the agent's words match `pattern`, go to state `goto`; named groups are captured as values."""

    pattern: re.Pattern[str]
    goto: str


@dataclass(frozen=True)
class State:
    name: str
    say: str  # spoken on entering the state; may use {value} captured earlier
    on: tuple[Transition, ...] = ()
    reask: str | None = None  # said when the agent's words match nothing (default: `say` again)
    retries: int = 2  # re-asks before giving up
    give_up: str = DEFAULT_GIVE_UP  # said before hanging up when the retries are spent
    hangup: bool = False  # hang up after saying `say`
    interrupt_ms: int | None = None  # talk over the agent this long into its speech (once per visit)
    interrupt: str | None = None  # what is said over the agent (default: the re-ask)


@dataclass(frozen=True)
class Success:
    """The ground truth of one run, checked after the call (see score.py)."""

    reached: tuple[str, ...] = ()  # one of these states must be reached
    avoid: tuple[str, ...] = ()  # none of these states may be reached
    objective: str = "never"  # "reached": truly met when `reached` is; "never": it cannot be; "any": not judged
    polite_end: bool = False  # the agent's last words close the call politely, and the call ended by a hang-up
    never: tuple[re.Pattern[str], ...] = ()  # must never appear in the agent's words
    report: tuple[str, ...] = ()  # regexes (with {value}s) each found in the report's text
    outcome: tuple[str, ...] = ()  # once `reached` is, regexes (with {value}s) the report's outcome must match


@dataclass(frozen=True)
class Persona:
    name: str
    description: str
    direction: str  # "outbound": the agent calls the persona; "inbound": the persona rings the agent
    states: dict[str, State]
    start: str
    success: Success
    goal: FilePath | None = None  # the goal this persona is written for (bench conversation uses it)
    caller_number: str = "+14155550199"  # inbound: the number the persona rings from
    speaks_first: bool = True  # say the start state's line on answer (else after the agent's first words)
    answer_delay_s: float = 2.0
    answer_pause_s: float = 1.0  # audio up -> its first words (when it speaks first)
    hangup_after_s: float = 240.0  # the persona hangs up after this long, whatever happens
    silence_ms: int = 400  # agent silence that ends its utterance (then it is transcribed)
    max_wait_s: float = 15.0  # an agent silent this long counts as an answer that matched nothing
    noise_snr_db: float | None = None  # line noise mixed into the persona's audio at this SNR
    source: FilePath | None = field(default=None, compare=False)

    def texts(self) -> list[str]:
        """Every line the persona may say that needs no captured value (rendered ahead of time)."""
        out: list[str] = []
        for state in self.states.values():
            for text in (state.say, state.reask, state.give_up, state.interrupt):
                if text and "{" not in text and text not in out:
                    out.append(text)
        return out


_TOP = {
    "name", "description", "goal", "direction", "caller_number", "start", "speaks_first", "answer_delay_s", "answer_pause_s",
    "hangup_after_s", "silence_ms", "max_wait_s", "retries", "give_up", "noise", "states", "success",
}  # fmt: skip
_STATE = {"say", "on", "reask", "retries", "give_up", "hangup", "interrupt_ms", "interrupt"}
_ON = {"match", "goto"}
_SUCCESS = {"reached", "avoid", "objective", "polite_end", "never", "report", "outcome"}
_NOISE = {"snr_db"}


class _Checker:
    """Typed reads of the parsed TOML with errors that carry the file and line of the offending key."""

    def __init__(self, source: str, lines: KeyLines) -> None:
        self.source, self.lines = source, lines

    def fail(self, path: Path, message: str) -> PersonaError:
        line = self.lines.line(path)
        where = f"{self.source}:{line}" if line else self.source
        key = ".".join(str(p) if isinstance(p, str) else f"[{p}]" for p in path).replace(".[", "[")
        return PersonaError(f"{where}: {key + ': ' if key else ''}{message}")

    def table(self, value: Any, path: Path, allowed: set[str]) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(path, f"expected a table, got {_kind(value)}")
        for key in value:
            if key not in allowed:
                close = difflib.get_close_matches(key, sorted(allowed), n=1)
                hint = f"did you mean {close[0]!r}?" if close else f"allowed: {', '.join(sorted(allowed))}"
                raise self.fail((*path, key), f"unknown key ({hint})")
        return value

    def get(self, table: dict[str, Any], path: Path, key: str, kind: type | tuple[type, ...], label: str) -> Any:
        value = table.get(key)
        if value is None:
            return None
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
            raise self.fail((*path, key), f"expected {label}, got {value!r}")
        return value

    def text(self, table: dict[str, Any], path: Path, key: str, required: bool = False) -> str | None:
        value = self.get(table, path, key, str, "text")
        if value is not None and not value.strip():
            raise self.fail((*path, key), "must not be empty")
        if value is None and required:
            raise self.fail(path, f'needs {key} = "..."')
        return value

    def number(self, table: dict[str, Any], path: Path, key: str, low: float, high: float) -> float | None:
        value = self.get(table, path, key, (int, float), "a number")
        if value is not None and not low <= value <= high:
            raise self.fail((*path, key), f"{value} is outside {low:g}..{high:g}")
        return None if value is None else float(value)

    def texts(self, table: dict[str, Any], path: Path, key: str) -> tuple[str, ...]:
        value = table.get(key)
        if value is None:
            return ()
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            raise self.fail((*path, key), f"expected text or a list of texts, got {value!r}")
        return tuple(value)

    def regex(self, pattern: str, path: Path) -> re.Pattern[str]:
        try:
            return re.compile(pattern, re.IGNORECASE)
        except re.error as exc:
            raise self.fail(path, f"not a valid regular expression: {exc}") from None

    def one_of(self, name: str, known: list[str], path: Path, what: str) -> str:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(known)})"
            raise self.fail(path, f"no {what} {name!r}{hint}")
        return name


def _kind(value: Any) -> str:
    return {dict: "a table", list: "an array", str: "text", bool: "true/false"}.get(type(value), type(value).__name__)


def _fields(text: str, check: _Checker, path: Path) -> set[str]:
    """The {value} names a line uses (and a clear error for stray braces)."""
    try:
        return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}
    except ValueError as exc:
        raise check.fail(path, f"{exc} (write {{{{ and }}}} for literal braces)") from None


def _state(name: str, raw: Any, check: _Checker, defaults: dict[str, Any]) -> State:
    path: Path = ("states", name)
    table = check.table(raw, path, _STATE)
    on_raw = table.get("on", [])
    if not isinstance(on_raw, list):
        raise check.fail((*path, "on"), "expected an array of tables ([[states." + name + ".on]])")
    transitions = []
    for i, item in enumerate(on_raw):
        item_path: Path = (*path, "on", i)
        entry = check.table(item, item_path, _ON)
        pattern = check.text(entry, item_path, "match", required=True)
        goto = check.text(entry, item_path, "goto", required=True)
        assert pattern is not None and goto is not None
        transitions.append(Transition(check.regex(pattern, (*item_path, "match")), goto))
    hangup = bool(check.get(table, path, "hangup", bool, "true or false"))
    if not hangup and not transitions:
        raise check.fail(path, f"has no way on: add [[states.{name}.on]] entries or hangup = true")
    if hangup and transitions:
        raise check.fail((*path, "on"), "a hangup state ends the call, so it cannot have transitions")
    interrupt_ms = check.number(table, path, "interrupt_ms", 0, 60_000)
    interrupt = check.text(table, path, "interrupt")
    if interrupt is not None and interrupt_ms is None:
        raise check.fail((*path, "interrupt"), "needs interrupt_ms (how far into the agent's speech to start)")
    retries = check.number(table, path, "retries", 0, 20)
    return State(
        name=name,
        say=check.text(table, path, "say", required=True) or "",
        on=tuple(transitions),
        reask=check.text(table, path, "reask"),
        retries=int(defaults["retries"] if retries is None else retries),
        give_up=check.text(table, path, "give_up") or defaults["give_up"],
        hangup=hangup,
        interrupt_ms=None if interrupt_ms is None else int(interrupt_ms),
        interrupt=interrupt,
    )


def _success(raw: Any, check: _Checker, states: list[str]) -> Success:
    path: Path = ("success",)
    table = check.table(raw, path, _SUCCESS)
    reached = check.texts(table, path, "reached")
    avoid = check.texts(table, path, "avoid")
    for key, names in (("reached", reached), ("avoid", avoid)):
        for name in names:
            check.one_of(name, states, (*path, key), "state")
    objective = check.text(table, path, "objective") or ("reached" if reached else "never")
    if objective not in OBJECTIVE_TRUTHS:
        raise check.fail((*path, "objective"), f"{objective!r} is not one of {', '.join(OBJECTIVE_TRUTHS)}")
    if objective == "reached" and not reached:
        raise check.fail((*path, "objective"), '"reached" needs success.reached (the states where the objective is met)')
    never = tuple(check.regex(p, (*path, "never")) for p in check.texts(table, path, "never"))
    report, outcome = check.texts(table, path, "report"), check.texts(table, path, "outcome")
    for key, patterns in (("report", report), ("outcome", outcome)):
        for pattern in patterns:
            check.regex(re.sub(r"\{\w+\}", "x", pattern), (*path, key))
    if outcome and not reached:
        raise check.fail((*path, "outcome"), "needs success.reached (the outcome is checked once it is reached)")
    return Success(
        reached=reached,
        avoid=avoid,
        objective=objective,
        polite_end=bool(check.get(table, path, "polite_end", bool, "true or false")),
        never=never,
        report=report,
        outcome=outcome,
    )


def parse_persona(text: str, source: FilePath | None = None, default_name: str = "persona") -> Persona:
    """A validated Persona from the TOML text of a persona file."""
    where = str(source) if source else default_name
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PersonaError(f"{where}: not valid TOML: {exc}") from None
    check = _Checker(where, KeyLines(text))
    top = check.table(data, (), _TOP)
    direction = check.text(top, (), "direction") or "outbound"
    check.one_of(direction, list(DIRECTIONS), ("direction",), "direction")
    retries = check.number(top, (), "retries", 0, 20)
    defaults = {"retries": 2 if retries is None else int(retries), "give_up": check.text(top, (), "give_up") or DEFAULT_GIVE_UP}
    raw_states = top.get("states")
    if not isinstance(raw_states, dict) or not raw_states:
        raise check.fail(("states",), 'needs at least one state: [states.NAME] with say = "..."')
    states = {name: _state(name, raw, check, defaults) for name, raw in raw_states.items()}
    names = list(states)
    captured: set[str] = set()
    for name, state in states.items():
        for i, transition in enumerate(state.on):
            check.one_of(transition.goto, names, ("states", name, "on", i, "goto"), "state")
            captured |= set(transition.pattern.groupindex)
    for name, state in states.items():
        for key in ("say", "reask", "give_up", "interrupt"):
            value = getattr(state, key)
            unknown = _fields(value, check, ("states", name, key)) - captured if value else set()
            if unknown:
                raise check.fail(
                    ("states", name, key), f"{{{sorted(unknown)[0]}}} is captured by no match pattern (name it with (?P<...>...))"
                )
    start = check.text(top, (), "start") or names[0]
    check.one_of(start, names, ("start",), "state")
    success = _success(top.get("success", {}), check, names)
    for key in ("report", "outcome"):
        for pattern in getattr(success, key):
            unknown = _fields(pattern, check, ("success", key)) - captured
            if unknown:
                raise check.fail(("success", key), f"{{{sorted(unknown)[0]}}} is captured by no match pattern")
    noise = check.table(top.get("noise", {}), ("noise",), _NOISE)
    goal = check.text(top, (), "goal")
    return Persona(
        name=check.text(top, (), "name") or default_name,
        description=check.text(top, (), "description") or "",
        direction=direction,
        states=states,
        start=start,
        success=success,
        goal=_goal_path(goal, source) if goal else None,
        caller_number=check.text(top, (), "caller_number") or "+14155550199",
        speaks_first=_or_bool(check.get(top, (), "speaks_first", bool, "true or false"), direction == "outbound"),
        answer_delay_s=_or(check.number(top, (), "answer_delay_s", 0, 60), 2.0),
        answer_pause_s=_or(check.number(top, (), "answer_pause_s", 0, 30), 1.0),
        hangup_after_s=_or(check.number(top, (), "hangup_after_s", 5, 3600), 240.0),
        silence_ms=int(_or(check.number(top, (), "silence_ms", 100, 5000), 400)),
        max_wait_s=_or(check.number(top, (), "max_wait_s", 1, 600), 15.0),
        noise_snr_db=check.number(noise, ("noise",), "snr_db", -10, 60),
        source=source,
    )


def _or(value: float | None, default: float) -> float:
    return default if value is None else value


def _or_bool(value: bool | None, default: bool) -> bool:
    return default if value is None else value


def _goal_path(raw: str, source: FilePath | None) -> FilePath:
    """A goal named relative to the persona file, else to the project (built-ins name goals/examples/...)."""
    path = FilePath(raw).expanduser()
    if path.is_absolute():
        return path
    near = source.parent / path if source else path
    return near if near.exists() else REPO_ROOT / path


def builtin_personas() -> list[str]:
    """Names of the personas shipped in cellcall.eval.personas."""
    folder = resources.files("cellcall.eval.personas")
    return sorted(p.name[: -len(".toml")] for p in folder.iterdir() if p.name.endswith(".toml"))


def load_persona(name_or_path: str | FilePath) -> Persona:
    """A built-in persona by name (e.g. "receptionist") or a persona file by path."""
    text_name = str(name_or_path)
    path = FilePath(text_name).expanduser()
    if text_name.endswith(".toml") or path.exists():
        if not path.is_file():
            raise PersonaError(f"persona file not found: {path}")
        try:
            raw = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise PersonaError(f"{path}: cannot read: {exc}") from None
        return parse_persona(raw, source=path.resolve(), default_name=path.stem)
    names = builtin_personas()
    if text_name not in names:
        close = difflib.get_close_matches(text_name, names, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise PersonaError(f"no built-in persona {text_name!r}: {hint}built-ins are {', '.join(names)}")
    resource = resources.files("cellcall.eval.personas") / f"{text_name}.toml"
    return parse_persona(resource.read_text(encoding="utf-8"), source=FilePath(str(resource)), default_name=text_name)
