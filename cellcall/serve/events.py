"""Runner log events -> API events -> every SSE client, without ever holding up the runner.

Threads and what they own:
- the runner thread (and the intake's) calls `EventHub.on_log` through the EventLog listener: it only
  hands the event to the server's loop (`call_soon_threadsafe`, never blocks); if the server has
  stopped the event is dropped.
- the dispatcher task on the server's loop turns each raw event into an API event, one at a time, in
  a worker thread (it reads small files: the turn's words from transcript.md, latency.jsonl); the
  `_Translator` state (the current call) is touched only there.
- the loop owns `history` (the last events, replayed to a new client) and the clients' queues. A
  client that falls `queue_size` events behind is dropped and its stream ends: a slow or vanished
  reader can never make the runner, or another client, wait.

The log itself never carries what was said; the words come from the outbox, behind the token.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cellcall.outbox import LATENCY_JSONL, TRANSCRIPT
from cellcall.record import Turn
from cellcall.watch.eventlog import EventLog
from cellcall.watch.inbox import Inbox, read_json
from cellcall.watch.reports import transcript_turns

log = logging.getLogger(__name__)
KEEPALIVE_S = 15.0
_CLOSE = object()


@dataclass(frozen=True)
class ApiEvent:
    seq: int
    name: str
    data: dict[str, Any]

    def sse(self) -> bytes:
        """One server-sent event: id, event name, one line of JSON data."""
        payload = json.dumps({"seq": self.seq, **self.data}, ensure_ascii=True, default=str)
        return f"id: {self.seq}\nevent: {self.name}\ndata: {payload}\n\n".encode()


@dataclass(eq=False)  # clients are kept in a set, by identity
class _Client:
    queue: asyncio.Queue[ApiEvent | object]
    dropped: bool = False


@dataclass
class _Current:
    call_id: str | None
    goal: str | None
    folder: Path | None = None
    turns: int = 0  # turn events seen: the next one is the transcript's turn at this position


@dataclass
class _Translator:
    """Runner event (name, fields) -> API events; follows the one call in progress."""

    goals: Path
    current: _Current | None = None
    _inbox: Inbox = field(init=False)

    def __post_init__(self) -> None:
        self._inbox = Inbox(self.goals, create=False)

    def translate(self, event: str, fields: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        handler = getattr(self, "_on_" + event.replace("-", "_"), None)
        if handler is None:
            return [("log", {"event": event, **fields})]
        return handler(fields)

    def _ids(self) -> dict[str, Any]:
        return {"call_id": self.current.call_id if self.current else None}

    def _on_goal_ready(self, f: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        return [("queued", {"call_id": str(f.get("file", "")).removesuffix(".md"), "goal": f.get("goal")})]

    def _on_dialling(self, f: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        self.current = _Current(self._claimed(f.get("goal")), f.get("goal"))
        return [("dialling", {**self._ids(), "goal": f.get("goal"), "number": f.get("number"), "attempt": f.get("attempt")})]

    def _on_policy_refused(self, f: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        self.current = _Current(self._claimed(f.get("goal")), f.get("goal"))
        return [("refused", {**self._ids(), "goal": f.get("goal"), "reason": f.get("reason")})]

    def _on_answering(self, f: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        self.current = _Current(None, f.get("goal"))
        return [("answering", {"goal": f.get("goal"), "number": f.get("number")})]

    def _on_call_outbox(self, f: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        if self.current is None:
            self.current = _Current(None, f.get("goal"))
        self.current.folder = Path(str(f.get("folder")))
        if self.current.call_id is None:  # inbound: the outbox record's own id
            record = read_json(self.current.folder / "call.json") or {}
            self.current.call_id = record.get("call_id")
        return [("outbox", {**self._ids(), "goal": f.get("goal"), "folder": str(self.current.folder)})]

    def _on_call_state(self, f: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        state = f.get("state")
        return [("answered" if state == "answered" else "state", {**self._ids(), "state": state})]

    def _on_call_turn(self, f: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        index = int(f.get("index", -1))
        turn = self._turn(self.current.turns if self.current else -1)
        if self.current is not None:
            self.current.turns += 1  # each turn is appended to transcript.md before it is announced
        data = {**self._ids(), "index": index, "speaker": f.get("speaker"), "barged_in": bool(f.get("barged_in"))}
        data.update(text=turn.text if turn else None, at_s=turn.at_s if turn else None)
        if turn is not None and turn.barged_in:
            data["spoken_text"] = turn.spoken_text
        return [("turn", data)]

    def _on_call_latency(self, f: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        row = self._latency(int(f.get("turn", -1))) or {"turn": f.get("turn"), "first_audio_ms": f.get("first_audio_ms")}
        return [("latency", {**self._ids(), **row})]

    def _on_archived(self, f: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        result = read_json(self.goals / Path(str(f.get("moved_to", ""))).with_suffix(".result.json")) or {}
        call_id = str(result.get("source", "")).removesuffix(".md") or (self.current.call_id if self.current else None)
        self.current = None
        return [
            (
                "ended",
                {
                    "call_id": call_id,
                    "goal": f.get("goal"),
                    "status": f.get("status"),
                    "final": True,
                    "outbox": result.get("outbox"),
                    "report": result.get("report"),
                },
            )
        ]

    def _on_duplicate(self, f: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        return self._on_archived({**f, "status": "duplicate"})

    def _on_retry_scheduled(self, f: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        ids, self.current = self._ids(), None
        return [("ended", {**ids, "goal": f.get("goal"), "status": f.get("status"), "final": False, "retry_due": f.get("due")})]

    def _on_inbound_done(self, f: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        ids, self.current = self._ids(), None
        return [
            ("ended", {**ids, "status": f.get("status"), "final": True, "outbox": f.get("outbox"), "number": f.get("number")})
        ]

    def _on_goal_invalid(self, f: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        return [("not-dialled", {"call_id": str(f.get("file", "")).removesuffix(".md"), "reason": f.get("first")})]

    def _on_goal_expired(self, f: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        moved = f.get("moved_to")
        call_id = Path(str(moved)).stem if moved else (self.current.call_id if self.current else None)
        return [("not-dialled", {"call_id": call_id, "goal": f.get("goal"), "reason": "expired"})]

    def _on_line_up(self, f: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        return [("line", {"state": "up"})]

    def _on_line_down(self, f: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        return [("line", {"state": "down", "detail": f.get("reason")})]

    def _on_line_lost(self, f: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        return self._on_line_down(f)

    def _on_status(self, f: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        return [("status", dict(f))]

    def _on_missed_call(self, f: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        return [("missed", {"number": f.get("number"), "reason": f.get("reason"), "outbox": f.get("outbox")})]

    # --- file reads (small, in the worker thread) -------------------------------------------------
    def _claimed(self, goal: Any) -> str | None:
        """The goal file the runner just claimed for `goal` (its state file says phase calling)."""
        for claim in self._inbox.running_claims():
            if claim.state.get("phase") == "calling" and claim.state.get("goal") == goal:
                return claim.source_name.removesuffix(".md")
        return None

    def _turn(self, position: int) -> Turn | None:
        folder = self.current.folder if self.current else None
        if folder is None:
            return None
        try:
            turns = transcript_turns((folder / TRANSCRIPT).read_text(encoding="utf-8"))
        except OSError:
            return None
        return turns[position] if 0 <= position < len(turns) else None

    def _latency(self, turn: int) -> dict[str, Any] | None:
        folder = self.current.folder if self.current else None
        try:
            lines = (folder / LATENCY_JSONL).read_text(encoding="utf-8").splitlines() if folder else []
        except OSError:
            return None
        for line in reversed(lines):
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if isinstance(row, dict) and row.get("turn") == turn:
                return row
        return None


class EventHub:
    """Fans API events out to SSE clients; see the module docstring for who owns what."""

    def __init__(self, goals: Path, *, history: int = 500, queue_size: int = 256, max_clients: int = 8) -> None:
        self.history: collections.deque[ApiEvent] = collections.deque(maxlen=history)
        self.queue_size = queue_size
        self.max_clients = max_clients
        self.dropped_clients = 0
        self._translator = _Translator(goals)
        self._clients: set[_Client] = set()
        self._seq = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._raw: asyncio.Queue[tuple[str, dict[str, Any]] | None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._log: EventLog | None = None
        self._stopped = threading.Event()

    @property
    def clients(self) -> int:
        return len(self._clients)

    # --- lifecycle (on the server's loop) --------------------------------------------------------
    def start(self, log_: EventLog) -> None:
        self._loop = asyncio.get_running_loop()
        self._raw = asyncio.Queue(maxsize=10_000)
        self._task = self._loop.create_task(self._dispatch())
        self._log = log_
        log_.add_listener(self.on_log)

    async def stop(self) -> None:
        self._stopped.set()
        if self._log is not None:
            self._log.remove_listener(self.on_log)
        for client in list(self._clients):
            self._drop(client, count=False)
        if self._task is not None:
            self._task.cancel()

    # --- in: the runner's threads ----------------------------------------------------------------
    def on_log(self, event: str, fields: dict[str, object]) -> None:
        """EventLog listener: never blocks, never raises into the runner."""
        loop = self._loop
        if loop is None or self._stopped.is_set():
            return
        try:
            loop.call_soon_threadsafe(self._enqueue, event, dict(fields))
        except RuntimeError:
            pass  # the loop closed under us: the server is stopping

    def _enqueue(self, event: str, fields: dict[str, Any]) -> None:
        assert self._raw is not None
        try:
            self._raw.put_nowait((event, fields))
        except asyncio.QueueFull:
            log.warning("event backlog full: dropped runner event %s", event)

    async def _dispatch(self) -> None:
        assert self._raw is not None
        while True:
            event, fields = await self._raw.get()  # type: ignore[misc]
            try:
                translated = await asyncio.to_thread(self._translator.translate, event, fields)
            except Exception as exc:  # noqa: BLE001 - one odd event must not end the stream for everyone
                translated = [("log", {"event": event, "translate_error": f"{type(exc).__name__}: {exc}"})]
            for name, data in translated:
                self.publish(name, data)

    # --- out: the clients (on the loop) ----------------------------------------------------------------
    def publish(self, name: str, data: dict[str, Any]) -> ApiEvent:
        """Send an event to every client now (call on the server's loop)."""
        self._seq += 1
        item = ApiEvent(self._seq, name, data)
        self.history.append(item)
        for client in list(self._clients):
            try:
                client.queue.put_nowait(item)
            except asyncio.QueueFull:
                self._drop(client)
        return item

    def _drop(self, client: _Client, count: bool = True) -> None:
        client.dropped = True
        self._clients.discard(client)
        if count:
            self.dropped_clients += 1
        while not client.queue.empty():  # make room for the close marker
            client.queue.get_nowait()
        client.queue.put_nowait(_CLOSE)

    def accepting(self) -> bool:
        return len(self._clients) < self.max_clients and not self._stopped.is_set()

    async def stream(self, after: int | None) -> AsyncIterator[bytes]:
        """One client's SSE bytes: history after `after` (all kept history when None), then live events."""
        client = _Client(asyncio.Queue(maxsize=self.queue_size))
        self._clients.add(client)
        try:
            yield b"retry: 2000\n\n"
            last = after if after is not None else 0
            for item in list(self.history):
                if item.seq > last:
                    last = item.seq
                    yield item.sse()
            while True:
                try:
                    queued: ApiEvent | object = await asyncio.wait_for(client.queue.get(), KEEPALIVE_S)
                except TimeoutError:
                    yield b": keepalive\n\n"
                    continue
                if not isinstance(queued, ApiEvent):
                    return  # dropped (too slow) or the server is stopping
                if queued.seq > last:
                    last = queued.seq
                    yield queued.sse()
        finally:
            self._clients.discard(client)
