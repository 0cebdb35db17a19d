"""Goal text -> a validated Goal: the frontmatter boundary, the YAML walk with line numbers, the body's sections.

Goal files are written by people and by other programs, so parsing is strict and reports every
problem at once with its line: unknown keys get a "did you mean", and no key reaches the dialling
policy. YAML is composed with the safe loader (python-frontmatter's boundary and loader), keeping
key nodes so that line numbers survive and YAML 1.1 surprises (`on:` as true, `+1415...` as an
integer) read as the user wrote them.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import typing
from datetime import date, datetime
from pathlib import Path
from typing import Any

import yaml
from frontmatter.default_handlers import YAMLHandler
from markdown_it import MarkdownIt

from cellcall.config import LlmSettings, PolicySettings, SttSettings, TtsSettings
from cellcall.goal.model import (
    DEFAULT_HOLD_MAX_S,
    DEFAULT_PERSONA,
    DIRECTIONS,
    HANGUP_KEYS,
    KEYS,
    MAX_BYTES,
    MAX_RETRY_ATTEMPTS,
    PREAMBLE_SECTION,
    RETRY_KEYS,
    RETRY_ON,
    VOICEMAIL_ACTIONS,
    VOICEMAIL_KEYS,
    Goal,
    GoalError,
    GoalProblem,
    HangupRules,
    RetryRule,
    VoicemailRule,
)
from cellcall.names import safe_name
from cellcall.phone import normalize_number

# Per-call engine overrides a goal may set; hosts, keys and threads stay in cellcall.toml.
OVERRIDES: dict[str, tuple[type, tuple[str, ...]]] = {
    "llm": (LlmSettings, ("model", "ollama_model", "max_tokens", "temperature")),
    "stt": (SttSettings, ("model", "beam_size")),
    "tts": (TtsSettings, ("voice", "length_scale")),
}
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_LANGUAGE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
MAX_SHORT_TEXT = 200
_DTMF_GROUP = re.compile(r"[0-9*#A-D]{1,32}")
MAX_TAG = 40


def parse_goal(text: str, name: str, path: Path | None = None, default_country: str = "US") -> Goal:
    """Validate goal text; `name` (usually the file stem) names the goal when it has no `id`."""
    source = str(path) if path else name
    problems = _check_text(text)
    if problems:
        raise GoalError(problems, source)
    fm, body_line, body = _split(text.removeprefix("\ufeff"), source)
    reader = _Reader(fm, body_line, default_country)
    goal = reader.goal(name, path)
    goal.sections = _sections(body)
    if reader.problems:
        raise GoalError(sorted(reader.problems, key=lambda p: (p.line is None, p.line or 0)), source)
    return goal


def _check_text(text: str) -> list[GoalProblem]:
    if len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        return [GoalProblem(None, None, f"larger than {MAX_BYTES // 1024} KiB")]
    if "\x00" in text:
        return [GoalProblem(text[: text.index("\x00")].count("\n") + 1, None, "contains a NUL byte")]
    if any("\ud800" <= ch <= "\udfff" for ch in text):
        return [GoalProblem(None, None, "not UTF-8 text (lone surrogate)")]
    return []


def _split(text: str, source: str) -> tuple[str, int, str]:
    """(frontmatter, its first line number, body) using python-frontmatter's `---` boundary."""
    boundary = YAMLHandler.FM_BOUNDARY
    opening = boundary.match(text)
    closing = boundary.search(text, opening.end()) if opening else None
    if opening is None:
        raise GoalError([GoalProblem(1, None, "must start with a '---' line opening the YAML frontmatter")], source)
    if closing is None:
        raise GoalError([GoalProblem(1, None, "frontmatter is not closed by a second '---' line")], source)
    first_line = text[: opening.end()].count("\n") + 1
    return text[opening.end() : closing.start()], first_line, text[closing.end() :]


_Entry = tuple[Any, int, yaml.Node]  # value, 1-based line, node


