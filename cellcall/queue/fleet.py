"""The fleet seen from anywhere: push goals, read the reports and workers, drain the queue.

Used by `cellcall queue ...`, `cellcall calls` and `cellcall status` when `[queue] url` is set.
Every function takes a connected QueueClient and runs its coroutines on the client's thread.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from nats.js.errors import NoKeysError, NotFoundError

from cellcall.goal import GoalError, parse_goal
from cellcall.queue.claims import ClaimState
from cellcall.queue.connection import CLAIMS_BUCKET, GOALS_STREAM, REPORTS_STREAM, WORKERS_BUCKET, QueueClient
from cellcall.queue.messages import MAX_GOAL_BYTES, GoalMessage, goal_from_message, route_of, safe_source
from cellcall.queue.worker import push_goal


class PushError(ValueError):
    """A goal file that cannot go onto the queue (unreadable, too big, invalid); nothing was pushed."""


def goal_message(path: Path, default_country: str) -> GoalMessage:
    """The message for one goal file, validated first so a mistake is told here, not by a far worker."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise PushError(f"{path}: {exc.strerror or exc}") from None
    if len(raw) > MAX_GOAL_BYTES:
        raise PushError(f"{path}: {len(raw)} bytes is more than a goal may be ({MAX_GOAL_BYTES})")
    try:
        goal = parse_goal(raw.decode("utf-8"), path.stem, path, default_country)
    except UnicodeDecodeError:
        raise PushError(f"{path}: not UTF-8 text") from None
    except GoalError as exc:
        raise PushError("\n".join(exc.lines())) from None
    return GoalMessage(safe_source(path.name), raw, route_of(goal.line))


def push(client: QueueClient, messages: list[GoalMessage]) -> None:
    for message in messages:
        client.run(push_goal(client, message))


async def _reports(client: QueueClient, limit: int) -> list[dict[str, Any]]:
    assert client.js is not None
    info = await client.js.stream_info(REPORTS_STREAM)
    first, last = info.state.first_seq, info.state.last_seq
    out: list[dict[str, Any]] = []
    for seq in range(last, max(first, last - limit + 1) - 1, -1):
        if seq <= 0:
            break
        try:
            msg = await client.js.get_msg(REPORTS_STREAM, seq)
        except NotFoundError:
            continue
        out.append(json.loads(msg.data or b"{}"))
    return out


def reports(client: QueueClient, limit: int = 20) -> list[dict[str, Any]]:
    """The fleet's newest call reports first (call.json and report.md as each worker published them)."""
    return client.run(_reports(client, limit), timeout=30.0)


async def _bucket_values(client: QueueClient, bucket: str) -> dict[str, bytes]:
    kv = client.buckets[bucket]
    try:
        keys = await kv.keys()
    except NoKeysError:
        return {}
    values: dict[str, bytes] = {}
    for key in keys:
        try:
            values[key] = (await kv.get(key)).value or b""
        except NotFoundError:
            continue
    return values


def workers(client: QueueClient) -> list[dict[str, Any]]:
    """Workers that beat recently (with the seconds since their last beat)."""
    rows = [json.loads(v) for v in client.run(_bucket_values(client, WORKERS_BUCKET), timeout=30.0).values()]
    now = time.time()
    for row in rows:
        row["seen_s_ago"] = round(now - float(row.get("beat", 0)), 1)
    return sorted(rows, key=lambda r: r["seen_s_ago"])


def status(client: QueueClient) -> dict[str, Any]:
    """Queued goals, claims by phase, workers: what `cellcall queue status` and `cellcall status` show."""
    assert client.js is not None
    goals = client.run(client.js.stream_info(GOALS_STREAM))
    phases: dict[str, int] = {}
    for value in client.run(_bucket_values(client, CLAIMS_BUCKET), timeout=60.0).values():
        phase = ClaimState.from_bytes(value).phase
        phases[phase] = phases.get(phase, 0) + 1
    return {"url": client.settings.url, "queued": goals.state.messages, "claims": phases, "workers": workers(client)}


async def _drain(client: QueueClient, into: Path) -> list[Path]:
    assert client.js is not None
    info = await client.js.stream_info(GOALS_STREAM)
    saved: list[Path] = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        try:
            msg = await client.js.get_msg(GOALS_STREAM, seq)
        except NotFoundError:
            continue
        message = goal_from_message(msg.subject or "", msg.data or b"", msg.headers)
        target = into / message.source
        if target.exists():
            target = into / f"{target.stem}-{seq}{target.suffix}"
        target.write_bytes(message.raw)  # saved before it leaves the queue: nothing is lost
        await client.js.delete_msg(GOALS_STREAM, seq)
        saved.append(target)
    return saved


def drain(client: QueueClient, into: Path) -> list[Path]:
    """Take every goal still waiting off the queue into `into` (push them again later).

    A goal a worker already fetched may still be dialled by it; pushed again, it is then a duplicate
    of its own claim and is not dialled twice.
    """
    into.mkdir(parents=True, exist_ok=True)
    return client.run(_drain(client, into), timeout=120.0)
