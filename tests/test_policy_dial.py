"""Dialling policy: emergency and premium tables, lists, rate limits from the ledger, quiet hours."""

from __future__ import annotations

import multiprocessing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cellcall.config import PolicySettings
from cellcall.goal import load_goal
from cellcall.policy import EMERGENCY, EVERYWHERE, DialLedger, PolicyRefusal, check_dial, normalize_number

NOON_UTC = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
OK = "+14155550132"


@pytest.fixture
def ledger(tmp_path: Path) -> DialLedger:
    return DialLedger(tmp_path / ".dials.jsonl")


def refusal(number: str, ledger: DialLedger, **policy: object) -> PolicyRefusal:
    with pytest.raises(PolicyRefusal) as caught:
        check_dial(number, PolicySettings(**policy), ledger, NOON_UTC)
    return caught.value


@pytest.mark.parametrize(
    ("raw", "country"),
    [("911", "US"), ("+1 911", "US"), ("112", "US"), ("999", "GB"), ("112", "GB"), ("000", "AU"), ("110", "DE"),
     ("112", "DE"), ("110", "JP"), ("119", "JP"), ("118", "IT"), ("100", "IN"), ("190", "BR"), ("111", "NZ"), ("17", "FR"),
     ("120", "CN"), ("911", "MX"), ("+44 999", "US")],
)  # fmt: skip
def test_emergency_numbers_are_refused_by_country(raw: str, country: str, ledger: DialLedger) -> None:
    number = normalize_number(raw, country)
    error = refusal(number, ledger)
    assert error.kind == "emergency" and number in error.reason


def test_every_table_entry_is_refused(ledger: DialLedger) -> None:
    for code, numbers in EMERGENCY.items():
        for national in (*numbers, *EVERYWHERE):
            assert refusal(f"+{code}{national}", ledger).kind == "emergency"


def test_allow_emergency_is_the_only_way_through(ledger: DialLedger) -> None:
    check_dial("+1911", PolicySettings(allow_emergency=True), ledger, NOON_UTC)
    assert refusal("+1911", ledger, allowlist=["+1911"]).kind == "emergency"


@pytest.mark.parametrize(
    ("number", "label"),
    [("+19005551234", "NANP 900"), ("+12139761234", "NANP 976"), ("+449065551234", "UK 09"), ("+448712345678", "UK 0871"),
     ("+44118118", "UK 118"), ("+4990012345678", "Germany 0900"), ("+33899123456", "France 089"), ("+61190012345", "Australia 19")],
)  # fmt: skip
def test_premium_ranges_are_refused(number: str, label: str, ledger: DialLedger) -> None:
    error = refusal(number, ledger)
    assert error.kind == "premium" and label in error.reason


def test_premium_backstop_uses_libphonenumber_metadata(ledger: DialLedger) -> None:
    """Swiss 0900 is not in the table; libphonenumber's metadata still knows it is premium."""
    error = refusal("+41900123456", ledger)
    assert error.kind == "premium" and "libphonenumber" in error.reason


def test_reading_area_code_is_not_mistaken_for_directory_enquiries(ledger: DialLedger) -> None:
    check_dial("+441189496000", PolicySettings(), ledger, NOON_UTC)


def test_allow_premium(ledger: DialLedger) -> None:
    check_dial("+19005551234", PolicySettings(allow_premium=True), ledger, NOON_UTC)


def test_ordinary_numbers_pass(ledger: DialLedger) -> None:
    for number in (OK, "+442079460018", "+4930901820", "+61291234567"):
        check_dial(number, PolicySettings(), ledger, NOON_UTC)


def test_not_e164_is_refused(ledger: DialLedger) -> None:
    for bad in ("4155550132", "+0123", "+1 415 555 0132", ""):
        assert refusal(bad, ledger).kind == "invalid"


