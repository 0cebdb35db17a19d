"""Outbound goals from the local goals folder: pick the oldest that may dial, claim it, dial, settle.

One `InboxDialler` per runner, owned by the runner thread: it alone holds the current policy hold
and when to look at the folder next. The claim's phase becomes "calling" before the dial, so a
runner that dies mid-call is reported interrupted by recovery and never redials (see inbox.py).
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from cellcall.goal import Goal, GoalError
from cellcall.policy import PolicyRefusal, check_dial
from cellcall.watch.calltap import Outcome
from cellcall.watch.inbox import Claim, Waiting, content_hash, utcnow
from cellcall.watch.intake import ReadyGoal
from cellcall.watch.schedule import Hold, expiry, goal_hold, policy_hold, retry_due

if TYPE_CHECKING:
    from cellcall.watch.runner import Runner


def _as_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


class InboxDialler:
    """Dials the goals of the runner's own goals folder, oldest first, one at a time."""

    def __init__(self, runner: Runner, wake: threading.Event) -> None:
        self._runner = runner
        self._wake = wake  # set by the intake when a goal is ready; cleared here
        self._next_look = 0.0
        self.hold: Hold | None = None

    def dial_next(self) -> None:
        """Dial the next goal that may dial now, if any (returns when its call is settled)."""
        job = self._next_job()
        if job is not None:
            self._run_goal(job)

    def _next_job(self) -> ReadyGoal | Waiting | None:
        """The oldest goal that may dial now; expired ones go to failed/ on the way."""
        runner = self._runner
        if not self._wake.is_set() and time.monotonic() < self._next_look:
            return None
        self._wake.clear()
        self._next_look = time.monotonic() + 0.5
        now = utcnow()
        candidates: list[tuple[datetime, ReadyGoal | Waiting, Goal]] = []
        for ready in runner.intake.ready():
            if self._expired(ready.goal, ready.path, now):
                continue
            if goal_hold(ready.goal, now) is None:
                mtime = datetime.fromtimestamp(ready.mtime_ns / 1e9, UTC)
                candidates.append((mtime, ready, ready.goal))
        for item in runner.inbox.waiting():
            if item.due > now:
                break
            try:
                goal = runner.load_goal(item.goal_file, Path(item.source).stem)
            except (GoalError, OSError, UnicodeDecodeError):
                goal = None  # claimed anyway: the claim reports the problem in failed/
            if goal is None or goal_hold(goal, now) is None:
                candidates.append((_as_utc(item.due), item, goal))  # type: ignore[arg-type]
        if not candidates:
            return None
        candidates.sort(key=lambda c: c[0])
        _, job, goal = candidates[0]
        hold = policy_hold(goal.number, runner.settings.policy, runner.ledger, now) if goal and goal.number else None
        if hold is not None:
            if self.hold is None or self.hold.reason != hold.reason:
                runner.log.emit("dialling-held", reason=hold.reason, until=hold.until)
            self.hold = hold
            return None
        self.hold = None
        return job

    def _expired(self, goal: Goal, path: Path, now: datetime) -> bool:
        runner = self._runner
        reason = expiry(goal, now)
        if reason is None:
            return False
        target = runner.inbox.fail(path, [reason], title="Goal expired")
        runner.intake.discard(path)
        if target is not None:
            runner.log.emit("goal-expired", goal=goal.name, moved_to=str(target.relative_to(runner.inbox.root)))
        return True

    def _claim(self, job: ReadyGoal | Waiting) -> Claim | None:
        runner = self._runner
        if isinstance(job, Waiting):
            return runner.inbox.claim_waiting(job)
        claim = runner.inbox.claim(job.path)
        runner.intake.discard(job.path)
        return claim

    def _run_goal(self, job: ReadyGoal | Waiting) -> None:
        runner = self._runner
        claim = self._claim(job)
        if claim is None:
            runner.log.emit("claim-lost", file=(job.path if isinstance(job, ReadyGoal) else job.goal_file).name)
            return
        name = claim.source_name
        try:
            raw = claim.goal_file.read_bytes()
            goal = runner.load_goal(claim.goal_file, Path(name).stem)
        except (GoalError, OSError, UnicodeDecodeError) as exc:
            problems = exc.lines() if isinstance(exc, GoalError) else [str(exc)]
            runner.inbox.fail(claim, problems)
            runner.log.emit("goal-invalid", file=name, first=problems[0])
            return
        if isinstance(job, ReadyGoal):
            earlier = runner.inbox.first_claim_of(content_hash(raw), claim, runner.options.dedupe_window)
            if earlier is not None:
                target = runner.inbox.archive(
                    claim,
                    {
                        "status": "duplicate",
                        "duplicate_of": earlier.get("source"),
                        "note": f"same content as {earlier.get('source')} claimed at {earlier.get('at')}; not dialled again",
                    },
                )
                runner.log.emit(
                    "duplicate", goal=goal.name, of=earlier.get("source"), moved_to=str(target.relative_to(runner.inbox.root))
                )
                return
        reason = expiry(goal, utcnow())
        if reason is not None:
            runner.inbox.fail(claim, [reason], title="Goal expired")
            runner.log.emit("goal-expired", goal=goal.name)
            return
        runner.inbox.update(claim, phase="calling", goal=goal.name, number=goal.number)
        try:  # place_call decides and writes the refused report; the log only must not say "dialling" first
            check_dial(goal.number or "", runner.settings.policy, runner.ledger)
            runner.log.emit("dialling", goal=goal.name, number=goal.number, attempt=claim.attempt + 1)
        except PolicyRefusal as refusal:
            runner.log.emit("policy-refused", goal=goal.name, number=goal.number, reason=refusal.reason)
        outcome = runner.observed(lambda line, obs, stop: runner.place(goal, line, obs, stop), claim, goal.name, None)
        self._settle(claim, goal, outcome)

    def _settle(self, claim: Claim, goal: Goal, outcome: Outcome) -> None:
        runner = self._runner
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
            runner.inbox.defer(claim, due, outcome.status.value, attempt=claim.attempt + 1, history=history)
            runner.log.emit("retry-scheduled", goal=goal.name, status=outcome.status.value, due=due, retry=claim.attempt + 1)
        else:
            target = runner.inbox.archive(
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
            runner.log.emit(
                "archived", goal=goal.name, status=outcome.status.value, moved_to=str(target.relative_to(runner.inbox.root))
            )
        runner.commit(outcome.folder, f"cellcall: {goal.name} {outcome.status.value}")