class _Reader:
    """Walks the composed YAML, collecting every problem instead of stopping at the first."""

    def __init__(self, fm: str, first_line: int, default_country: str) -> None:
        self.first_line = first_line
        self.default_country = default_country
        self.problems: list[GoalProblem] = []
        self.unreadable: set[str] = set()  # keys whose value failed to construct (already reported)
        self.root: yaml.Node | None = None
        try:
            self.loader = yaml.SafeLoader(fm)  # its reader refuses control characters here, not later
            self.root = self.loader.get_single_node()
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            self.add(self._line(mark), None, f"YAML error: {getattr(exc, 'problem', None) or exc}")
        except RecursionError:
            self.add(None, None, "YAML is nested too deeply")

    def add(self, line: int | None, key: str | None, message: str) -> None:
        self.problems.append(GoalProblem(line, key, message))

    def _line(self, mark: Any) -> int | None:
        return self.first_line + mark.line if mark is not None else None

    def goal(self, name: str, path: Path | None) -> Goal:
        if self.root is None and self.problems:
            return Goal(name=safe_name(name, "goal"), path=path, number=None, persona=DEFAULT_PERSONA, objective="")
        top = self.mapping(self.root, None, KEYS) if self.root is not None else {}
        direction = self.choice(top, "direction", DIRECTIONS, "outbound")
        goal_id = self.identifier(top)
        goal = Goal(
            name=safe_name(goal_id or name, "goal"),
            path=path,
            number=self.number(top, required=direction == "outbound"),
            persona=self.text(top, "persona") or DEFAULT_PERSONA,
            objective=self.text(top, "objective", required=True) or "",
            opening=self.text(top, "opening"),
            hangup=self.hangup(top),
            voicemail=self.voicemail(top),
            retry=self.retry(top),
            not_before=self.moment(top, "not_before"),
            not_after=self.moment(top, "not_after"),
            language=self.language(top),
            voice=self.text(top, "voice", limit=MAX_SHORT_TEXT),
            llm=self.overrides(top, "llm"),
            stt=self.overrides(top, "stt"),
            tts=self.overrides(top, "tts"),
            tags=self.tags(top),
            id=goal_id,
            direction=direction,
            line=self.text(top, "line", limit=MAX_SHORT_TEXT),
            menu=self.text(top, "menu", limit=MAX_SHORT_TEXT),
            keys=self.keys(top),
        )
        if goal.not_before and goal.not_after and goal.not_after <= goal.not_before:
            self.add(top["not_after"][1], "not_after", "not_after must be later than not_before")
        return goal

    def mapping(self, node: yaml.Node | None, where: str | None, allowed: tuple[str, ...]) -> dict[str, _Entry]:
        """Entries of a mapping node by raw key text; unknown, duplicate and odd keys are problems."""
        label = where or "frontmatter"
        if not isinstance(node, yaml.MappingNode):
            if not (where is None and isinstance(node, yaml.ScalarNode) and node.value == ""):
                self.add(self._line(node.start_mark) if node else None, where, f"{label} must be a mapping of key: value")
            return {}
        entries: dict[str, _Entry] = {}
        for key_node, value_node in node.value:
            line = self.first_line + key_node.start_mark.line
            if not isinstance(key_node, yaml.ScalarNode):
                self.add(line, where, f"{label}: keys must be plain names")
                continue
            key = key_node.value
            dotted = f"{where}.{key}" if where else key
            if key in entries:
                self.add(line, dotted, f"duplicate key {dotted!r} (first on line {entries[key][1]})")
            elif key not in allowed:
                self.add(line, dotted, f"unknown key {dotted!r}{_hint(key, allowed)}")
            else:
                entries[key] = (None, line, value_node)
        values = {key: (self.construct(node, line, key), line, node) for key, (_, line, node) in entries.items()}
        return {key: entry for key, entry in values.items() if key not in self.unreadable}

    def construct(self, node: yaml.Node, line: int, key: str) -> Any:
        try:
            return self.loader.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, TypeError, OverflowError, RecursionError) as exc:
            self.add(line, key, f"{key}: cannot read value ({getattr(exc, 'problem', None) or exc})")
            self.unreadable.add(key)
            return None

    def text(
        self,
        entries: dict[str, _Entry],
        key: str,
        required: bool = False,
        limit: int | None = None,
        where: str = "",
        parent_line: int | None = None,
    ) -> str | None:
        dotted = f"{where}{key}"
        if key not in entries or entries[key][0] is None:
            if required and key not in self.unreadable:
                self.add(entries[key][1] if key in entries else parent_line, dotted, f"{dotted} is required")
            return None
        value, line, _ = entries[key]
        if not isinstance(value, str):
            self.add(line, dotted, f"{dotted} must be text, got {_kind(value)}")
            return None
        value = value.strip()
        if required and not value:
            self.add(line, dotted, f"{dotted} must not be empty")
        if limit and len(value) > limit:
            self.add(line, dotted, f"{dotted} is longer than {limit} characters")
        return value or None

    def choice(self, entries: dict[str, _Entry], key: str, options: tuple[str, ...], default: str, where: str = "") -> str:
        value = self.text(entries, key, where=where)
        if value is None:
            return default
        if value not in options:
            self.add(
                entries[key][1],
                f"{where}{key}",
                f"{where}{key} must be one of {', '.join(options)}, got {value!r}{_close(value, options)}",
            )
            return default
        return value

    def identifier(self, entries: dict[str, _Entry]) -> str | None:
        raw = entries.get("id")
        value = raw and raw[0]
        if raw and isinstance(value, int) and not isinstance(value, bool):
            value = raw[2].value
        if value is None or raw is None:
            return None
        if not isinstance(value, str) or not _ID.match(value) or ".." in value:
            self.add(raw[1], "id", "id must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
            return None
        return value

    def number(self, entries: dict[str, _Entry], required: bool) -> str | None:
        if "number" not in entries or entries["number"][0] is None:
            if required and "number" not in self.unreadable:
                self.add(
                    entries["number"][1] if "number" in entries else None, "number", "number is required for an outbound goal"
                )
            return None
        value, line, node = entries["number"]
        if isinstance(value, int) and not isinstance(value, bool):
            value = node.value  # unquoted +14155550132 is a YAML integer; keep the + as written
        if not isinstance(value, str):
            self.add(line, "number", f'number must be text such as "+14155550132", got {_kind(value)}')
            return None
        try:
            return normalize_number(value, self.default_country)
        except ValueError as exc:
            self.add(line, "number", f"number: {exc}")
            return None

    def positive(self, entries: dict[str, _Entry], key: str, where: str, allow_zero: bool = False) -> float | None:
        if key not in entries or entries[key][0] is None:
            return None
        value, line, _ = entries[key]
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
            or value < 0
            or (value == 0 and not allow_zero)
        ):
            bound = "0 or more" if allow_zero else "more than 0"
            self.add(line, f"{where}{key}", f"{where}{key} must be a number of seconds, {bound}; got {value!r}")
            return None
        return float(value)

    def strings(self, entries: dict[str, _Entry], key: str, where: str = "", limit: int = MAX_SHORT_TEXT) -> list[str]:
        if key not in entries or entries[key][0] is None:
            return []
        value, line, _ = entries[key]
        if not isinstance(value, list) or not all(isinstance(item, str) and item.strip() for item in value):
            self.add(line, f"{where}{key}", f"{where}{key} must be a list of text items, like [a, b]")
            return []
        if any(len(item) > limit for item in value):
            self.add(line, f"{where}{key}", f"{where}{key} has an item longer than {limit} characters")
            return []
        return [item.strip() for item in value]

    def section(self, top: dict[str, _Entry], key: str, allowed: tuple[str, ...]) -> dict[str, _Entry] | None:
        if key not in top or top[key][0] is None:
            return None
        return self.mapping(top[key][2], key, allowed)

    def hangup(self, top: dict[str, _Entry]) -> HangupRules:
        entries = self.section(top, "hangup", HANGUP_KEYS) or {}
        return HangupRules(
            max_duration_s=self.positive(entries, "max_duration_s", "hangup."),
            silence_timeout_s=self.positive(entries, "silence_timeout_s", "hangup."),
            hold_max_s=self.positive(entries, "hold_max_s", "hangup.") or DEFAULT_HOLD_MAX_S,
            when=self.strings(entries, "when", "hangup."),
        )

    def keys(self, top: dict[str, _Entry]) -> list[str]:
        """DTMF groups, one per phone menu: "2", "2 1" or "1234#" (keys 0-9 * # A-D)."""
        if "keys" not in top or top["keys"][0] is None:
            return []
        value, line, _ = top["keys"]
        text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
        groups = re.split(r"[\s,]+", text.strip().upper()) if isinstance(text, str) else []
        if not groups or not all(_DTMF_GROUP.fullmatch(group) for group in groups) or len(text) > MAX_SHORT_TEXT:
            self.add(line, "keys", f'keys must be phone keys (0-9 * # A-D), one group per menu, like "2" or "2 1"; got {value!r}')
            return []
        return groups

    def voicemail(self, top: dict[str, _Entry]) -> VoicemailRule | None:
        entries = self.section(top, "voicemail", VOICEMAIL_KEYS)
        if entries is None:
            return None
        if "action" not in entries:
            self.add(top["voicemail"][1], "voicemail.action", f"voicemail.action is required: {' or '.join(VOICEMAIL_ACTIONS)}")
        action = self.choice(entries, "action", VOICEMAIL_ACTIONS, "hangup", "voicemail.")
        message = (
            self.text(entries, "message", required=action == "leave_message", where="voicemail.", parent_line=top["voicemail"][1])
            or ""
        )
        return VoicemailRule(action=action, message=message)

    def retry(self, top: dict[str, _Entry]) -> RetryRule | None:
        entries = self.section(top, "retry", RETRY_KEYS)
        if entries is None:
            return None
        attempts = entries.get("attempts", (1, top["retry"][1], None))
        if isinstance(attempts[0], bool) or not isinstance(attempts[0], int) or not 0 <= attempts[0] <= MAX_RETRY_ATTEMPTS:
            self.add(
                attempts[1],
                "retry.attempts",
                f"retry.attempts must be a whole number from 0 to {MAX_RETRY_ATTEMPTS}, got {attempts[0]!r}",
            )
        on = self.strings(entries, "on", "retry.") if "on" in entries else list(RETRY_ON)
        for item in on:
            if item not in RETRY_ON:
                self.add(
                    entries["on"][1],
                    "retry.on",
                    f"retry.on: {item!r} is not one of {', '.join(RETRY_ON)}{_close(item, RETRY_ON)}",
                )
        backoff = self.positive(entries, "backoff_s", "retry.", allow_zero=True)
        count = attempts[0] if isinstance(attempts[0], int) and not isinstance(attempts[0], bool) else 0
        return RetryRule(attempts=count, backoff_s=600.0 if backoff is None else backoff, on=[i for i in on if i in RETRY_ON])

    def moment(self, entries: dict[str, _Entry], key: str) -> datetime | None:
        if key not in entries or entries[key][0] is None:
            return None
        value, line, _ = entries[key]
        if isinstance(value, str):
            try:
                value = datetime.fromisoformat(value.strip())
            except ValueError:
                self.add(line, key, f"{key} must be an ISO 8601 time with offset, like 2026-11-25T09:00:00-08:00")
                return None
        if not isinstance(value, datetime):
            got = "a date without a time" if isinstance(value, date) else _kind(value)
            self.add(line, key, f"{key} must be an ISO 8601 time with offset, like 2026-11-25T09:00:00-08:00; got {got}")
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            self.add(line, key, f"{key} needs a UTC offset (e.g. -08:00 or Z), so it means one moment everywhere")
            return None
        return value

    def language(self, entries: dict[str, _Entry]) -> str:
        value = self.text(entries, "language")
        if value is None:
            return "en"
        if not _LANGUAGE.match(value):
            self.add(entries["language"][1], "language", f"language must be a language code like en or en-US, got {value!r}")
            return "en"
        return value

    def tags(self, entries: dict[str, _Entry]) -> list[str]:
        return self.strings(entries, "tags", limit=MAX_TAG)

    def overrides(self, top: dict[str, _Entry], key: str) -> dict[str, Any]:
        settings_cls, allowed = OVERRIDES[key]
        entries = self.section(top, key, allowed) or {}
        types = typing.get_type_hints(settings_cls)
        result: dict[str, Any] = {}
        for name, (value, line, _) in entries.items():
            expected = types[name]
            ok = isinstance(value, expected) and not isinstance(value, bool)
            if expected is float and isinstance(value, int) and not isinstance(value, bool):
                ok, value = True, float(value)
            if ok and expected is not str and (value < 0 or not math.isfinite(value)):
                ok = False
            if not ok:
                self.add(line, f"{key}.{name}", f"{key}.{name} must be {_type_name(expected)}, got {value!r}")
                continue
            result[name] = value
        return result