def test_denylist_wins_over_allowlist(ledger: DialLedger) -> None:
    assert refusal(OK, ledger, allowlist=["+1415"], denylist=["+1415555"]).kind == "denylist"
    assert refusal("+442079460018", ledger, allowlist=["+1"]).kind == "allowlist"
    check_dial(OK, PolicySettings(allowlist=["+1 415"]), ledger, NOON_UTC)


def test_malformed_list_entry_is_a_config_refusal(ledger: DialLedger) -> None:
    error = refusal(OK, ledger, denylist=["1415"])
    assert error.kind == "config" and "'1415'" in error.reason


def test_rate_limits_count_the_ledger(ledger: DialLedger) -> None:
    for minutes in (10, 20):
        ledger.record(OK, NOON_UTC - timedelta(minutes=minutes))
    ledger.record(OK, NOON_UTC - timedelta(hours=5))
    assert ledger.count_since(NOON_UTC - timedelta(hours=1)) == 2
    assert refusal(OK, ledger, max_calls_per_hour=2).kind == "rate"
    check_dial(OK, PolicySettings(max_calls_per_hour=3), ledger, NOON_UTC)
    error = refusal(OK, ledger, max_calls_per_day=3)
    assert error.kind == "rate" and "max_calls_per_day = 3" in error.reason


def test_ledger_skips_a_torn_line_and_filters_by_number(ledger: DialLedger) -> None:
    ledger.record(OK, NOON_UTC)
    with ledger.path.open("a") as handle:
        handle.write('{"at": "2026-11-25T12:0')  # a crash mid-write
    ledger.record("+442079460018", NOON_UTC)
    assert ledger.count_since(NOON_UTC - timedelta(minutes=1)) == 2
    assert ledger.count_since(NOON_UTC, number=OK) == 1
    with pytest.raises(ValueError):
        ledger.record(OK, datetime(2026, 1, 1))


def _append_many(path: str, count: int) -> None:
    ledger = DialLedger(Path(path))
    for _ in range(count):
        ledger.record(OK, NOON_UTC)


def test_two_processes_append_without_losing_lines(ledger: DialLedger) -> None:
    workers = [multiprocessing.Process(target=_append_many, args=(str(ledger.path), 200)) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    assert ledger.count_since(NOON_UTC) == 400


@pytest.mark.parametrize(
    ("utc_hour", "quiet", "zone", "refused"),
    [(12, "21:00-08:00", "UTC", False), (22, "21:00-08:00", "UTC", True), (3, "21:00-08:00", "UTC", True),
     (8, "21:00-08:00", "UTC", False), (12, "12:00-13:00", "UTC", True), (12, "21:00-08:00", "America/Los_Angeles", True),
     (12, "21:00-08:00", "Europe/Berlin", False)],
)  # fmt: skip
def test_quiet_hours_in_the_configured_zone(utc_hour: int, quiet: str, zone: str, refused: bool, ledger: DialLedger) -> None:
    policy = PolicySettings(quiet_hours=quiet, timezone=zone)
    now = NOON_UTC.replace(hour=utc_hour)
    if refused:
        with pytest.raises(PolicyRefusal) as caught:
            check_dial(OK, policy, ledger, now)
        assert caught.value.kind == "quiet-hours"
    else:
        check_dial(OK, policy, ledger, now)


@pytest.mark.parametrize(("quiet", "zone"), [("9pm-8am", "UTC"), ("25:00-08:00", "UTC"), ("21:00-08:00", "Mars/Olympus")])
def test_bad_quiet_hours_settings_are_clear(quiet: str, zone: str, ledger: DialLedger) -> None:
    assert refusal(OK, ledger, quiet_hours=quiet, timezone=zone).kind == "config"


def test_goal_calling_911_is_refused_before_any_line(tmp_path: Path, ledger: DialLedger) -> None:
    goal_file = tmp_path / "emergency.md"
    goal_file.write_text('---\nnumber: "911"\nobjective: Test the line\n---\n')
    goal = load_goal(goal_file)
    assert goal.number is not None and refusal(goal.number, ledger).kind == "emergency"
