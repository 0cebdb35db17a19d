"""POST /v1/calls: check a goal, then drop it into the goals folder exactly as a person would.

Nothing here dials: the runner picks the file up like any other. The call id is chosen now and is
the goal file's name (`<goal>-<12 hex>.md`), so it is known at once and stays findable as the file
moves through running/, waiting/ and done/ (lookup.py). Order of writes, so that a crash at any
point neither loses a call nor places it twice:

1. the goal as a hidden temp file `.<id>.md.tmp` (the runner ignores hidden files),
2. `.cellcall/api/calls/<id>.json` (this call exists) and, with an Idempotency-Key, the key file,
3. rename the temp file to `<id>.md` (queued).

A retry with the same key after a crash between 2 and 3 finishes the rename instead of placing
another call. One lock serialises placing within the process; one `cellcall serve` per folder.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cellcall.call import refuse_call
from cellcall.config import Settings
from cellcall.files import atomic_write_json
from cellcall.goal import Goal, GoalError, parse_goal
from cellcall.names import safe_name
from cellcall.openclaw.notify import PushToOpenClaw
from cellcall.policy import DialLedger, PolicyRefusal, check_dial
from cellcall.serve.auth import token_id
from cellcall.watch.inbox import STATE_DIR, read_json, utcnow
from cellcall.watch.schedule import expiry

API_CALL_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,40}-[0-9a-f]{12}$")
# Refused at once; rate limits and quiet hours only make the runner wait, so those goals are queued.
LASTING_REFUSALS = frozenset({"invalid", "emergency", "premium", "denylist", "allowlist", "config"})
MAX_KEY = 200
_KEY = re.compile(r"^[\x21-\x7e]{1,200}$")


class BadRequest(Exception):
    """The request cannot be used as sent; `status` is the HTTP code, `errors` the problems."""

    def __init__(self, status: int, errors: list[dict[str, Any]]) -> None:
        super().__init__("; ".join(str(e.get("message")) for e in errors))
        self.status = status
        self.errors = errors


@dataclass
class Placed:
    """What POST answers: 202 queued, or 403 refused (a refused report was written)."""

    status: int
    body: dict[str, Any]
    replayed: bool = field(default=False)


def goal_errors(exc: GoalError) -> list[dict[str, Any]]:
    return [{"line": problem.line, "message": problem.message} for problem in exc.problems]


def decode_goal(body: bytes) -> str:
    """The body as UTF-8 text; a 422 naming the line of the first bad byte otherwise."""
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = body[: exc.start].count(b"\n") + 1
        raise BadRequest(422, [{"line": line, "message": "not UTF-8 text"}]) from None


class CallDesk:
    """Places goals into one goals folder; remembers API calls and idempotency keys on disk."""

    def __init__(self, settings: Settings, goals: Path, outbox: Path) -> None:
        self.settings = settings
        self.goals = goals
        self.outbox = outbox
        self.calls_dir = goals / STATE_DIR / "api" / "calls"
        self.keys_dir = goals / STATE_DIR / "api" / "keys"
        self.calls_dir.mkdir(parents=True, exist_ok=True)
        self.keys_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def place(self, body: bytes, token: str, key: str | None = None) -> Placed:
        """Validate, check the policy, write the goal; raises BadRequest (409, 422) without writing."""
        if key is not None and not _KEY.match(key):
            raise BadRequest(
                422, [{"line": None, "message": f"Idempotency-Key must be 1-{MAX_KEY} printable ASCII characters, no spaces"}]
            )
        text = decode_goal(body)
        digest = hashlib.sha256(body).hexdigest()
        with self._lock:
            key_file = self.keys_dir / f"{token_id(token, 'idempotency:' + key)}.json" if key else None
            if key_file is not None:
                earlier = read_json(key_file)
                if earlier is not None:  # answered as the first time, even if the goal has expired since
                    return self._replay(earlier, digest)
            return self._place_new(text, self._validate(text, "call"), digest, key_file)

    def record(self, call_id: str) -> dict[str, Any] | None:
        """What POST recorded about an API call (goal, number, created; outbox when refused)."""
        if not API_CALL_ID.match(call_id):
            return None
        return read_json(self.calls_dir / f"{call_id}.json")

    # --- steps ---------------------------------------------------------------------------------
    def _validate(self, text: str, name: str, path: Path | None = None) -> Goal:
        try:
            goal = parse_goal(text, name, path, self.settings.policy.default_country)
        except GoalError as exc:
            raise BadRequest(422, goal_errors(exc)) from None
        problems = []
        if goal.direction == "inbound":
            problems.append(f"direction is inbound: an inbound goal answers calls; save it as {self.settings.inbound.goal}")
        reason = expiry(goal, utcnow())
        if reason:
            problems.append(reason)
        if problems:
            raise BadRequest(422, [{"line": None, "message": message} for message in problems])
        return goal

    def _place_new(self, text: str, first: Goal, digest: str, key_file: Path | None) -> Placed:
        call_id = f"{safe_name(first.id or 'call')[:40].strip('-') or 'call'}-{secrets.token_hex(6)}"
        target = self.goals / f"{call_id}.md"
        goal = self._validate(text, call_id, target)  # named as the runner will name it
        entry = {"call_id": call_id, "goal": goal.name, "number": goal.number, "created": utcnow().isoformat()}
        refusal = self._lasting_refusal(goal)
        if refusal is not None:
            result = refuse_call(goal, self.settings, refusal, observer=PushToOpenClaw(self.settings))  # as watch pushes
            body = {"call_id": call_id, "goal": goal.name, "status": "refused", "reason": refusal.reason}
            atomic_write_json(self.calls_dir / f"{call_id}.json", entry | {"status": "refused", "outbox": str(result.folder)})
            self._remember(key_file, digest, 403, body)
            return Placed(403, body)
        tmp = self.goals / f".{call_id}.md.tmp"
        tmp.write_text(text, encoding="utf-8")
        atomic_write_json(self.calls_dir / f"{call_id}.json", entry)
        body = {"call_id": call_id, "goal": goal.name, "status": "queued"}
        self._remember(key_file, digest, 202, body)
        os.rename(tmp, target)
        return Placed(202, body)

    def _lasting_refusal(self, goal: Goal) -> PolicyRefusal | None:
        if goal.number is None:  # parse_goal requires one for outbound goals; kept as the policy's own refusal
            return PolicyRefusal("the goal has no number to call", "invalid")
        try:
            check_dial(goal.number, self.settings.policy, DialLedger.in_outbox(self.outbox))
        except PolicyRefusal as refusal:
            return refusal if refusal.kind in LASTING_REFUSALS else None
        return None

    def _remember(self, key_file: Path | None, digest: str, status: int, body: dict[str, Any]) -> None:
        if key_file is not None:
            atomic_write_json(key_file, {"digest": digest, "status": status, "body": body, "at": utcnow().isoformat()})

    def _replay(self, earlier: dict[str, Any], digest: str) -> Placed:
        if earlier.get("digest") != digest:
            raise BadRequest(
                409, [{"line": None, "message": "this Idempotency-Key was already used for a different goal; use a new key"}]
            )
        body = dict(earlier.get("body") or {})
        call_id = str(body.get("call_id", ""))
        tmp = self.goals / f".{call_id}.md.tmp"
        if API_CALL_ID.match(call_id) and tmp.exists():  # the first request died before its rename
            os.rename(tmp, self.goals / f"{call_id}.md")
        return Placed(int(earlier.get("status", 202)), body, replayed=True)
