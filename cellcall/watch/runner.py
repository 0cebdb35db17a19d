"""`cellcall watch`: the goals folder becomes a phone, 24/7.

One runner owns one line. Its thread dials queued goals one at a time (oldest first), answers
inbound calls while idle, reconnects a lost line with backoff, and archives every goal it touched.
The folder mechanics (claims, state files) live in inbox.py, watching in intake.py, timing rules in
schedule.py; this module is the lifecycle around one call at a time.

Calls go through two injectable functions (`PlaceFn`, `AnswerFn`) so the mechanics can be tested
quickly; the defaults are cellcall.call.place_call and answer_call with engines loaded once.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, Protocol

from cellcall.config import Settings
from cellcall.goal import Goal, GoalError, parse_goal
from cellcall.goal import load_goal as _load_goal_file
from cellcall.line import Line, LineError, LineEvent, LineEventKind
from cellcall.openclaw.notify import notify_call_finished, start_periodic_delivery
from cellcall.outbox import read_record
from cellcall.policy import DialLedger, PolicyRefusal, check_dial
from cellcall.record import CallStatus, Turn, TurnLatency
from cellcall.watch import reports
from cellcall.watch.eventlog import EventLog
from cellcall.watch.gitlog import commit_call
from cellcall.watch.inbox import Claim, Inbox, Owner, Waiting, atomic_write_json, content_hash, utcnow
from cellcall.watch.intake import GoalIntake, ReadyGoal
from cellcall.watch.schedule import Hold, expiry, goal_hold, policy_hold, retry_due

if TYPE_CHECKING:
    from cellcall.call import CallResult
    from cellcall.engines.cache import Engines


class PlaceFn(Protocol):
    def __call__(self, goal: Goal, line: Line, observer: Any, stop: threading.Event) -> CallResult: ...


class AnswerFn(Protocol):
    def __call__(self, goal: Goal, line: Line, caller: str | None, observer: Any, stop: threading.Event) -> CallResult: ...


@dataclass
class RunnerOptions:
    stable_s: float = 0.2  # a dropped file must stay unchanged this long before it is used
    invalid_grace_s: float = 2.0  # an unparseable file must stay unchanged this long before failed/
    rescan_s: float = 2.0  # full folder scan behind the watchdog observer
    dedupe_window: timedelta = timedelta(hours=12)  # identical content claimed within this is a duplicate
    reconnect_min_s: float = 1.0
    reconnect_max_s: float = 30.0
    status_every_s: float = 300.0  # the status line, also written when anything changes
    ring_gap_s: float = 8.0  # no RING for this long: that inbound call has stopped ringing
    idle_poll_s: float = 0.02  # line event poll while idle (bounds the drop-to-dial latency)


def _as_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


class _Observer:
    """Follows one call for the log and, for a claimed goal, the state file (outbox folder first)."""

    def __init__(self, runner: Runner, claim: Claim | None, label: str) -> None:
        self._runner = runner
        self._claim = claim
        self._label = label
        self.folder: Path | None = None

    def on_outbox(self, folder: Path) -> None:
        self.folder = Path(folder)
        if self._claim is not None:
            self._runner.inbox.update(self._claim, outbox=str(folder))
        self._runner.publish(current={"goal": self._label, "outbox": str(folder)})
        self._runner.log.emit("call-outbox", goal=self._label, folder=str(folder))

    def on_state(self, state: str) -> None:
        self._runner.log.emit("call-state", goal=self._label, state=state)

    def on_turn(self, turn: Turn) -> None:
        self._runner.log.emit(
            "call-turn", goal=self._label, index=turn.index, speaker=turn.speaker.value, barged_in=turn.barged_in or None
        )  # never the words: they stay in the outbox

    def on_latency(self, latency: TurnLatency) -> None:
        self._runner.log.emit("call-latency", goal=self._label, turn=latency.turn, first_audio_ms=latency.first_audio_ms)


class _CallLine:
    """The line as a call sees it: calls ringing in meanwhile are set aside (to be recorded as
    missed) instead of reaching the voice loop, and a lost line is noticed for the runner."""

    def __init__(self, line: Line, caller: str | None = None) -> None:
        self._line = line
        self._caller = caller
        self.rang_in: list[LineEvent] = []
        self.lost: str | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._line, name)

    def next_event(self, timeout: float) -> LineEvent | None:
        deadline = time.monotonic() + timeout
        while True:
            event = self._line.next_event(max(0.0, deadline - time.monotonic()))
            if event is None:
                return None
            if event.kind is LineEventKind.ERROR:
                self.lost = event.detail or "line error"
            if event.kind in (LineEventKind.INCOMING, LineEventKind.MISSED):
                if event.number and event.number != self._caller:
                    self.rang_in.append(event)
                continue
            return event


@dataclass
class _Ringing:
    """One inbound call while it rings (several RING / INCOMING events)."""

    number: str | None
    rings: int = 0
    last_at: float = field(default_factory=time.monotonic)
    ignored: bool = False  # no inbound goal or inbound disabled: let it ring out (MISSED follows)


@dataclass
class _Outcome:
    status: CallStatus
    folder: Path | None
    report: Path | None
    error: str | None = None


class Runner:
    """Dials the queue, answers the phone, survives crashes; `run()` blocks until `stop()`."""

    def __init__(
        self,
        settings: Settings,
        goals_dir: Path,
        *,
        line_factory: Callable[[], Line],
        place: PlaceFn,
        answer: AnswerFn,
        log: EventLog | None = None,
        options: RunnerOptions | None = None,
        outbox_root: Path | None = None,
    ) -> None:
        self.settings = settings
        self.options = options or RunnerOptions()
        self.log = log or EventLog(json_lines=settings.log.json)
        self.inbox = Inbox(Path(goals_dir))
        self.outbox_root = Path(outbox_root or settings.paths.outbox)
        self.ledger = DialLedger.in_outbox(self.outbox_root)
        inbound = self.inbox.root / settings.inbound.goal
        self._inbound_path = inbound
        self._line_factory = line_factory
        self._place = place
        self._answer = answer
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._call_lock = threading.Lock()
        self._call: tuple[str, threading.Event] | None = None  # (goal file or "", its stop); set by the runner thread only
        self.intake = GoalIntake(
            self.inbox,
            self.load_goal,
            self.log,
            inbound_name=inbound.name if inbound.parent == self.inbox.root else "",
            on_ready=self._wake.set,
            stable_s=self.options.stable_s,
            invalid_grace_s=self.options.invalid_grace_s,
            rescan_s=self.options.rescan_s,
        )
        self.line: Line | None = None
        self._line_retry_at = 0.0
        self._line_backoff = self.options.reconnect_min_s
        self._ringing: _Ringing | None = None
        self._already_recorded: dict[str, float] = {}  # caller -> until when a late MISSED is a repeat
        self._hold: Hold | None = None
        self._next_look = 0.0
        self._status_file = self.inbox.state_dir / f"runner-{os.getpid()}.json"
        self._status: dict[str, Any] = {
            "owner": Owner.current().to_json(),
            "started": utcnow().isoformat(),
            "goals": str(self.inbox.root),
            "outbox": str(self.outbox_root),
            "line": {"state": "connecting"},
            "current": None,
            "calls": 0,
        }
        self._next_status_line = 0.0

    # --- public -------------------------------------------------------------------------------
    def load_goal(self, path: Path, name: str | None = None) -> Goal:
        country = self.settings.policy.default_country
        if name is None:
            return _load_goal_file(path, country)
        return parse_goal(path.read_text(encoding="utf-8"), name, path, country)

    def stop(self) -> None:
        """Ask the runner to finish: the current call hangs up, reports are written, run() returns."""
        self._stop.set()
        self._wake.set()
        self.hangup_current()

    def hangup_current(self, source: str | None = None) -> bool:
        """Hang up the call in progress and go on with the queue (`cellcall serve`'s hang-up; any thread).

        With `source` (a goal file name) only that goal's call is stopped, so a hang-up meant for a call
        that just ended never reaches the next one. True when a call was told to stop.
        """
        with self._call_lock:
            if self._call is None or (source is not None and source != self._call[0]):
                return False
            self._call[1].set()
            return True

    def run(self) -> None:
        self.log.emit("runner-start", goals=str(self.inbox.root), outbox=str(self.outbox_root), pid=os.getpid())
        self.recover()
        self.intake.start()
        try:
            while not self._stop.is_set():
                try:
                    self._tick()
                except Exception as exc:  # noqa: BLE001 - a full disk or a bad permission must not stop the phone for good
                    self.log.emit("runner-error", error=f"{type(exc).__name__}: {exc}")
                    self._stop.wait(1.0)
        finally:
            self.intake.stop()
            self._close_line()
            self._status_file.unlink(missing_ok=True)
            self.log.emit("runner-stop", calls=self._status["calls"])

    # --- recovery -------------------------------------------------------------------------------
    def recover(self) -> None:
        """Settle claims left in running/ by a runner that died; never redial one that may have dialled."""
        for claim in self.inbox.orphans():
            try:
                self._recover_one(claim)
            except Exception as exc:  # noqa: BLE001 - one unreadable leftover must not keep the runner from starting
                self.log.emit("recover-error", file=claim.goal_file.name, error=f"{type(exc).__name__}: {exc}")

    def _recover_one(self, claim: Claim) -> None:
        """Finish a step the dead owner began, requeue a claim that never dialled, else report it interrupted."""
        self.inbox.adopt(claim)
        name = claim.source_name
        finished = self.inbox.finish_pending_step(claim)
        if finished is not None:
            self.log.emit("recovered-step", goal=name, moved_to=str(finished.relative_to(self.inbox.root)))
            return
        if claim.state.get("phase") == "claimed":  # died before dialling: safe to queue again
            self.inbox.defer(claim, utcnow(), "requeued: the runner stopped before dialling")
            self.log.emit("recovered-requeue", goal=name)
            return
        folder, report = reports.interrupted(self.outbox_root, claim, self._goal_or_none(claim), self.log)
        entry = {"status": CallStatus.INTERRUPTED.value, "outbox": str(folder), "at": utcnow().isoformat()}
        owner = claim.state.get("owner") or {}
        target = self.inbox.archive(
            claim,
            {
                "status": CallStatus.INTERRUPTED.value,
                "outbox": str(folder),
                "report": str(report),
                "attempts": [*claim.history, entry],
                "note": f"runner pid {owner.get('pid', '?')} died during the call; not redialled",
            },
        )
        self.log.emit("recovered-interrupted", goal=name, outbox=str(folder), moved_to=str(target.relative_to(self.inbox.root)))
        self._publish_report(folder, f"cellcall: {name} interrupted")

    def _goal_or_none(self, claim: Claim) -> Goal | None:
        try:
            return self.load_goal(claim.goal_file, Path(claim.source_name).stem)
        except (GoalError, OSError, UnicodeDecodeError):
            return None

    # --- the loop ---------------------------------------------------------------------------------
    def _tick(self) -> None:
        self._status_heartbeat()
        line = self.line
        if line is None:
            if not self._connect():
                self._wake.wait(timeout=0.25)
                self._wake.clear()
            return
        try:
            event = line.next_event(self.options.idle_poll_s)
        except LineError as exc:
            self._line_lost(str(exc))
            return
        if event is not None:
            self._idle_event(event)
        if self._ringing is not None:
            if time.monotonic() - self._ringing.last_at > self.options.ring_gap_s:
                self._ringing = None
            return  # never dial out while the phone rings
        if self.line is None:
            return  # lost while handling the event: the queue waits for the reconnect
        job = self._next_job()
        if job is not None:
            self._run_goal(job)

    def _status_heartbeat(self) -> None:
        if time.monotonic() < self._next_status_line:
            return
        self._next_status_line = time.monotonic() + self.options.status_every_s
        waiting = self.inbox.waiting()
        self.log.emit(
            "status",
            line=self._status["line"].get("state"),
            queued=len(self.intake.ready()),
            waiting=len(waiting),
            next_retry=waiting[0].due if waiting else None,
            hold=self._hold.reason if self._hold else None,
            calls=self._status["calls"],
        )
        self.inbox.prune_seen(self.options.dedupe_window)
        self.publish()

    def publish(self, **changes: Any) -> None:
        """Write this runner's status file for `cellcall status` (atomic; a reader never sees half)."""
        self._status.update(changes)
        self._status["updated"] = utcnow().isoformat()
        atomic_write_json(self._status_file, self._status)

    # --- the line -----------------------------------------------------------------------------
    def _connect(self) -> bool:
        if time.monotonic() < self._line_retry_at or self._stop.is_set():
            return False
        try:
            line = self._line_factory()
            line.open()
        except (LineError, OSError) as exc:
            self._line_retry_at = time.monotonic() + self._line_backoff
            self.log.emit("line-down", reason=str(exc), retry_in_s=round(self._line_backoff, 1))
            self.publish(line={"state": "down", "detail": str(exc)})
            self._line_backoff = min(self._line_backoff * 2, self.options.reconnect_max_s)
            return False
        self.line = line
        self._line_backoff = self.options.reconnect_min_s
        self.log.emit("line-up")
        self.publish(line={"state": "up", "since": utcnow().isoformat()})
        return True

    def _line_lost(self, reason: str) -> None:
        self.log.emit("line-lost", reason=reason)
        self._close_line()
        self._ringing = None
        self._line_retry_at = time.monotonic() + self._line_backoff
        self.publish(line={"state": "down", "detail": reason})

    def _close_line(self) -> None:
        line, self.line = self.line, None
        if line is None:
            return
        try:
            line.close()
        except Exception as exc:  # noqa: BLE001 - a dead port may fail to close; the next open starts clean
            self.log.emit("line-close-error", reason=str(exc))

    # --- inbound while idle ------------------------------------------------------------------
    def _idle_event(self, event: LineEvent) -> None:
        if event.kind is LineEventKind.ERROR:
            self._line_lost(event.detail or "line error")
        elif event.kind is LineEventKind.INCOMING:
            self._incoming(event)
        elif event.kind is LineEventKind.MISSED:
            ringing, self._ringing = self._ringing, None
            self._idle_missed(event.number or (ringing.number if ringing else None))

    def _incoming(self, event: LineEvent) -> None:
        now = time.monotonic()
        ringing = self._ringing
        if (
            ringing is None
            or now - ringing.last_at > self.options.ring_gap_s
            or (event.number and ringing.number and event.number != ringing.number)
        ):
            self._ringing = _Ringing(event.number)
            self.log.emit("incoming", number=event.number)
        ringing = self._ringing
        ringing.rings += 1
        ringing.last_at = now
        ringing.number = event.number or ringing.number
        if ringing.ignored:
            return
        goal, reason = self._inbound_goal()
        if goal is None:
            ringing.ignored = True
            self.log.emit("incoming-not-answered", number=ringing.number, reason=reason)
            return
        if ringing.number is None and ringing.rings < self.settings.inbound.answer_after_rings:
            return  # the caller id (+CLIP) usually follows the first RING
        refusal = caller_refusal(ringing.number, self.settings.inbound.allow_callers, self.settings.inbound.deny_callers)
        if refusal:
            self._ringing = None  # hung up: the next RING is another call
            self.log.emit("incoming-rejected", number=ringing.number, reason=refusal)
            self._hangup_quietly()
            self._missed(ringing.number, f"rejected: {refusal}")
            return
        if ringing.rings >= self.settings.inbound.answer_after_rings:
            self._ringing = None
            self._run_inbound(goal, ringing.number)

    def _inbound_goal(self) -> tuple[Goal | None, str]:
        if not self.settings.inbound.enabled:
            return None, "inbound.enabled is false"
        if not self._inbound_path.is_file():
            return None, f"no inbound goal at {self._inbound_path}"
        try:
            goal = self.load_goal(self._inbound_path)
        except (GoalError, OSError) as exc:
            return None, f"inbound goal invalid: {str(exc).splitlines()[0]}"
        return goal, ""

    def _hangup_quietly(self) -> None:
        try:
            assert self.line is not None
            self.line.hangup()
        except LineError as exc:
            self._line_lost(str(exc))

    def _missed(self, number: str | None, reason: str) -> None:
        """A missed-call record in the outbox (and a log line)."""
        folder = reports.missed(self.outbox_root, number, reason)
        self.log.emit("missed-call", number=number, reason=reason, outbox=str(folder))
        self._publish_report(folder, f"cellcall: missed call from {number or 'unknown'}")

    def _idle_missed(self, number: str | None) -> None:
        if number and self._already_recorded.pop(number, 0.0) > time.monotonic():
            return  # recorded when it rang during a call; this is the modem's late MISSED_CALL for it
        self._missed(number, "missed: the caller hung up before the answer")

    def _run_inbound(self, goal: Goal, number: str | None) -> None:
        self.log.emit("answering", number=number, goal=goal.name)
        outcome = self._observed(lambda line, obs, stop: self._answer(goal, line, number, obs, stop), None, goal.name, number)
        self.log.emit(
            "inbound-done",
            number=number,
            status=outcome.status.value,
            outbox=str(outcome.folder) if outcome.folder else None,
            error=outcome.error,
        )
        self._commit(outcome.folder, f"cellcall: inbound call from {number or 'unknown'} {outcome.status.value}")

    # --- outbound -------------------------------------------------------------------------------
    def _next_job(self) -> ReadyGoal | Waiting | None:
        """The oldest goal that may dial now; expired ones go to failed/ on the way."""
        if not self._wake.is_set() and time.monotonic() < self._next_look:
            return None
        self._wake.clear()
        self._next_look = time.monotonic() + 0.5
        now = utcnow()
        candidates: list[tuple[datetime, ReadyGoal | Waiting, Goal]] = []
        for ready in self.intake.ready():
            if self._expired(ready.goal, ready.path, now):
                continue
            if goal_hold(ready.goal, now) is None:
                mtime = datetime.fromtimestamp(ready.mtime_ns / 1e9, UTC)
                candidates.append((mtime, ready, ready.goal))
        for item in self.inbox.waiting():
            if item.due > now:
                break
            try:
                goal = self.load_goal(item.goal_file, Path(item.source).stem)
            except (GoalError, OSError, UnicodeDecodeError):
                goal = None  # claimed anyway: the claim reports the problem in failed/
            if goal is None or goal_hold(goal, now) is None:
                candidates.append((_as_utc(item.due), item, goal))  # type: ignore[arg-type]
        if not candidates:
            return None
        candidates.sort(key=lambda c: c[0])
        _, job, goal = candidates[0]
        hold = policy_hold(goal.number, self.settings.policy, self.ledger, now) if goal and goal.number else None
        if hold is not None:
            if self._hold is None or self._hold.reason != hold.reason:
                self.log.emit("dialling-held", reason=hold.reason, until=hold.until)
            self._hold = hold
            return None
        self._hold = None
        return job

    def _expired(self, goal: Goal, path: Path, now: datetime) -> bool:
        reason = expiry(goal, now)
        if reason is None:
            return False
        target = self.inbox.fail(path, [reason], title="Goal expired")
        self.intake.discard(path)
        if target is not None:
            self.log.emit("goal-expired", goal=goal.name, moved_to=str(target.relative_to(self.inbox.root)))
        return True

    def _claim(self, job: ReadyGoal | Waiting) -> Claim | None:
        if isinstance(job, Waiting):
            return self.inbox.claim_waiting(job)
        claim = self.inbox.claim(job.path)
        self.intake.discard(job.path)
        return claim

    def _run_goal(self, job: ReadyGoal | Waiting) -> None:
        claim = self._claim(job)
        if claim is None:
            self.log.emit("claim-lost", file=(job.path if isinstance(job, ReadyGoal) else job.goal_file).name)
            return
        name = claim.source_name
        try:
            raw = claim.goal_file.read_bytes()
            goal = self.load_goal(claim.goal_file, Path(name).stem)
        except (GoalError, OSError, UnicodeDecodeError) as exc:
            problems = exc.lines() if isinstance(exc, GoalError) else [str(exc)]
            self.inbox.fail(claim, problems)
            self.log.emit("goal-invalid", file=name, first=problems[0])
            return
        if isinstance(job, ReadyGoal):
            earlier = self.inbox.first_claim_of(content_hash(raw), claim, self.options.dedupe_window)
            if earlier is not None:
                target = self.inbox.archive(
                    claim,
                    {
                        "status": "duplicate",
                        "duplicate_of": earlier.get("source"),
                        "note": f"same content as {earlier.get('source')} claimed at {earlier.get('at')}; not dialled again",
                    },
                )
                self.log.emit(
                    "duplicate", goal=goal.name, of=earlier.get("source"), moved_to=str(target.relative_to(self.inbox.root))
                )
                return
        reason = expiry(goal, utcnow())
        if reason is not None:
            self.inbox.fail(claim, [reason], title="Goal expired")
            self.log.emit("goal-expired", goal=goal.name)
            return
        self.inbox.update(claim, phase="calling", goal=goal.name, number=goal.number)
        try:  # place_call decides and writes the refused report; the log only must not say "dialling" first
            check_dial(goal.number or "", self.settings.policy, self.ledger)
            self.log.emit("dialling", goal=goal.name, number=goal.number, attempt=claim.attempt + 1)
        except PolicyRefusal as refusal:
            self.log.emit("policy-refused", goal=goal.name, number=goal.number, reason=refusal.reason)
        outcome = self._observed(lambda line, obs, stop: self._place(goal, line, obs, stop), claim, goal.name, None)
        self._settle(claim, goal, outcome)

    def _settle(self, claim: Claim, goal: Goal, outcome: _Outcome) -> None:
        now = utcnow()
        entry = {
            "status": outcome.status.value,
            "outbox": str(outcome.folder) if outcome.folder else None,
            "at": now.isoformat(),
            "error": outcome.error,
        }
        history = [*claim.history, entry]
        due = retry_due(goal, outcome.status, claim.attempt, now)
        if due is not None:
            self.inbox.defer(claim, due, outcome.status.value, attempt=claim.attempt + 1, history=history)
            self.log.emit("retry-scheduled", goal=goal.name, status=outcome.status.value, due=due, retry=claim.attempt + 1)
        else:
            target = self.inbox.archive(
                claim,
                {
                    "status": outcome.status.value,
                    "goal": goal.name,
                    "number": goal.number,
                    "outbox": entry["outbox"],
                    "report": str(outcome.report) if outcome.report else None,
                    "error": outcome.error,
                    "attempts": history,
                },
            )
            self.log.emit(
                "archived", goal=goal.name, status=outcome.status.value, moved_to=str(target.relative_to(self.inbox.root))
            )
        self._commit(outcome.folder, f"cellcall: {goal.name} {outcome.status.value}")

    # --- one call, observed -------------------------------------------------------------------
    def _observed(
        self,
        call: Callable[[Line, _Observer, threading.Event], CallResult],
        claim: Claim | None,
        label: str,
        caller: str | None,
    ) -> _Outcome:
        """Run one call on the runner's line; whatever happens, return an outcome and keep running."""
        assert self.line is not None
        tap = _CallLine(self.line, caller)
        observer = _Observer(self, claim, label)
        self.publish(current={"goal": label, "since": utcnow().isoformat(), "caller": caller})
        call_stop = threading.Event()  # set by stop() or hangup_current()
        with self._call_lock:
            self._call = (claim.source_name if claim else "", call_stop)
        if self._stop.is_set():
            call_stop.set()
        try:
            result = call(tap, observer, call_stop)  # type: ignore[arg-type]
            outcome = _Outcome(result.record.status, result.folder, result.report, result.record.error)
        except LineError as exc:
            tap.lost = tap.lost or str(exc)
            outcome = _Outcome(CallStatus.FAILED, observer.folder, None, f"line error: {exc}")
        except Exception as exc:  # noqa: BLE001 - a bug in one call must not stop the phone
            self.log.emit("call-crashed", goal=label, error=f"{type(exc).__name__}: {exc}")
            outcome = _Outcome(CallStatus.FAILED, observer.folder, None, f"{type(exc).__name__}: {exc}")
        with self._call_lock:
            self._call = None
        self._status["calls"] += 1
        self.publish(
            current=None,
            last={"goal": label, "status": outcome.status.value, "outbox": str(outcome.folder) if outcome.folder else None},
        )
        missed = {e.number: e.kind for e in tap.rang_in if e.number}
        for number, kind in missed.items():
            self._missed(number, "missed: rang during another call")
            if kind is LineEventKind.INCOMING:  # still ringing, perhaps: its MISSED may follow
                self._already_recorded[number] = time.monotonic() + 60.0
        if tap.lost:
            self._line_lost(tap.lost)
        return outcome

    def _publish_report(self, folder: Path, message: str) -> None:
        """A report the runner wrote itself (missed, interrupted): commit it and tell OpenClaw, like a call's."""
        self._commit(folder, message)
        notify_call_finished(self.settings, read_record(folder / "call.json"), folder)

    def _commit(self, folder: Path | None, message: str) -> None:
        if not self.settings.outbox.git or folder is None:
            return
        try:
            commit_call(self.outbox_root, Path(folder), message)
        except Exception as exc:  # noqa: BLE001 - git trouble never stops the phone; the report is on disk
            self.log.emit("git-error", folder=str(folder), error=str(exc))
        else:
            self.log.emit("git-commit", folder=str(folder))


def caller_refusal(number: str | None, allow: list[str], deny: list[str]) -> str | None:
    """Why an inbound caller is not answered (deny list, or not on a non-empty allow list)."""
    for prefix in deny:
        if number and number.startswith(prefix.replace(" ", "")):
            return f"{number} matches inbound.deny_callers {prefix}"
    if allow and not (number and any(number.startswith(p.replace(" ", "")) for p in allow)):
        return f"{number or 'a withheld number'} is not on inbound.allow_callers"
    return None


def default_call_fns(settings: Settings) -> tuple[PlaceFn, AnswerFn, Engines]:
    """place_call / answer_call with one set of engines for every call (loading starts now, kept warm)."""
    from cellcall.call import answer_call, place_call
    from cellcall.engines.cache import shared_engines

    engines = shared_engines(settings)
    engines.preload()  # background threads: the runner starts watching at once

    def place(goal: Goal, line: Line, observer: Any, stop: threading.Event) -> CallResult:
        return place_call(goal, settings, line, engines=engines, stop=stop, observer=observer)

    def answer(goal: Goal, line: Line, caller: str | None, observer: Any, stop: threading.Event) -> CallResult:
        return answer_call(goal, settings, line, caller, engines=engines, stop=stop, observer=observer)

    return place, answer, engines


def settle_engines(engines: Engines, log: EventLog) -> None:
    """Let model loads still running finish: native loaders abort the process if it exits under them."""
    for name, load in (("stt", engines.stt), ("tts", engines.tts), ("llm", engines.llm)):
        try:
            load()
        except Exception as exc:  # noqa: BLE001 - a model that cannot load no longer matters on the way out
            log.emit("engine-unavailable", engine=name, error=str(exc))


class WatchError(RuntimeError):
    """`cellcall watch` cannot start (no goals folder, unknown line kind)."""


def watch(
    settings: Settings, goals_dir: Path | None = None, attach: Callable[[Runner], Callable[[], None]] | None = None
) -> NoReturn:
    """`cellcall watch`: run until SIGTERM or Ctrl-C, then hang up, finish the reports, exit 0.

    `attach` (`cellcall serve`'s HTTP API) starts beside the runner and returns how to stop it.

    The process ends with os._exit once the reports are written and model loads have settled:
    native threads of the speech and language libraries (a call's opening still being prepared,
    say) can abort the interpreter's own shutdown, which would turn a clean stop into a crash.
    """
    from cellcall.line.factory import KINDS, make_line

    goals = Path(goals_dir or settings.paths.goals)
    if not goals.is_dir():
        raise WatchError(f"goals folder not found: {goals} (create it, or pass GOALS_DIR)")
    if settings.line.kind not in KINDS:
        raise WatchError(f"unknown line kind {settings.line.kind!r}: choose one of {', '.join(KINDS)}")
    place, answer, engines = default_call_fns(settings)
    runner = Runner(settings, goals, line_factory=lambda: make_line(settings), place=place, answer=answer)
    try:
        detach = attach(runner) if attach else None
    except BaseException:
        settle_engines(engines, runner.log)
        raise
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: runner.stop())
    flushing = threading.Event()
    start_periodic_delivery(settings, flushing)  # pushes queued while the gateway was down
    runner.run()
    if detach is not None:
        detach()
    flushing.set()
    settle_engines(engines, runner.log)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
