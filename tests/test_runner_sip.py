"""`cellcall watch` on a SIP line: the registrar restarts under a running watch, and inbound calls still arrive.

kamailio (started here on loopback, stopped by PID) comes back refusing our password, then
accepting it again; the runner must say so in `cellcall status`, keep re-registering with its
backoff, and answer an inbound call from the far-end UA (tests/sip_farend.py) once registered.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from runner_support import LineOnlyCalls, RunnerThread
from sip_rig import USERS, FarEnd, Kamailio, free_udp_port

from cellcall.config import Settings
from cellcall.line.sip import SipLine, SipOptions
from cellcall.watch.runner import RunnerOptions
from cellcall.watch.status import collect

FAR = "+14155550132"

pytestmark = pytest.mark.slow  # real-time calls through real servers (seconds each)


def wait_for(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def line_state(settings: Settings, goals: Path) -> dict[str, Any]:
    runners = collect(settings, goals)["runners"]
    return runners[0].get("line", {}) if runners else {}


def test_registrar_restart_during_watch_is_shown_and_recovered(tmp_path: Path) -> None:
    goals = tmp_path / "goals"
    goals.mkdir()
    (goals / "inbound.md").write_text("---\ndirection: inbound\nobjective: take a message\n---\n## Context\nA test.\n")
    settings = Settings()
    settings.paths.outbox = str(tmp_path / "outbox")
    settings.inbound.answer_after_rings = 2
    server = Kamailio(tmp_path / "kamailio")
    server.workdir.mkdir()
    server.start()
    sip = SipOptions(
        domain=server.domain,
        username="alice",
        password=USERS["alice"],
        listen=f"127.0.0.1:{free_udp_port()}",
        rtp_ports=(36000, 36020),
        register_interval_s=2,
        ring_interval_s=0.5,
    )
    calls = LineOnlyCalls(Path(settings.paths.outbox), hold_s=0.5)
    options = RunnerOptions(rescan_s=0.5, reconnect_min_s=0.5, reconnect_max_s=2.0)
    far: FarEnd | None = None
    try:
        with RunnerThread(settings, goals, lambda: SipLine(dataclasses.replace(sip)), calls, calls.answer, options):
            wait_for(lambda: line_state(settings, goals).get("state") == "up", 15, "the line to come up")
            server.stop()
            server.users = {**USERS, "alice": "rotated"}  # the restarted registrar refuses us
            server.start()
            down = wait_for(
                lambda: (s := line_state(settings, goals)).get("state") == "down" and "403" in s.get("detail", "") and s,
                20,
                "status to show the lost registration",
            )
            assert "registration" in down["detail"] and USERS["alice"] not in down["detail"]
            refused_at = server.registers()
            time.sleep(3.0)
            assert server.registers() - refused_at <= 6  # backoff, not a storm
            server.stop()
            server.users = dict(USERS)  # back to normal: the next retry registers again
            server.start()
            wait_for(lambda: line_state(settings, goals).get("state") == "up", 15, "re-registration")
            far = FarEnd(
                server,
                "--listen",
                str(free_udp_port()),
                "--rtp",
                "36200",
                "--mode",
                "call",
                "--call",
                f"sip:alice@{server.domain}",
            )
            wait_for(lambda: calls.answered, 15, "the inbound call to be answered")
            assert calls.answered == [FAR]
            far.wait_for("established", 5)
    finally:
        if far is not None:
            far.stop()
        server.stop()
