"""A one-line note per call in the OpenClaw workspace's daily memory file, `memory/YYYY-MM-DD.md`.

OpenClaw indexes those files for its memory search, so "did we reach the dentist?" finds the call. The
note holds only facts cellcall produced (time, number, goal, status, report path), never the other party's
words: those stay in the report, which memory search reaches through `memory.search.extraPaths`.
"""

from __future__ import annotations

import os
from pathlib import Path

from cellcall.config import Settings
from cellcall.openclaw.payload import INLINE_LIMIT, clean_text
from cellcall.record import CallRecord


def workspace_dir(settings: Settings) -> Path:
    """settings.openclaw.workspace, else OpenClaw's default workspace `~/.openclaw/workspace`."""
    configured = settings.openclaw.workspace
    return Path(configured).expanduser() if configured else Path.home() / ".openclaw" / "workspace"


def memory_note(record: CallRecord, folder: Path) -> str:
    number = clean_text(record.number or "unknown number", INLINE_LIMIT)
    return (
        f"- {record.started.strftime('%H:%M')} cellcall {record.direction.value} call {number} "
        f"(goal {clean_text(record.goal, INLINE_LIMIT)}): {record.status.value}, objective met: "
        f"{record.objective_met.value}. Report: {folder.resolve() / 'report.md'} (call {record.call_id})\n"
    )


def append_memory_note(settings: Settings, record: CallRecord, folder: Path) -> Path:
    """Append the note once (a repeated call id is skipped); returns the daily file."""
    daily = workspace_dir(settings) / "memory" / f"{record.started.strftime('%Y-%m-%d')}.md"
    daily.parent.mkdir(parents=True, exist_ok=True)
    if daily.exists() and f"(call {record.call_id})" in daily.read_text(encoding="utf-8", errors="replace"):
        return daily
    fd = os.open(daily, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, memory_note(record, folder).encode("utf-8"))
    finally:
        os.close(fd)
    return daily
