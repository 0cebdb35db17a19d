"""The runner with the real answer_call (real models) on the emulated modem: an inbound call is
answered after two rings and reported with the caller's number. (Outbound place_call through the
runner is covered by test_runner_crash.py; the queue mechanics by test_runner_queue.py.)
"""

from __future__ import annotations

import io
import threading
from pathlib import Path

import pytest
from runner_support import RunnerThread, atd_count, join_new_threads, wait_for

from cellcall.config import Settings
from cellcall.emulator.modem import ModemEmulator
from cellcall.emulator.scenario import Scenario, ScenarioLine, Sound
from cellcall.line.sim7600 import Sim7600Line
from cellcall.outbox import list_calls
from cellcall.watch.eventlog import EventLog
from cellcall.watch.runner import default_call_fns, settle_engines

CALLER = "+14155550199"
CALLS_IN = Scenario(
    name="pat",
    outcome="answer",
    ring_cycles=6,
    ring_interval_s=2.0,
    hangup_when_done=True,
    hangup_after_s=12,
    lines=(ScenarioLine(sound=Sound(say="Hi, this is Pat. Please tell Sam that I called."), wait_for_agent=True),),
)
INBOUND = (
    "---\ndirection: inbound\npersona: Alex, Sam's assistant\nobjective: Find out who is calling and why, take a message\n---\n"
)


@pytest.mark.slow
def test_an_inbound_call_is_answered_after_two_rings_and_reported(tmp_path: Path) -> None:
    goals = tmp_path / "goals"
    goals.mkdir()
    (goals / "inbound.md").write_text(INBOUND)
    settings = Settings()
    settings.paths.outbox = str(tmp_path / "outbox")
    threads_before = set(threading.enumerate())
    place, answer, engines = default_call_fns(settings)
    settle_engines(engines, EventLog(io.StringIO()))  # models warm, as in a long-running watch
    with (
        ModemEmulator(scenario=CALLS_IN) as emu,
        RunnerThread(settings, goals, lambda: Sim7600Line(emu.at_port, emu.audio_port), place, answer) as run,
    ):
        wait_for(lambda: bool(run.events("line-up")), 20, "the line to open")
        emu.incoming_call(CALLER)
        wait_for(lambda: bool(run.events("inbound-done")), 120, "the inbound call answered and finished")
    join_new_threads(threads_before, 30.0)
    assert atd_count(emu.at_log) == 0
    [record] = list_calls(tmp_path / "outbox")
    assert (record.direction.value, record.number, record.goal) == ("inbound", CALLER, "inbound")
    assert record.status.value == "completed" and record.duration_s > 0
    ata = [t for t, d, line in emu.at_log if d == "rx" and line.upper() == "ATA"]
    rings = [t for t, d, line in emu.at_log if d == "tx" and line == "RING"]
    assert len(ata) == 1 and len([t for t in rings if t < ata[0]]) == settings.inbound.answer_after_rings
    report = (Path(record.extra["folder"]) / "report.md").read_text()
    assert "direction: inbound" in report and CALLER in report
    assert (goals / "inbound.md").exists() and not list((goals / "done").iterdir())
