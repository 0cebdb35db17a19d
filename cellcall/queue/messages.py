"""What travels on the queue: goals (raw bytes plus a few headers) and call reports (JSON).

A goal message's subject is its route: `cellcall.goals.any`, or `cellcall.goals.line.<token>` for a
goal with `line:` (a line name, or a caller id as `caller-<digits>`). Its bytes are exactly the
file's, so every worker validates and hashes the same thing. Goal text is the caller's (untrusted):
it only ever reaches the goal parser.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cellcall.queue.claims import claim_key
from cellcall.queue.connection import GOALS_SUBJECT, REPORTS_SUBJECT

SOURCE_HEADER = "Cellcall-Source"
KEY_HEADER = "Cellcall-Key"
MAX_GOAL_BYTES = 256 * 1024
_TOKEN_UNSAFE = re.compile(r"[^a-z0-9_-]+")
_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def route_token(line: str) -> str:
    """The subject token of a line name or caller id (`office-sim`, `caller-14155550132`)."""
    text = line.strip()
    if text.startswith("+") or text.replace(" ", "").isdigit():
        return "caller-" + "".join(ch for ch in text if ch.isdigit())
    return _TOKEN_UNSAFE.sub("-", text.lower()).strip("-") or "unnamed"


def route_of(line: str | None) -> str:
    return f"line.{route_token(line)}" if line else "any"


@dataclass(frozen=True)
class GoalMessage:
    source: str  # the file name it came as
    raw: bytes
    route: str  # "any" or "line.<token>"

    @property
    def key(self) -> str:
        return claim_key(Path(self.source).stem, self.raw)

    @property
    def subject(self) -> str:
        return f"{GOALS_SUBJECT}.{self.route}"

    def headers(self) -> dict[str, str]:
        return {SOURCE_HEADER: self.source, KEY_HEADER: self.key}


def safe_source(name: str) -> str:
    """A goal's file name as sent (untrusted): its last part, plain characters, never hidden or empty."""
    cleaned = _NAME_UNSAFE.sub("-", Path(name).name).lstrip(".-")[:120]
    return cleaned or "goal.md"


def goal_from_message(subject: str, data: bytes, headers: dict[str, str] | None) -> GoalMessage:
    source = safe_source((headers or {}).get(SOURCE_HEADER) or "goal.md")
    route = subject.removeprefix(GOALS_SUBJECT + ".")
    return GoalMessage(source, data, route)


def report_subject(worker: str) -> str:
    return f"{REPORTS_SUBJECT}.{route_token(worker)}"


def report_payload(
    message: GoalMessage, worker: str, line: str, status: str, folder: Path | None, note: str | None = None
) -> bytes:
    """call.json and report.md of one call (read from its outbox folder), with where it was placed."""
    record: Any = None
    report_md = None
    if folder is not None:
        call_json = folder / "call.json"
        report_file = folder / "report.md"
        record = json.loads(call_json.read_text(encoding="utf-8")) if call_json.is_file() else None
        report_md = report_file.read_text(encoding="utf-8") if report_file.is_file() else None
    payload = {
        "key": message.key,
        "source": message.source,
        "worker": worker,
        "line": line,
        "status": status,
        "note": note,
        "outbox": str(folder) if folder else None,
        "at": time.time(),
        "call": record,
        "report_md": report_md,
    }
    return json.dumps(payload).encode()