def _sections(body: str) -> dict[str, str]:
    """Body text under each heading (any level), in order; text before the first heading is 'Notes'."""
    lines = body.splitlines()
    tokens = MarkdownIt("commonmark").parse(body)
    headings = [
        (t.map, tokens[i + 1].content.strip()) for i, t in enumerate(tokens) if t.type == "heading_open" and t.map is not None
    ]
    spans = [(PREAMBLE_SECTION, 0, headings[0][0][0] if headings else len(lines))]
    for index, (line_map, title) in enumerate(headings):
        end = headings[index + 1][0][0] if index + 1 < len(headings) else len(lines)
        spans.append((title or PREAMBLE_SECTION, line_map[1], end))
    sections: dict[str, str] = {}
    for title, start, end in spans:
        text = "\n".join(lines[start:end]).strip()
        if text:
            sections[title] = f"{sections[title]}\n\n{text}" if title in sections else text
    return sections


def _close(word: str, options: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return f' (did you mean "{close[0]}"?)' if close else ""


def _hint(word: str, options: tuple[str, ...]) -> str:
    """Why an unknown key is unknown: a near miss, a policy key, or the keys that exist."""
    if _close(word, options):
        return _close(word, options)
    if word in {f.name for f in dataclasses.fields(PolicySettings)}:
        return " (dialling policy is set in cellcall.toml, never in a goal file)"
    return f"; known keys: {', '.join(options)}"


def _kind(value: Any) -> str:
    return {dict: "a mapping", list: "a list", bool: "true/false", int: "a number", float: "a number"}.get(
        type(value), type(value).__name__
    )


def _type_name(kind: Any) -> str:
    return {str: "text", int: "a whole number, 0 or more", float: "a number, 0 or more"}.get(kind, str(kind))
