"""What the basic commands print: rich tables for people, JSON for programs.

Cells are rich `Text`, never markup strings, because goal names and reasons can carry text a
caller or another program wrote, and `[bold]`-style markup in them must print as written.
"""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from cellcall.goal import GoalCheck
from cellcall.record import CallRecord, Speaker


def _console() -> Console:
    return Console(highlight=False, soft_wrap=False)


def _table(title: str, columns: list[str], rows: list[list[Any]], fold: tuple[str, ...]) -> Table:
    """A table whose cells stay on one line, except the `fold` columns, which fold to fit the width."""
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold", no_wrap=column not in fold)
    for row in rows:
        table.add_row(*(Text("" if cell is None else str(cell)) for cell in row))
    return table


def _dump(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False)


def checks_json(checks: list[GoalCheck]) -> str:
    return _dump(
        [
            {
                "path": str(check.path),
                "valid": check.ok,
                "name": check.goal.name if check.goal else None,
                "number": check.goal.number if check.goal else None,
                "direction": check.goal.direction if check.goal else None,
                "problems": [{"line": p.line, "key": p.key, "message": p.message} for p in check.problems],
            }
            for check in checks
        ]
    )


def checks_text(checks: list[GoalCheck]) -> str:
    """One line per valid file, one line per problem of an invalid one, then a count."""
    if not checks:
        return "no goal files found"
    lines = []
    for check in checks:
        if check.goal is not None:
            lines.append(f"ok  {check.path} ({check.goal.name}, {check.goal.direction}, {check.goal.number or 'no number'})")
        for problem in check.problems:
            lines.append(
                f"{check.path}:{problem.line}: {problem.message}" if problem.line else f"{check.path}: {problem.message}"
            )
    bad = sum(1 for check in checks if not check.ok)
    lines.append(f"{len(checks) - bad} valid, {bad} invalid")
    return "\n".join(lines)


def print_settings(rows: list[tuple[str, Any, str]], as_json: bool) -> None:
    if as_json:
        print(_dump([{"key": key, "value": value, "source": source} for key, value, source in rows]))
        return
    _console().print(
        _table(
            "Effective settings (secrets redacted)",
            ["setting", "value", "source"],
            [list(row) for row in rows],
            ("value", "source"),
        )
    )


def _call_row(record: CallRecord) -> dict[str, Any]:
    return {
        "call_id": record.call_id,
        "started": record.started.isoformat(timespec="seconds"),
        "goal": record.goal,
        "number": record.number,
        "direction": record.direction.value,
        "status": record.status.value,
        "objective_met": record.objective_met.value,
        "duration_s": round(record.duration_s, 1),
        "turns": sum(1 for turn in record.turns if turn.speaker is not Speaker.SYSTEM),
        "folder": record.extra.get("folder"),
    }


def print_calls(records: list[CallRecord], as_json: bool) -> None:
    rows = [_call_row(record) for record in records]
    if as_json:
        print(_dump(rows))
        return
    if not rows:
        print("no calls in the outbox yet")
        return
    columns = ["started", "goal", "number", "status", "met", "s", "call id"]
    cells = [
        [
            f"{r.started:%Y-%m-%d %H:%M}",
            r.goal,
            r.number or "",
            r.status.value,
            r.objective_met.value,
            f"{r.duration_s:.0f}",
            r.call_id,
        ]
        for r in records
    ]
    _console().print(_table("Recent calls", columns, cells, ("goal", "number", "call id")))
