"""Call id -> where that call is now: queued, running, waiting for a retry, done, or only in the outbox.

A call id is the goal file's name without `.md` (POST chooses `<goal>-<12 hex>`; a dropped file's
own name works too), so the inbox's files are the truth and nothing here keeps state. The folders
are read in the order a goal moves through them (top, running/, waiting/, done/), so a goal moving
while it is looked up is found in its next place; an API call that is known but not found (a
waiting goal being claimed again) is looked up once more. Anything else is tried as an outbox call
id or folder name (inbound calls, calls placed with `cellcall run`).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cellcall.outbox import CALL_JSON, CallLookupError, find_call, list_calls
from cellcall.record import CallRecord
from cellcall.serve.placing import API_CALL_ID, CallDesk
from cellcall.watch.inbox import Inbox, read_json

SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,120}$")
ACTIVE = ("queued", "running", "waiting")
_CLAIM_TOKEN = re.compile(r"\.[0-9a-f]{8}$")


@dataclass
class CallView:
    """One call as the API shows it; `folder` is the outbox folder of its latest attempt."""

    call_id: str
    status: str  # queued | running | waiting | not-dialled | a CallStatus value | duplicate
    goal: str | None = None
    folder: Path | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def final(self) -> bool:
        return self.status not in ACTIVE

    def to_json(self, with_record: bool = True) -> dict[str, Any]:
        data: dict[str, Any] = {
            "call_id": self.call_id,
            "status": self.status,
            "final": self.final,
            "goal": self.goal,
            "outbox": str(self.folder) if self.folder else None,
            **self.detail,
        }
        if with_record:
            record = read_json(self.folder / CALL_JSON) if self.folder else None
            data["record"] = record  # call.json; status `interrupted` until the call's reports are final
        return data


def call_id_of(record: CallRecord) -> str:
    """The API id of an outbox call: its goal file's name when that is an API id, else the record's id."""
    name = Path(record.goal_path or "").name.removesuffix(".md")
    stem = _CLAIM_TOKEN.sub("", name)
    return stem if API_CALL_ID.match(stem) else record.call_id


class CallBook:
    """Finds calls in one goals folder and its outbox (read-only; safe from any thread)."""

    def __init__(self, goals: Path, outbox: Path, desk: CallDesk, inbound_name: str) -> None:
        self.goals = goals
        self.outbox = outbox
        self.desk = desk
        self.inbound_name = inbound_name  # the inbound goal lives in the top folder but is never queued

    def find(self, call_id: str) -> CallView | None:
        if not SAFE_ID.match(call_id):
            return None
        known = self.desk.record(call_id)
        for _ in range(3 if known else 1):
            view = self._in_inbox(call_id, known)
            if view is not None:
                return view
            time.sleep(0.02)
        return self._in_outbox(call_id)

    def active(self) -> list[CallView]:
        """Running, waiting and queued calls, in that order."""
        views = [self._running(state) for state in self._states("running/*.state.json")]
        for wait_file in sorted(self.goals.glob("waiting/*.wait.json")):
            data = read_json(wait_file) or {}
            stem = str(data.get("source", "")).removesuffix(".md")
            views.append(CallView(stem, "waiting", None, None, _wait_detail(data)))
        for path in Inbox(self.goals, create=False).queued(exclude=[self.inbound_name]):  # oldest first, as dialled
            views.append(CallView(path.stem, "queued", None, None, {"file": path.name}))
        return views

    def recent(self, limit: int) -> list[dict[str, Any]]:
        """The newest finished calls in the outbox (API ids where known); calls still running are left out."""
        if not self.outbox.is_dir():
            return []
        running = {str(state.get("outbox")) for state in self._states("running/*.state.json")}
        return [
            {
                "call_id": call_id_of(r),
                "status": r.status.value,
                "final": True,
                "goal": r.goal,
                "number": r.number,
                "direction": r.direction.value,
                "started": r.started.isoformat(),
                "duration_s": r.duration_s,
                "outbox": r.extra.get("folder"),
            }
            for r in list_calls(self.outbox, limit + len(running))
            if r.extra.get("folder") not in running
        ][:limit]

    # --- the inbox, in the order a goal moves --------------------------------------------------------
    def _in_inbox(self, call_id: str, known: dict[str, Any] | None) -> CallView | None:
        source = f"{call_id}.md"
        goal = known.get("goal") if known else None
        if source != self.inbound_name and (self.goals / source).is_file():
            return CallView(call_id, "queued", goal, None, {"file": source})
        for state in self._states(f"running/{call_id}.*.state.json"):
            if state.get("source") == source:
                return self._running(state)
        for wait_file in self.goals.glob(f"waiting/{call_id}.*.wait.json"):
            data = read_json(wait_file) or {}
            if data.get("source") == source:
                return CallView(call_id, "waiting", goal, _last_outbox(data.get("history")), _wait_detail(data))
        done = self._done(call_id, source)
        if done is not None:
            return done
        failed = self.goals / "failed" / f"{call_id}.error.md"
        if failed.is_file():
            return CallView(call_id, "not-dialled", goal, None, {"error": failed.read_text(encoding="utf-8")})
        if known and known.get("status") == "refused":
            return CallView(call_id, "refused", goal, Path(known["outbox"]), {})
        if (self.goals / f".{call_id}.md.tmp").exists():
            return CallView(call_id, "queued", goal, None, {"file": source})
        return None

    def _done(self, call_id: str, source: str) -> CallView | None:
        candidates = [self.goals / "done" / f"{call_id}.result.json", *self.goals.glob(f"done/{call_id}-*.result.json")]
        results = [data for data in map(read_json, candidates) if data and data.get("source") == source]
        if not results:
            return None
        result = max(results, key=lambda data: str(data.get("archived_at", "")))
        outbox = result.get("outbox")
        detail = {"attempts": result.get("attempts", []), "error": result.get("error"), "note": result.get("note")}
        return CallView(call_id, str(result.get("status")), result.get("goal"), Path(outbox) if outbox else None, detail)

    def _states(self, pattern: str) -> list[dict[str, Any]]:
        return [state for state in map(read_json, sorted(self.goals.glob(pattern))) if state]

    def _running(self, state: dict[str, Any]) -> CallView:
        outbox = state.get("outbox")
        detail = {"phase": state.get("phase"), "attempt": state.get("attempt", 0) + 1}
        stem = str(state.get("source", "")).removesuffix(".md")
        return CallView(stem, "running", state.get("goal"), Path(outbox) if outbox else None, detail)

    def _in_outbox(self, call_id: str) -> CallView | None:
        if not self.outbox.is_dir():
            return None
        try:
            folder = find_call(self.outbox, call_id)
        except CallLookupError:
            return None
        if folder.parent.parent.resolve() != self.outbox.resolve():
            return None  # find_call also takes paths: the API only shows this outbox's calls
        data = read_json(folder / CALL_JSON) or {}
        return CallView(call_id, str(data.get("status", "unknown")), data.get("goal"), folder, {})


def _wait_detail(data: dict[str, Any]) -> dict[str, Any]:
    return {"due": data.get("due"), "reason": data.get("reason"), "retries_done": data.get("attempt", 0)}


def _last_outbox(history: Any) -> Path | None:
    for entry in reversed(history or []):
        if isinstance(entry, dict) and entry.get("outbox"):
            return Path(entry["outbox"])
    return None
