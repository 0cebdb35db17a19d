"""`cellcall queue status | push | drain`, and the fleet's part of `cellcall calls` / `cellcall status`.

Each command connects to `[queue] url` with the token from CELLCALL_QUEUE_TOKEN; a refused or
unreachable server is one clear line and exit 1, never a traceback. Goal files are validated
before anything is pushed: one bad file pushes none of them.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from cellcall.config import Settings

queue_app = typer.Typer(help="The fleet queue (queue.url): push goals, see the workers, drain.", no_args_is_help=True)


def _settings() -> Settings:
    from cellcall.cli.app import settings

    return settings()


def _client(settings: Settings) -> Any:
    from cellcall.queue.connection import QueueClient, QueueError

    if not settings.queue.url:
        typer.secho("error: no [queue] url in the configuration (see README, 'Fleet')", fg="red", err=True)
        raise typer.Exit(2)
    try:
        return QueueClient(settings.queue)
    except QueueError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(1) from None


def _ago(seconds: float) -> str:
    return f"{seconds:.0f} s ago" if seconds < 120 else f"{seconds / 60:.0f} min ago"


def render_fleet(data: dict[str, Any]) -> Table:
    """Workers, their lines and what they are calling; the queue depth and claims by phase in the title."""
    claims = ", ".join(f"{phase} {count}" for phase, count in sorted(data["claims"].items())) or "none"
    table = Table(title=f"Fleet {data['url']}: {data['queued']} queued; claims: {claims}")
    for column in ("worker", "line", "caller id", "calling", "calls", "seen"):
        table.add_column(column)
    for worker in data["workers"]:
        table.add_row(
            str(worker.get("worker")),
            str(worker.get("line")),
            str(worker.get("caller_id") or ""),
            ", ".join(worker.get("calling") or []) or "idle",
            str(worker.get("calls", 0)),
            _ago(float(worker["seen_s_ago"])),
        )
    return table


def fleet_status(settings: Settings) -> dict[str, Any]:
    from cellcall.queue import fleet

    client = _client(settings)
    try:
        return fleet.status(client)
    finally:
        client.close()


@queue_app.command("status")
def status(as_json: bool = typer.Option(False, "--json", help="Print the status as JSON.")) -> None:
    """Goals waiting on the queue, claims by phase, and every worker with its line and current call."""
    data = fleet_status(_settings())
    if as_json:
        typer.echo(json.dumps(data, indent=2))
    else:
        Console().print(render_fleet(data))


@queue_app.command("push")
def push(goals: list[Path] = typer.Argument(..., help="Goal files to queue for the fleet.")) -> None:
    """Validate the goal files, then put them on the queue; the first free line that may take each dials it."""
    from cellcall.queue import fleet
    from cellcall.queue.fleet import PushError

    settings = _settings()
    messages, problems = [], []
    for path in goals:
        try:
            messages.append(fleet.goal_message(path, settings.policy.default_country))
        except PushError as exc:
            problems.append(str(exc))
    if problems:
        for problem in problems:
            typer.secho(f"error: {problem}", fg="red", err=True)
        typer.secho("nothing was pushed", fg="red", err=True)
        raise typer.Exit(1)
    client = _client(settings)
    try:
        fleet.push(client, messages)
    except Exception as exc:  # noqa: BLE001 - a server gone mid-push: say how far it got
        typer.secho(f"error: push stopped ({type(exc).__name__}); check `cellcall queue status`", fg="red", err=True)
        raise typer.Exit(1) from None
    finally:
        client.close()
    for message in messages:
        typer.echo(f"queued {message.source} ({message.route}, key {message.key})")


@queue_app.command("drain")
def drain(
    into: Path = typer.Option(Path("drained"), "--into", help="Folder the waiting goals are written to."),
) -> None:
    """Take every goal still waiting off the queue into a folder (calls in progress go on); push them again later."""
    from cellcall.queue import fleet

    client = _client(_settings())
    try:
        saved = fleet.drain(client, into)
    finally:
        client.close()
    typer.echo(f"drained {len(saved)} goal(s) into {into}")


def print_fleet_calls(settings: Settings, limit: int, as_json: bool) -> None:
    """`cellcall calls` with [queue]: the reports every worker published, newest first."""
    from cellcall.queue import fleet

    client = _client(settings)
    try:
        rows = fleet.reports(client, limit)
    finally:
        client.close()
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title=f"Fleet calls ({settings.queue.url})")
    for column in ("at", "goal", "line", "status", "number", "call id"):
        table.add_column(column)
    for row in rows:
        call = row.get("call") or {}
        at = datetime.fromtimestamp(float(row.get("at") or 0), UTC).strftime("%Y-%m-%d %H:%M")
        table.add_row(
            at,
            str(row["source"]),
            str(row["line"]),
            str(row["status"]),
            str(call.get("number") or ""),
            str(call.get("call_id") or ""),
        )
    Console().print(table)
