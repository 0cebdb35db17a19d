"""`cellcall status`: the queue, the line and the last calls, read from files only.

A running `cellcall watch` owns the modem, so this never opens a port: the line's state comes from
the runner's status file (`goals/.cellcall/runner-PID.json`), the queue from the goals folders and
the last calls from the outbox.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Group
from rich.table import Table

from cellcall.config import Settings
from cellcall.goal import GoalError, load_goal
from cellcall.outbox import list_calls
from cellcall.watch.inbox import STATE_DIR, Inbox, Owner, read_json


def _when(value: datetime | str | None) -> str:
    if value is None:
        return "now"
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.astimezone().isoformat(timespec="seconds")


def _alive(owner: Any) -> bool:
    found = Owner.from_json(owner)
    return found is not None and found.alive()


def _runners(goals: Path) -> list[dict[str, Any]]:
    """Status files of runners still alive (a killed runner's file is stale)."""
    found = []
    for path in sorted((goals / STATE_DIR).glob("runner-*.json")):
        data = read_json(path)
        if data and _alive(data.get("owner")):
            found.append(data)
    return found


def _queued(inbox: Inbox, settings: Settings, exclude: str) -> list[dict[str, Any]]:
    rows = []
    for path in inbox.queued(exclude=[exclude]):
        try:
            goal = load_goal(path, settings.policy.default_country)
        except GoalError as exc:
            rows.append({"file": path.name, "due": None, "note": f"invalid: {exc.lines()[0] if exc.lines() else exc}"})
            continue
        due = goal.not_before.isoformat() if goal.not_before else None
        rows.append({"file": path.name, "goal": goal.name, "number": goal.number, "due": due, "note": ""})
    return rows


def collect(settings: Settings, goals_dir: Path | None = None) -> dict[str, Any]:
    """Everything `cellcall status` shows, as plain JSON-ready data."""
    goals = Path(goals_dir or settings.paths.goals)
    if not goals.is_dir():
        raise FileNotFoundError(f"goals folder not found: {goals} (set paths.goals or pass GOALS_DIR)")
    inbox = Inbox(goals, create=False)
    inbound = goals / settings.inbound.goal
    outbox = Path(settings.paths.outbox)
    return {
        "goals": str(goals),
        "runners": _runners(goals),
        "inbound_goal": str(inbound) if inbound.is_file() and settings.inbound.enabled else None,
        "queued": _queued(inbox, settings, inbound.name),
        "waiting": [
            {"file": w.source, "due": w.due.isoformat(), "reason": w.reason, "retries_done": w.attempt} for w in inbox.waiting()
        ],
        "running": [
            {
                "file": c.source_name,
                "phase": c.state.get("phase"),
                "outbox": c.outbox,
                "pid": (c.state.get("owner") or {}).get("pid"),
                "alive": _alive(c.state.get("owner")),
            }
            for c in inbox.running_claims()
        ],
        "done": len(list(inbox.done.glob("*.result.json"))),
        "failed": len(list(inbox.failed.glob("*.error.md"))),
        "last_calls": [
            {
                "started": r.started.isoformat(),
                "direction": r.direction.value,
                "number": r.number,
                "goal": r.goal,
                "status": r.status.value,
                "folder": r.extra.get("folder"),
            }
            for r in (list_calls(outbox, 10) if outbox.is_dir() else [])
        ],
    }


def _line_summary(status: dict[str, Any]) -> Table:
    table = Table(title="Runner and line", title_justify="left")
    for column in ("pid", "line", "current call", "calls", "updated"):
        table.add_column(column)
    for runner in status["runners"]:
        line = runner.get("line") or {}
        current = runner.get("current") or {}
        table.add_row(
            str(runner["owner"]["pid"]),
            " ".join(filter(None, [line.get("state"), line.get("detail")])),
            current.get("goal") or "idle",
            str(runner.get("calls", 0)),
            _when(runner.get("updated")),
        )
    if not status["runners"]:
        table.add_row("-", "no `cellcall watch` running", "-", "-", "-")
    return table


def render(status: dict[str, Any]) -> Group:
    """Rich tables for the terminal."""
    queue = Table(title=f"Queue in {status['goals']} (done {status['done']}, failed {status['failed']})", title_justify="left")
    for column in ("state", "goal file", "due", "note"):
        queue.add_column(column)
    for row in status["running"]:
        note = f"pid {row['pid']}" + ("" if row["alive"] else " (dead: reported as interrupted at next start)")
        queue.add_row("running", row["file"], "-", note)
    for row in status["waiting"]:
        queue.add_row("waiting", row["file"], _when(row["due"]), f"retry after {row['reason']} ({row['retries_done']} done)")
    for row in status["queued"]:
        queue.add_row("queued", row["file"], _when(row["due"]), row["note"])
    calls = Table(title="Last calls", title_justify="left")
    for column in ("started", "dir", "number", "goal", "status"):
        calls.add_column(column)
    for row in status["last_calls"]:
        calls.add_row(_when(row["started"]), row["direction"], row["number"] or "-", row["goal"], row["status"])
    inbound = f"inbound: answering with {status['inbound_goal']}" if status["inbound_goal"] else "inbound: not answering"
    return Group(_line_summary(status), inbound, queue, calls)
