"""When a goal may dial: not_before/not_after, quiet hours and rate limits defer, retries on busy/no-answer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from cellcall.config import PolicySettings
from cellcall.goal import parse_goal
from cellcall.policy import DialLedger
from cellcall.record import CallStatus
from cellcall.watch.schedule import expiry, goal_hold, policy_hold, quiet_hours_end, retry_due

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
NUMBER = "+14155550132"


def _goal(extra: str = ""):
    return parse_goal(f"---\nnumber: '{NUMBER}'\nobjective: test\n{extra}---\n", "g")


def test_not_before_holds_and_not_after_expires() -> None:
    goal = _goal("not_before: 2026-11-26T13:00:00Z\nnot_after: 2026-11-26T15:00:00Z\n")
    hold = goal_hold(goal, NOW)
    assert hold is not None and hold.until == datetime(2026, 11, 26, 13, tzinfo=UTC)
    assert goal_hold(goal, NOW + timedelta(hours=1)) is None
    assert expiry(goal, NOW + timedelta(hours=2)) is None
    reason = expiry(goal, NOW + timedelta(hours=4))
    assert reason is not None and "not_after" in reason


def test_quiet_hours_defer_until_they_end(tmp_path: Path) -> None:
    policy = PolicySettings(quiet_hours="21:00-08:00", timezone="America/Los_Angeles")
    ledger = DialLedger(tmp_path / "dials.jsonl")
    late = datetime(2026, 11, 26, 23, 30, tzinfo=timezone(timedelta(hours=-8)))  # 23:30 in LA (PST)
    hold = policy_hold(NUMBER, policy, ledger, late)
    assert hold is not None and "quiet hours" in hold.reason
    assert hold.until == datetime(2026, 11, 27, 8, 0, tzinfo=timezone(timedelta(hours=-8)))
    early = datetime(2026, 11, 27, 7, 0, tzinfo=timezone(timedelta(hours=-8)))
    assert quiet_hours_end(policy, early) == datetime(2026, 11, 27, 8, 0, tzinfo=timezone(timedelta(hours=-8)))
    assert policy_hold(NUMBER, policy, ledger, datetime(2026, 11, 27, 9, tzinfo=timezone(timedelta(hours=-8)))) is None


def test_rate_limit_defers_and_hard_refusals_do_not(tmp_path: Path) -> None:
    ledger = DialLedger(tmp_path / "dials.jsonl")
    for minute in range(3):
        ledger.record(NUMBER, NOW - timedelta(minutes=minute))
    policy = PolicySettings(max_calls_per_hour=3)
    hold = policy_hold(NUMBER, policy, ledger, NOW)
    assert hold is not None and hold.until > NOW and "max_calls_per_hour" in hold.reason
    assert policy_hold("+1911", PolicySettings(), ledger, NOW) is None  # emergency: place_call refuses it


def test_retry_only_on_busy_and_no_answer_within_attempts() -> None:
    goal = _goal("retry: {attempts: 2, backoff_s: 30, on: [busy, no-answer]}\n")
    assert retry_due(goal, CallStatus.BUSY, 0, NOW) == NOW + timedelta(seconds=30)
    assert retry_due(goal, CallStatus.NO_ANSWER, 1, NOW) == NOW + timedelta(seconds=30)
    assert retry_due(goal, CallStatus.BUSY, 2, NOW) is None  # two retries done: three calls in all
    for status in (CallStatus.COMPLETED, CallStatus.FAILED, CallStatus.REFUSED, CallStatus.INTERRUPTED):
        assert retry_due(goal, status, 0, NOW) is None
    assert retry_due(_goal("retry: {attempts: 1, on: [busy]}\n"), CallStatus.NO_ANSWER, 0, NOW) is None
    assert retry_due(_goal(), CallStatus.BUSY, 0, NOW) is None
