"""`cellcall watch` as a fleet worker: the runner's dialler when `[queue] url` is set.

The runner thread calls `dial_next()` between line events, as with the local dialler. It first
forwards goals dropped into the local goals folder (or POSTed to `cellcall serve`) to the queue,
then, with its line free, fetches one goal of its routes (its own line first, then any line),
claims it exactly once (claims.py), validates it, applies this line's [policy] and the fleet's
limits, marks the claim "dialled" and only then dials. The call's report is published and the
goal acked after the claim is settled; a step that fails while the server is away is kept and
retried, and no new goal is taken until it went through.

Threads: the runner thread owns the routes, the pending steps and this object's counters; the
queue thread (connection.py) owns the NATS objects and the held claims, which only coroutines
touch. The heartbeat coroutine refreshes the held claims, the message's ack timer and this
worker's entry in the workers bucket.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import nats.errors
from nats.aio.msg import Msg

from cellcall.goal import Goal, GoalError, parse_goal
from cellcall.policy import PolicyRefusal, check_dial
from cellcall.queue import claims, ledger
from cellcall.queue.claims import ClaimLost, ClaimState, Held
from cellcall.queue.connection import CLAIMS_BUCKET, LEDGER_BUCKET, WORKERS_BUCKET, QueueClient, QueueError, line_name
from cellcall.queue.messages import (
    GoalMessage,
    goal_from_message,
    report_payload,
    report_subject,
    route_of,
    route_token,
    safe_source,
)
from cellcall.record import CallStatus
from cellcall.watch.schedule import Hold, expiry, goal_hold, policy_hold, retry_due

if TYPE_CHECKING:
    from nats.js import JetStreamContext

    from cellcall.watch.runner import Runner

HOLD_KINDS = ("rate", "quiet-hours")  # "later", not "never": the goal goes back to the queue
QUEUE_ERRORS = (QueueError, nats.errors.Error, asyncio.TimeoutError, OSError)


async def push_goal(client: QueueClient, message: GoalMessage) -> None:
    """Publish one goal onto the work queue (acked by the server: it is stored)."""
    assert client.js is not None
    await client.js.publish(message.subject, message.raw, headers=message.headers())


class QueueDialler:
    """Takes goals from the fleet queue for the runner's one line."""

    def __init__(self, runner: Runner, wake: threading.Event, client: QueueClient) -> None:
        self._runner = runner
        self._wake = wake
        self._client = client
        settings = client.settings
        self.line = line_name(settings)
        self.worker = f"{route_token(self.line)}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self._ttl_s = settings.claim_ttl_s
        self._limits = ledger.FleetLimits(settings.fleet_max_calls_per_hour, settings.fleet_max_calls_per_day)
        routes = [route_of(self.line)] + ([route_of(settings.caller_id)] if settings.caller_id else []) + ["any"]
        self._routes = list(dict.fromkeys(routes))
        self._subs: dict[str, JetStreamContext.PullSubscription] = {}
        self._pending: list[tuple[str, Callable[[], None]]] = []  # steps to retry once the server is back
        self._held: dict[str, tuple[Held, Msg]] = {}  # queue thread only: claims kept alive by the heartbeat
        self.hold: Hold | None = None  # the runner's status line reads it
        self.calls = 0
        self._beating = False

    # --- the runner thread --------------------------------------------------------------------
    def dial_next(self) -> None:
        if not self._retry_pending():
            return
        self._forward_local()
        if not self._client.connected.is_set():
            return
        self._start_heartbeat()
        for route in self._routes:
            msg = self._fetch(route)
            if msg is not None:
                self._handle(msg)
                return

    def _retry_pending(self) -> bool:
        """Run the steps left over from an outage, in order; False while one still fails."""
        while self._pending:
            what, step = self._pending[0]
            try:
                step()
            except QUEUE_ERRORS as exc:
                self._runner.log.emit("queue-retry-later", step=what, error=type(exc).__name__)
                time.sleep(0.2)
                return False
            self._pending.pop(0)
        return True

    def _step(self, what: str, step: Callable[[], None]) -> None:
        """Run a step now, or keep it for later if the server is away (it must happen, in order)."""
        self._pending.append((what, step))
        self._retry_pending()

    def _forward_local(self) -> None:
        """Goals dropped here go to the fleet queue; the local copy is archived as queued."""
        runner = self._runner
        for ready in runner.intake.ready():
            message = GoalMessage(safe_source(ready.path.name), ready.path.read_bytes(), route_of(ready.goal.line))
            try:
                self._client.run(push_goal(self._client, message), timeout=5.0)
            except QUEUE_ERRORS as exc:
                runner.log.emit("queue-push-later", goal=ready.goal.name, error=type(exc).__name__)
                return  # stays in the folder: forwarded once the server answers again
            claim = runner.inbox.claim(ready.path)
            runner.intake.discard(ready.path)
            if claim is not None:
                runner.inbox.archive(claim, {"status": "queued", "queue_key": message.key, "route": message.route})
            runner.log.emit("queue-pushed", goal=ready.goal.name, key=message.key, route=message.route)

    def _fetch(self, route: str) -> Msg | None:
        try:
            if route not in self._subs:
                self._subs[route] = self._client.run(self._client.pull(route, self._ttl_s))
            msgs = self._client.run(self._subs[route].fetch(1, timeout=0.1), timeout=5.0)
        except nats.errors.TimeoutError:
            return None
        except QUEUE_ERRORS as exc:
            self._runner.log.emit("queue-fetch-error", route=route, error=f"{type(exc).__name__}: {exc}"[:200])
            return None
        return msgs[0] if msgs else None

    def _handle(self, msg: Msg) -> None:
        """One delivered goal; the server going away half-way leaves it to be delivered again."""
        message = goal_from_message(msg.subject, msg.data, msg.headers)
        try:
            self._handle_goal(msg, message)
        except (*QUEUE_ERRORS, ClaimLost) as exc:
            self._runner.log.emit("queue-goal-later", goal=message.source, error=type(exc).__name__)
            self._forget(message.key)  # an undialled claim left behind goes stale and is taken over

    def _handle_goal(self, msg: Msg, message: GoalMessage) -> None:
        runner = self._runner
        state = ClaimState("claimed", self.worker, self.line, message.source)
        goal, problems = self._parse(message)
        if goal is None:
            self._settle_unclaimed(msg, message, "invalid", "; ".join(problems))
            return
        now = datetime.now(UTC)
        reason = expiry(goal, now)
        if reason is not None:
            self._settle_unclaimed(msg, message, "refused", reason)
            return
        hold = self._hold_for(goal, now)
        if hold is not None:
            self.hold = hold
            self._nak(msg, (hold.until - now).total_seconds())
            return
        self.hold = None
        held = self._claim(msg, message, state)
        if held is None:
            return
        try:
            check_dial(goal.number or "", runner.settings.policy, runner.ledger)
        except PolicyRefusal as refusal:
            if refusal.kind in HOLD_KINDS:
                self._give_back(msg, held, 60.0)
                return
            self._refused(msg, message, held, goal, refusal)
            return
        fleet_wait = self._client.run(ledger.reserve(self._kv(LEDGER_BUCKET), self._limits))
        if fleet_wait > 0:
            self._give_back(msg, held, fleet_wait)
            return
        try:
            self._client.run(claims.move(self._kv(CLAIMS_BUCKET), held, phase="dialled"))
        except ClaimLost:
            runner.log.emit("queue-claim-lost", goal=goal.name, key=held.key)
            return  # another worker owns it now: never dial
        runner.log.emit("dialling", goal=goal.name, number=goal.number, key=held.key, line=self.line)
        outcome = runner.observed(lambda line, obs, stop: runner.place(goal, line, obs, stop), None, goal.name, None)
        self.calls += 1
        due = retry_due(goal, outcome.status, held.state.attempt, datetime.now(UTC))
        if due is None:
            self._finish(msg, message, held, outcome.status.value, outcome.folder, outcome.error)
            return
        self._finish(msg, message, held, outcome.status.value, outcome.folder, outcome.error, retry_at=due.timestamp())
        runner.log.emit("retry-scheduled", goal=goal.name, status=outcome.status.value, due=due, retry=held.state.attempt + 1)

    def _parse(self, message: GoalMessage) -> tuple[Goal | None, list[str]]:
        try:
            text = message.raw.decode("utf-8")
            goal = parse_goal(text, Path(message.source).stem, None, self._runner.settings.policy.default_country)
        except UnicodeDecodeError:
            return None, ["the goal is not UTF-8 text"]
        except GoalError as exc:
            return None, exc.lines()
        return goal, []

    def _hold_for(self, goal: Goal, now: datetime) -> Hold | None:
        """Why this goal must wait (its not_before, this line's quiet hours or rate, the fleet's limits)."""
        hold = goal_hold(goal, now) or policy_hold(goal.number or "", self._runner.settings.policy, self._runner.ledger, now)
        if hold is not None:
            return Hold(max(hold.until, now + timedelta(seconds=1)), hold.reason)
        wait = self._client.run(ledger.hold_s(self._kv(LEDGER_BUCKET), self._limits))
        return Hold(now + timedelta(seconds=wait), "fleet limit (queue.fleet_max_calls_*)") if wait > 0 else None

    def _claim(self, msg: Msg, message: GoalMessage, state: ClaimState) -> Held | None:
        """This worker's claim on the goal, or None (a duplicate, a live rival, or settled here)."""
        runner = self._runner
        kv = self._kv(CLAIMS_BUCKET)
        held = self._client.run(claims.create(kv, message.key, state))
        if held is not None:
            self._hold_claim(held, msg)
            return held
        found = self._client.run(claims.read(kv, message.key))
        if found is None:  # released meanwhile: let the next delivery try again
            self._nak(msg, 0.5)
            return None
        revision, other = found
        if other.phase == "retry":  # the goal's retry rule queued it again: due now, or later
            if (other.due or 0) > time.time():
                self._nak(msg, (other.due or 0) - time.time())
                return None
            state.attempt, state.history = other.attempt, other.history
            held = self._client.run(claims.take_over(kv, message.key, revision, state))
            if held is not None:
                self._hold_claim(held, msg)
            return held
        if not other.stale(self._ttl_s):
            if other.phase in claims.FINAL:
                runner.log.emit("queue-duplicate", goal=message.source, key=message.key, first=other.status)
                self._ack(msg)
            else:
                self._nak(msg, self._ttl_s / 2)  # its worker is alive: an ack is on its way
            return None
        if other.phase == "claimed":  # a dead worker never dialled it: take it over
            held = self._client.run(claims.take_over(kv, message.key, revision, state))
            if held is not None:
                runner.log.emit("queue-taken-over", goal=message.source, key=message.key, dead=other.worker)
                self._hold_claim(held, msg)
            return held
        note = f"worker {other.worker} on line {other.line} stopped during the call; not redialled"
        settled = ClaimState("interrupted", self.worker, other.line, message.source, status="interrupted", note=note)
        if self._client.run(claims.take_over(kv, message.key, revision, settled)) is not None:
            payload = report_payload(message, other.worker, other.line, CallStatus.INTERRUPTED.value, None, note)
            self._step("publish interrupted", lambda: self._publish(payload, f"{message.key}:interrupted"))
            runner.log.emit("queue-interrupted", goal=message.source, key=message.key, dead=other.worker)
        self._ack(msg)
        return None

    def _settle_unclaimed(self, msg: Msg, message: GoalMessage, phase: str, note: str) -> None:
        """An invalid or expired goal: recorded once in a claim, reported once, never dialled."""
        state = ClaimState(phase, self.worker, self.line, message.source, status=phase, note=note)
        held = self._client.run(claims.create(self._kv(CLAIMS_BUCKET), message.key, state))
        if held is not None:
            self._runner.log.emit(f"queue-{phase}", goal=message.source, key=message.key, reason=note[:200])
            payload = report_payload(message, self.worker, self.line, phase, None, note)
            self._step("publish report", lambda: self._publish(payload, f"{message.key}:{phase}"))
        self._ack(msg)

    def _refused(self, msg: Msg, message: GoalMessage, held: Held, goal: Goal, refusal: PolicyRefusal) -> None:
        """Refused by this line's policy: refused for the whole fleet (the claim says so), with its report."""
        from cellcall.call import refuse_call  # the call machinery loads only in a worker, not for `queue push`

        runner = self._runner
        self._client.run(claims.move(self._kv(CLAIMS_BUCKET), held, phase="refused", status="refused", note=refusal.reason))
        runner.log.emit("policy-refused", goal=goal.name, number=goal.number, reason=refusal.reason)
        result = refuse_call(goal, runner.settings, refusal)  # writes the reports; never touches the line
        self._finish(msg, message, held, result.record.status.value, result.folder, refusal.reason, phase="refused")

    def _finish(
        self,
        msg: Msg,
        message: GoalMessage,
        held: Held,
        status: str,
        folder: Path | None,
        note: str | None,
        phase: str = "done",
        retry_at: float | None = None,
    ) -> None:
        """Publish the report, settle the claim, queue the goal again for a retry, ack: in that order, each
        retried until it went through, so a crash between two steps never loses the goal or dials it twice."""
        payload = report_payload(message, self.worker, self.line, status, folder, note)
        kv = self._kv(CLAIMS_BUCKET)
        phase = "retry" if retry_at is not None else phase
        msg_id = f"{held.key}:{held.state.attempt}:{phase}"
        self._step("publish report", lambda: self._publish(payload, msg_id))
        self._step("settle claim", lambda: self._client.run(self._settle_held(kv, held, phase, status, note, retry_at)))
        if retry_at is not None:
            self._step("queue the retry", lambda: self._client.run(push_goal(self._client, message)))
        self._step("ack", lambda: self._client.run(msg.ack()))
        self._runner.log.emit("queue-reported", goal=message.source, key=held.key, status=status)

    async def _settle_held(self, kv: Any, held: Held, phase: str, status: str, note: str | None, due: float | None) -> None:
        entry = {"status": status, "worker": self.worker, "line": self.line, "at": time.time()}
        attempt = held.state.attempt + (phase == "retry")
        try:
            history = [*held.state.history, entry]
            await claims.move(kv, held, phase=phase, status=status, note=note, attempt=attempt, history=history, due=due)
        except ClaimLost:
            pass  # settled by another worker meanwhile (it found this one silent too long)
        self._held.pop(held.key, None)

    def _give_back(self, msg: Msg, held: Held, wait_s: float) -> None:
        self._client.run(self._release(held))
        self._nak(msg, wait_s)

    async def _release(self, held: Held) -> None:
        self._held.pop(held.key, None)
        await claims.release(self._kv(CLAIMS_BUCKET), held)

    def _publish(self, payload: bytes, msg_id: str) -> None:
        """Publish a report; a retry after a lost answer is dropped by the server (same Nats-Msg-Id)."""
        assert self._client.js is not None
        publish = self._client.js.publish(report_subject(self.worker), payload, headers={"Nats-Msg-Id": msg_id})
        self._client.run(publish, timeout=5.0)

    def _ack(self, msg: Msg) -> None:
        self._step("ack", lambda: self._client.run(msg.ack()))

    def _nak(self, msg: Msg, delay_s: float) -> None:
        try:
            self._client.run(msg.nak(delay=delay_s))
        except QUEUE_ERRORS:
            pass  # unacked anyway: the server redelivers it after the ack wait

    def _kv(self, bucket: str) -> Any:
        return self._client.buckets[bucket]

    def _forget(self, key: str) -> None:
        """Stop refreshing a claim (queue thread's dict, changed only there)."""

        async def drop() -> None:
            self._held.pop(key, None)

        asyncio.run_coroutine_threadsafe(drop(), self._client.loop)

    def _hold_claim(self, held: Held, msg: Msg) -> None:
        async def keep() -> None:
            self._held[held.key] = (held, msg)

        self._client.run(keep())

    # --- the queue thread ---------------------------------------------------------------------
    def _start_heartbeat(self) -> None:
        if not self._beating:
            self._beating = True
            self._client.spawn(self._heartbeat)

    async def _heartbeat(self) -> None:
        """Keep this worker's claims and messages alive and its entry in the workers bucket fresh."""
        interval = max(0.2, self._ttl_s / 3)
        while True:
            try:
                await self._beat()
            except Exception:  # noqa: BLE001 - the server may be away; the next beat tries again
                pass
            await asyncio.sleep(interval)

    async def _beat(self) -> None:
        kv = self._kv(CLAIMS_BUCKET)
        for key, (held, msg) in list(self._held.items()):
            try:
                await claims.move(kv, held)
                await msg.in_progress()
            except ClaimLost:
                self._held.pop(key, None)
        entry = {
            "worker": self.worker,
            "line": self.line,
            "caller_id": self._client.settings.caller_id,
            "routes": self._routes,
            "calling": [held.state.source for held, _ in self._held.values()],
            "calls": self.calls,
            "beat": time.time(),
            "pid": os.getpid(),
        }
        await self._kv(WORKERS_BUCKET).put(route_token(self.worker), json.dumps(entry).encode())
