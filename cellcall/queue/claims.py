"""The exactly-once claim book: one KV entry per goal, created by the worker that dials it.

The work-queue stream delivers at least once (a late ack redelivers), so the claim, not the
delivery, decides who dials: `create` succeeds for one worker only. A claim moves
claimed -> dialled (written before ATD) -> done; or to refused, invalid or interrupted; or, when
the goal's `retry:` rule says so, to retry (with a due time), from which a later delivery claims it again. Every
move is a compare-and-set on the entry's revision, so a worker that lost its claim (it stalled
and another took over) finds out before it dials. A claim's `beat` is refreshed while its worker
lives; one older than `queue.claim_ttl_s` belongs to a dead worker: an undialled one is taken
over, a dialled one is settled as interrupted and never dialled again.
These functions run on the queue thread (connection.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

FINAL = ("done", "refused", "invalid", "interrupted")
_KEY_SAFE = re.compile(r"[^A-Za-z0-9_-]+")


def claim_key(goal_id: str, raw: bytes) -> str:
    """The goal's id (its `id:` or file stem) and a hash of its exact bytes: the same goal twice is one key."""
    digest = hashlib.sha256(raw).hexdigest()[:24]
    readable = _KEY_SAFE.sub("-", goal_id).strip("-")[:48] or "goal"
    return f"{readable}.{digest}"


@dataclass
class ClaimState:
    phase: str
    worker: str
    line: str
    source: str
    beat: float = field(default_factory=time.time)
    status: str | None = None
    note: str | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    attempt: int = 0  # retries done (the goal's `retry:` rule)
    due: float | None = None  # phase "retry": not before this (epoch seconds)

    def to_bytes(self) -> bytes:
        return json.dumps(self.__dict__, sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, data: bytes | None) -> ClaimState:
        raw = json.loads(data or b"{}")
        known = {k: raw[k] for k in cls.__dataclass_fields__ if k in raw}
        return cls(**{"phase": "?", "worker": "?", "line": "?", "source": "?", **known})

    def stale(self, ttl_s: float, now: float | None = None) -> bool:
        return self.phase not in (*FINAL, "retry") and (now or time.time()) - self.beat > ttl_s


@dataclass
class Held:
    """A claim this worker holds: the key and the revision its next compare-and-set must match."""

    key: str
    revision: int
    state: ClaimState
    lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False, compare=False)


class ClaimLost(Exception):
    """Another worker moved the claim (this one stalled past its TTL): do not dial."""


async def create(kv: KeyValue, key: str, state: ClaimState) -> Held | None:
    """The claim, or None when the key exists (someone claimed this goal before)."""
    try:
        revision = await kv.create(key, state.to_bytes())
    except KeyWrongLastSequenceError:
        return None
    return Held(key, revision, state)


async def read(kv: KeyValue, key: str) -> tuple[int, ClaimState] | None:
    try:
        entry = await kv.get(key)
    except KeyNotFoundError:
        return None
    return entry.revision or 0, ClaimState.from_bytes(entry.value)


async def take_over(kv: KeyValue, key: str, revision: int, state: ClaimState) -> Held | None:
    """Take a dead worker's undialled claim; None when someone else was quicker."""
    try:
        new_revision = await kv.update(key, state.to_bytes(), last=revision)
    except KeyWrongLastSequenceError:
        return None
    return Held(key, new_revision, state)


async def move(kv: KeyValue, held: Held, **changes: Any) -> None:
    """Change the claim this worker holds (phase, beat, status); ClaimLost if it is no longer ours.

    Moves of one claim are serialised (the heartbeat and the runner's steps share it). A move whose
    answer was lost (the server went away) may have landed: the entry then still names this worker,
    so its revision is adopted and the move written again; one naming another worker was taken over.
    """
    async with held.lock:
        for name, value in changes.items():
            setattr(held.state, name, value)
        held.state.beat = time.time()
        for _ in range(2):
            try:
                held.revision = await kv.update(held.key, held.state.to_bytes(), last=held.revision)
                return
            except KeyWrongLastSequenceError:
                found = await read(kv, held.key)
                if found is None or found[1].worker != held.state.worker:
                    raise ClaimLost(held.key) from None
                held.revision = found[0]
        raise ClaimLost(held.key)


async def release(kv: KeyValue, held: Held) -> None:
    """Give back an undialled claim (the goal waits for a later hour): the next worker may create it again."""
    async with held.lock:  # not while the heartbeat moves it
        try:
            await kv.delete(held.key, last=held.revision)
        except KeyWrongLastSequenceError as exc:
            raise ClaimLost(held.key) from exc
