"""Goal files: YAML frontmatter + markdown body -> a validated Goal and the agent's instructions.

The public face of the goal package: reading files (size, encoding), checking many for
`cellcall validate`, and scaffolding a new one. The format and the Goal live in model.py, the
strict line-numbered reader in reader.py; their public names are importable from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cellcall.goal.model import (
    DEFAULT_PERSONA,
    DIRECTIONS,
    HANGUP_KEYS,
    KEYS,
    MAX_BYTES,
    MAX_RETRY_ATTEMPTS,
    NEVER_SECTION,
    PREAMBLE_SECTION,
    RETRY_KEYS,
    RETRY_ON,
    SCAFFOLD_NUMBER,
    TAG_HANGUP,
    TAG_OBJECTIVE_MET,
    TAG_VOICEMAIL,
    VOICEMAIL_ACTIONS,
    VOICEMAIL_KEYS,
    Goal,
    GoalError,
    GoalProblem,
    HangupRules,
    RetryRule,
    VoicemailRule,
)
from cellcall.goal.reader import OVERRIDES, parse_goal
from cellcall.names import safe_name
from cellcall.phone import normalize_number
from cellcall.templating import render_template

__all__ = [
    "DEFAULT_PERSONA", "DIRECTIONS", "HANGUP_KEYS", "KEYS", "MAX_BYTES", "MAX_RETRY_ATTEMPTS", "NEVER_SECTION",
    "OVERRIDES", "PREAMBLE_SECTION", "RETRY_KEYS", "RETRY_ON", "SCAFFOLD_NUMBER", "TAG_HANGUP", "TAG_OBJECTIVE_MET",
    "TAG_VOICEMAIL", "VOICEMAIL_ACTIONS", "VOICEMAIL_KEYS", "Goal", "GoalCheck", "GoalError", "GoalProblem",
    "HangupRules", "RetryRule", "VoicemailRule", "check_goal_files", "goal_files", "load_goal", "parse_goal",
    "scaffold_goal",
]  # fmt: skip


def load_goal(path: Path, default_country: str = "US") -> Goal:
    """Read and validate a goal file (at most 64 KiB of UTF-8, no NUL bytes); raises GoalError."""
    path = Path(path)
    source = str(path)
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_BYTES + 1)
    except IsADirectoryError:
        raise GoalError([GoalProblem(None, None, "is a folder, not a goal file")], source) from None
    except OSError as exc:
        raise GoalError([GoalProblem(None, None, f"cannot read: {exc.strerror or exc}")], source) from None
    if len(data) > MAX_BYTES:
        raise GoalError([GoalProblem(None, None, f"larger than {MAX_BYTES // 1024} KiB")], source)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise GoalError([GoalProblem(line, None, "not UTF-8 text")], source) from None
    return parse_goal(text, path.stem, path, default_country)


@dataclass
class GoalCheck:
    """The outcome of validating one file for `cellcall validate`."""

    path: Path
    goal: Goal | None
    problems: list[GoalProblem]

    @property
    def ok(self) -> bool:
        return self.goal is not None


def goal_files(paths: list[Path]) -> list[Path]:
    """Files as given, folders expanded to their *.md files (sorted); a missing path is kept to be reported."""
    found: list[Path] = []
    for path in paths:
        found.extend(sorted(p for p in path.glob("*.md") if p.is_file()) if path.is_dir() else [path])
    return found


def check_goal_files(paths: list[Path], default_country: str = "US") -> list[GoalCheck]:
    """Validate every goal file under `paths`, collecting problems instead of stopping."""
    checks = []
    for path in goal_files(paths):
        try:
            checks.append(GoalCheck(path, load_goal(path, default_country), []))
        except GoalError as error:
            checks.append(GoalCheck(path, None, error.problems))
    return checks


def scaffold_goal(
    name: str | None,
    number: str | None = None,
    objective: str | None = None,
    persona: str | None = None,
    opening: str | None = None,
    default_country: str = "US",
) -> str:
    """A new goal file from templates/goal.md.j2, checked to validate; GoalError if an input is bad."""
    try:
        e164 = normalize_number(number, default_country) if number else SCAFFOLD_NUMBER
    except ValueError as exc:
        raise GoalError([GoalProblem(None, "number", str(exc))], "--number") from None
    text = render_template(
        "goal.md.j2",
        name=safe_name(name, "goal") if name else None,
        number=e164,
        persona=persona or "Alex, a friendly assistant calling on behalf of Sam Taylor",
        objective=objective or "Describe in one sentence what this call must achieve",
        opening=opening,
    )
    parse_goal(text, name or "new", default_country=default_country)
    return text
