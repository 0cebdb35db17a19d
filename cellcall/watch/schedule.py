"""When a queued goal may dial: its own time window, the policy's quiet hours and rate limits, retries.

Pure decisions (no files, no line) so every rule is testable with a fixed clock. Quiet hours and
rate limits *defer* a goal (it dials once allowed); hard refusals (emergency, premium, deny and
allow lists) are left to place_call, which writes the refused report.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from cellcall.config import PolicySettings
from cellcall.goal import Goal
from cellcall.policy import DialLedger, PolicyRefusal, check_dial, policy_zone, quiet_window
from cellcall.record import CallStatus

RATE_RECHECK = timedelta(minutes=1)
DEFERRING_KINDS = ("quiet-hours", "rate")


@dataclass(frozen=True)
class Hold:
    """A goal may not dial before `until`, because of `reason`."""

    until: datetime
    reason: str


def expiry(goal: Goal, now: datetime) -> str | None:
    """Why the goal can no longer be dialled (its not_after has passed), or None."""
    if goal.not_after is not None and now > goal.not_after:
        return f"expired: not_after {goal.not_after.isoformat()} has passed"
    return None


def goal_hold(goal: Goal, now: datetime) -> Hold | None:
    """The goal's own not_before, when it lies in the future."""
    if goal.not_before is not None and now < goal.not_before:
        return Hold(goal.not_before, f"not_before {goal.not_before.isoformat()}")
    return None


def policy_hold(number: str, policy: PolicySettings, ledger: DialLedger, now: datetime) -> Hold | None:
    """Quiet hours or a rate limit that says "later", or None (allowed, or refused for good)."""
    try:
        check_dial(number, policy, ledger, now)
    except PolicyRefusal as refusal:
        if refusal.kind == "quiet-hours":
            return Hold(quiet_hours_end(policy, now), refusal.reason)
        if refusal.kind == "rate":
            return Hold(now + RATE_RECHECK, refusal.reason)
    return None


def quiet_hours_end(policy: PolicySettings, now: datetime) -> datetime:
    """The next moment the configured quiet hours end, in the policy's time zone."""
    window = quiet_window(policy.quiet_hours)
    if window is None:
        return now
    zone = policy_zone(policy.timezone)
    local = now.astimezone(zone)
    end = datetime.combine(local.date(), window[1], tzinfo=zone)
    if end <= local:
        end = datetime.combine(local.date() + timedelta(days=1), window[1], tzinfo=zone)
    return end.astimezone(now.tzinfo)


def retry_due(goal: Goal, status: CallStatus, retries_done: int, now: datetime) -> datetime | None:
    """When to call again after `status`, or None. Only busy and no-answer ever retry.

    `retry.attempts` counts retries after the first call: attempts 2 means at most three calls.
    """
    rule = goal.retry
    if rule is None or status.value not in rule.on or retries_done >= rule.attempts:
        return None
    return now + timedelta(seconds=rule.backoff_s)
