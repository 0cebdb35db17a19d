"""Inbound calls while the runner is idle: answered after N rings, screened by caller lists, missed ones recorded.

RING/+CLIP come from the emulated modem through the real driver; the answer seam is line-only.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from runner_support import LineOnlyCalls, RunnerThread, wait_for

from cellcall.config import Settings
from cellcall.emulator.modem import ModemEmulator
from cellcall.emulator.scenario import Scenario
from cellcall.line.sim7600 import Sim7600Line
from cellcall.outbox import list_calls

CALLER = "+14155550199"
INBOUND = "---\ndirection: inbound\npersona: Alex, who answers for Sam\nobjective: Take a message\n---\n"
RINGING = Scenario(name="caller", outcome="answer", answer_delay_s=0.2, silent=True, ring_cycles=3, ring_interval_s=1.5)


def _setup(tmp_path: Path, inbound: bool = True) -> tuple[Settings, Path]:
    goals = tmp_path / "goals"
    goals.mkdir()
    if inbound:
        (goals / "inbound.md").write_text(INBOUND)
    settings = Settings()
    settings.paths.outbox = str(tmp_path / "outbox")
    return settings, goals


@contextlib.contextmanager
def _idle_runner(settings: Settings, goals: Path, calls: LineOnlyCalls) -> Iterator[tuple[ModemEmulator, RunnerThread]]:
    """The emulated modem and an idle runner on it, its line open."""
    with (
        ModemEmulator(scenario=RINGING) as emu,
        RunnerThread(settings, goals, lambda: Sim7600Line(emu.at_port, emu.audio_port), calls, calls.answer) as run,
    ):
        wait_for(lambda: bool(run.events("line-up")), 20, "the line to open")
        yield emu, run


def _ring_times(at_log: list[tuple[float, str, str]]) -> list[float]:
    return [t for t, d, line in at_log if d == "tx" and line in ("RING", "+CRING: VOICE")]


@pytest.mark.slow
def test_inbound_call_is_answered_after_two_rings_and_reported(tmp_path: Path) -> None:
    settings, goals = _setup(tmp_path)
    calls = LineOnlyCalls(tmp_path / "outbox", hold_s=0.5)
    with _idle_runner(settings, goals, calls) as (emu, run):
        emu.incoming_call(CALLER)
        wait_for(lambda: bool(run.events("inbound-done")), 30, "the inbound call to be answered and end")
        ata = [t for t, d, line in emu.at_log if d == "rx" and line.upper() == "ATA"]
    assert calls.answered == [CALLER]
    assert len(ata) == 1 and len([t for t in _ring_times(emu.at_log) if t < ata[0]]) == 2
    [record] = list_calls(tmp_path / "outbox")
    assert record.direction.value == "inbound" and record.number == CALLER and record.goal == "inbound"
    assert (goals / "inbound.md").exists()  # the inbound goal stays where it is
    assert not list((goals / "done").iterdir())


@pytest.mark.slow
def test_unanswered_and_rejected_callers_become_missed_call_records(tmp_path: Path) -> None:
    settings, goals = _setup(tmp_path)
    settings.inbound.deny_callers = ["+1415555019"]
    calls = LineOnlyCalls(tmp_path / "outbox")
    with _idle_runner(settings, goals, calls) as (emu, run):
        emu.incoming_call(CALLER)  # denied: hung up, recorded
        wait_for(lambda: bool(run.events("missed-call")), 20, "the rejected call recorded")
        time.sleep(1.0)
        settings.inbound.enabled = False  # now nobody answers: the modem reports MISSED_CALL
        emu.incoming_call("+447700900123")
        wait_for(lambda: len(run.events("missed-call")) == 2, 20, "the unanswered call recorded")
    assert calls.answered == []
    assert not any(line.upper() == "ATA" for _, d, line in emu.at_log if d == "rx")
    records = {r.number: r for r in list_calls(tmp_path / "outbox")}
    assert set(records) == {CALLER, "+447700900123"}
    assert all(r.status.value == "no-answer" and r.direction.value == "inbound" for r in records.values())
    assert records[CALLER].hangup_reason.startswith("rejected:")
    assert records["+447700900123"].hangup_reason.startswith("missed:")
    report = Path(records[CALLER].extra["folder"], "report.md").read_text()
    assert (
        "no-answer" in report and json.loads(Path(records[CALLER].extra["folder"], "call.json").read_text())["number"] == CALLER
    )


@pytest.mark.slow
def test_no_inbound_goal_means_no_answer_and_the_missed_call_is_committed(tmp_path: Path) -> None:
    settings, goals = _setup(tmp_path, inbound=False)
    settings.outbox.git = True
    calls = LineOnlyCalls(tmp_path / "outbox")
    with _idle_runner(settings, goals, calls) as (emu, run):
        emu.incoming_call(CALLER)
        wait_for(lambda: bool(run.events("missed-call")), 20, "the missed call recorded")
    assert calls.answered == []
    assert "no inbound goal" in run.events("incoming-not-answered")[0]
    wait_for(lambda: bool(run.events("git-commit")), 10, "the missed call's folder committed")
    log = subprocess.run(
        ["git", "-C", str(tmp_path / "outbox"), "log", "--name-only", "--format=%s"], capture_output=True, text=True, check=True
    ).stdout
    assert "cellcall: missed call from " + CALLER in log and "call.json" in log


@pytest.mark.slow
def test_a_missed_call_is_queued_for_openclaw_like_any_call(tmp_path: Path) -> None:
    """The runner's own reports reach OpenClaw too; with no gateway listening the push waits on disk."""
    settings, goals = _setup(tmp_path, inbound=False)
    settings.openclaw.enabled = True
    settings.openclaw.url = "http://127.0.0.1:9"  # discard port: nothing listens, the push must stay queued
    calls = LineOnlyCalls(tmp_path / "outbox")
    with _idle_runner(settings, goals, calls) as (emu, run):
        emu.incoming_call(CALLER)
        wait_for(lambda: bool(run.events("missed-call")), 20, "the missed call recorded")
    [record] = list_calls(tmp_path / "outbox")
    queued = tmp_path / "outbox" / ".openclaw-queue" / f"{record.call_id}.json"
    wait_for(queued.exists, 10, "the push queued on disk")
    assert json.loads(queued.read_text())["call_id"] == record.call_id
