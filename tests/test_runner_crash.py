"""`cellcall watch` as a real process on the emulated modem: SIGTERM mid-call, then kill -9 mid-call and restart.

The emulator runs in this test process; the runner subprocess reaches it only through the two pty
paths (`--line sim7600 --at-port P --audio-port P`), exactly as it would reach a real modem.
The calls are real place_call calls with the real models.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from runner_support import LineOnlyCalls, RunnerThread, atd_count, goal_text, wait_for

from cellcall.config import Settings
from cellcall.emulator.modem import ModemEmulator
from cellcall.emulator.scenario import Scenario
from cellcall.line.sim7600 import Sim7600Line
from cellcall.outbox import read_record

ANSWERS_THEN_SILENT = Scenario(name="answers", outcome="answer", answer_delay_s=0.5, silent=True, hangup_after_s=120)


def _start_runner(tmp_path: Path, emu: ModemEmulator) -> subprocess.Popen[str]:
    env = dict(os.environ, CELLCALL_PATHS_OUTBOX=str(tmp_path / "outbox"), PYTHONUNBUFFERED="1")
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cellcall",
            "watch",
            str(tmp_path / "goals"),
            "--line",
            "sim7600",
            "--at-port",
            emu.at_port,
            "--audio-port",
            emu.audio_port,
        ],
        cwd=tmp_path,
        env=env,
        stdout=(tmp_path / "runner.log").open("a"),
        stderr=subprocess.STDOUT,
        text=True,
    )


def _state(goals: Path) -> dict:
    states = list((goals / "running").glob("*.state.json"))
    return json.loads(states[0].read_text()) if states else {}


def _in_call(goals: Path, emu: ModemEmulator, calls_before: int) -> bool:
    state = _state(goals)
    return atd_count(emu.at_log) > calls_before and state.get("phase") == "calling" and bool(state.get("outbox"))


@pytest.mark.slow
def test_sigterm_hangs_up_and_reports_then_kill_9_is_reported_interrupted_and_never_redialled(tmp_path: Path) -> None:
    goals = tmp_path / "goals"
    goals.mkdir()
    with ModemEmulator(scenario=ANSWERS_THEN_SILENT) as emu:
        # 1. SIGTERM during a call: hang up, reports written, goal archived, exit 0.
        runner = _start_runner(tmp_path, emu)
        (goals / "first.md").write_text(goal_text(objective="first call"))
        wait_for(lambda: _in_call(goals, emu, 0), 120, "the first call to be under way")
        time.sleep(1.0)
        runner.send_signal(signal.SIGTERM)
        assert runner.wait(timeout=120) == 0, (tmp_path / "runner.log").read_text()[-3000:]
        first = json.loads((goals / "done" / "first.result.json").read_text())
        assert first["status"] == "interrupted"
        assert read_record(Path(first["outbox"]) / "call.json").status.value == "interrupted"
        assert any(line.upper().startswith(("AT+CHUP", "ATH")) for _, d, line in emu.at_log if d == "rx")

        # 2. kill -9 during a call: the goal stays claimed in running/ with its outbox folder.
        wait_for(emu.done.is_set, 10, "the emulated call to end")
        runner = _start_runner(tmp_path, emu)
        (goals / "second.md").write_text(goal_text(objective="second call"))
        wait_for(lambda: _in_call(goals, emu, 1), 120, "the second call to be under way")
        time.sleep(1.0)
        state = _state(goals)
        runner.send_signal(signal.SIGKILL)
        runner.wait(timeout=30)
        assert [p.name for p in (goals / "running").glob("*.md")] and atd_count(emu.at_log) == 2

    # 3. restart (a fresh modem, as after a reboot): the claim is reported interrupted, never redialled.
    with ModemEmulator(scenario=ANSWERS_THEN_SILENT) as emu2:
        settings = Settings()
        settings.paths.outbox = str(tmp_path / "outbox")
        calls = LineOnlyCalls(tmp_path / "outbox")
        with RunnerThread(settings, goals, lambda: Sim7600Line(emu2.at_port, emu2.audio_port), calls) as run:
            wait_for(lambda: (goals / "done" / "second.result.json").exists(), 30, "the interrupted call archived")
            time.sleep(2.0)  # a wrong redial would happen now
        assert calls.calls == [] and atd_count(emu2.at_log) == 0
    second = json.loads((goals / "done" / "second.result.json").read_text())
    assert second["status"] == "interrupted" and second["outbox"] == state["outbox"]
    assert "not redialled" in second["note"]
    record = read_record(Path(second["outbox"]) / "call.json")
    assert record.status.value == "interrupted" and "stopped during the call" in (record.error or "")
    assert "status: interrupted" in (Path(second["outbox"]) / "report.md").read_text()
    assert not list((goals / "running").iterdir())
    assert run.events("recovered-interrupted")
