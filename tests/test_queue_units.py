"""The fleet's pure parts: routes, claim keys, claim staleness, the fleet limits' arithmetic (no server)."""

from __future__ import annotations

import time

from cellcall.queue.claims import ClaimState, claim_key
from cellcall.queue.ledger import DAY_S, HOUR_S, FleetLimits
from cellcall.queue.messages import goal_from_message, route_of


def test_routes_name_a_line_or_a_caller_id_and_are_safe_subject_tokens() -> None:
    assert route_of(None) == "any"
    assert route_of("Office SIM") == "line.office-sim"
    assert route_of("+1 415 555 0100") == "line.caller-14155550100"
    assert route_of("a.b>*") == "line.a-b"  # no subject wildcards or separators from a goal's text
    assert goal_from_message("cellcall.goals.line.office-sim", b"x", {"Cellcall-Source": "../../etc/x.md"}).source == "x.md"
    for hostile in ("..", ".", "", ".hidden.md", "[red]x[/red].md"):
        source = goal_from_message("cellcall.goals.any", b"x", {"Cellcall-Source": hostile}).source
        assert source and not source.startswith(".") and "/" not in source and "[" not in source


def test_the_claim_key_is_the_name_and_the_exact_bytes() -> None:
    assert claim_key("dentist", b"a") == claim_key("dentist", b"a")
    assert claim_key("dentist", b"a") != claim_key("dentist", b"b") != claim_key("vet", b"b")
    assert claim_key("../weird name!", b"a").split(".")[0] == "weird-name"


def test_a_claim_is_stale_only_while_open_and_silent_past_its_ttl() -> None:
    old = time.time() - 100
    assert ClaimState("dialled", "w", "l", "s", beat=old).stale(30)
    assert not ClaimState("dialled", "w", "l", "s").stale(30)
    assert not ClaimState("done", "w", "l", "s", beat=old).stale(30)
    assert not ClaimState("retry", "w", "l", "s", beat=old).stale(30)
    assert ClaimState.from_bytes(b'{"phase": "claimed", "extra": 1}').phase == "claimed"


def test_fleet_limits_wait_until_the_oldest_dial_in_the_window_ages_out() -> None:
    now = 10 * DAY_S
    assert FleetLimits().wait_s([now] * 50, now) == 0
    limits = FleetLimits(per_hour=2, per_day=3)
    assert limits.wait_s([now - 100], now) == 0
    assert limits.wait_s([now - 100, now - 50], now) == HOUR_S - 100
    assert limits.wait_s([now - 2 * HOUR_S, now - 100, now - 50], now) == DAY_S - 2 * HOUR_S
