"""Claims a dead runner left in running/: finish its step, requeue what never dialled, report the rest.

Runs on the runner thread before the first tick. A claim whose phase passed "claimed" may have
dialled, so it is reported interrupted and never redialled.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from cellcall.goal import Goal, GoalError
from cellcall.record import CallStatus
from cellcall.watch import reports
from cellcall.watch.inbox import Claim, utcnow

if TYPE_CHECKING:
    from cellcall.watch.runner import Runner


def recover_orphans(runner: Runner) -> None:
    """Settle every orphaned claim; one unreadable leftover must not keep the runner from starting."""
    for claim in runner.inbox.orphans():
        try:
            _recover_one(runner, claim)
        except Exception as exc:  # noqa: BLE001 - one unreadable leftover must not keep the runner from starting
            runner.log.emit("recover-error", file=claim.goal_file.name, error=f"{type(exc).__name__}: {exc}")


def _recover_one(runner: Runner, claim: Claim) -> None:
    """Finish a step the dead owner began, requeue a claim that never dialled, else report it interrupted."""
    inbox = runner.inbox
    inbox.adopt(claim)
    name = claim.source_name
    finished = inbox.finish_pending_step(claim)
    if finished is not None:
        runner.log.emit("recovered-step", goal=name, moved_to=str(finished.relative_to(inbox.root)))
        return
    if claim.state.get("phase") == "claimed":  # died before dialling: safe to queue again
        inbox.defer(claim, utcnow(), "requeued: the runner stopped before dialling")
        runner.log.emit("recovered-requeue", goal=name)
        return
    folder, report = reports.interrupted(runner.outbox_root, claim, _goal_or_none(runner, claim), runner.log)
    entry = {"status": CallStatus.INTERRUPTED.value, "outbox": str(folder), "at": utcnow().isoformat()}
    owner = claim.state.get("owner") or {}
    target = inbox.archive(
        claim,
        {
            "status": CallStatus.INTERRUPTED.value,
            "outbox": str(folder),
            "report": str(report),
            "attempts": [*claim.history, entry],
            "note": f"runner pid {owner.get('pid', '?')} died during the call; not redialled",
        },
    )
    runner.log.emit("recovered-interrupted", goal=name, outbox=str(folder), moved_to=str(target.relative_to(inbox.root)))
    runner.publish_report(folder, f"cellcall: {name} interrupted")


def _goal_or_none(runner: Runner, claim: Claim) -> Goal | None:
    try:
        return runner.load_goal(claim.goal_file, Path(claim.source_name).stem)
    except (GoalError, OSError, UnicodeDecodeError):
        return None
