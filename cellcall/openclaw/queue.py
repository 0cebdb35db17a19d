"""The on-disk queue of pushes to OpenClaw: one JSON file per call, so nothing is lost while the gateway is down.

Files live in `<outbox>/.openclaw-queue/<call_id>.json` and are replaced atomically (write, fsync, rename), so a
crash leaves either the old or the new entry. A queue-wide `flock` serialises deliveries across the watch runner,
background threads and a manual flush: a push is never sent twice at the same time. No token is ever stored here.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import re
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cellcall.files import atomic_write

QUEUE_DIR = ".openclaw-queue"
PENDING, REJECTED, FAILED = "pending", "rejected", "failed"  # rejected: bad token; failed: the gateway said no
_SAFE_ID = re.compile(r"[^A-Za-z0-9._-]")


@dataclass
class QueueEntry:
    call_id: str
    payload: dict[str, Any]
    created: float = field(default_factory=time.time)
    state: str = PENDING
    attempts: int = 0
    next_attempt_at: float = 0.0
    last_error: str = ""

    def due(self, now: float) -> bool:
        return self.state == PENDING and self.next_attempt_at <= now


class PushQueue:
    """A folder of queue entries with a lock; every method is safe to call from several processes."""

    def __init__(self, outbox: Path) -> None:
        self.path = outbox / QUEUE_DIR

    def file_for(self, call_id: str) -> Path:
        safe = _SAFE_ID.sub("_", call_id).lstrip(".") or "call"
        return self.path / f"{safe}.json"

    def put(self, entry: QueueEntry) -> Path:
        """Write (or replace) an entry atomically."""
        self.path.mkdir(parents=True, exist_ok=True)
        target = self.file_for(entry.call_id)
        atomic_write(target, json.dumps(asdict(entry), ensure_ascii=False, indent=1), durable=True)
        return target

    def remove(self, call_id: str) -> None:
        self.file_for(call_id).unlink(missing_ok=True)

    def get(self, call_id: str) -> QueueEntry | None:
        return _read(self.file_for(call_id))

    def entries(self) -> list[QueueEntry]:
        """All readable entries, oldest first; unreadable files are left alone for a person to look at."""
        if not self.path.is_dir():
            return []
        found = [entry for file in self.path.glob("*.json") if (entry := _read(file)) is not None]
        return sorted(found, key=lambda entry: entry.created)

    @contextlib.contextmanager
    def locked(self, wait_s: float) -> Iterator[bool]:
        """Hold the queue lock; yields False if another delivery held it for `wait_s`."""
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.path / ".lock", "a") as handle:
            deadline = time.monotonic() + wait_s
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        yield False
                        return
                    time.sleep(0.02)
            try:
                yield True
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _read(file: Path) -> QueueEntry | None:
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
        return QueueEntry(**data)
    except (OSError, ValueError, TypeError):
        return None
