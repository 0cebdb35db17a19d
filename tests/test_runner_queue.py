"""The watch runner on the emulated modem, with real filesystem events and a real ATD per call.

Calls go through the line-only seams (tests/runner_support.py): real line, real outbox, no models.
"""

from __future__ import annotations

import json
import os
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from runner_support import LineOnlyCalls, RunnerThread, atd_count, goal_text, wait_for

from cellcall.call import place_call
from cellcall.config import Settings
from cellcall.emulator.modem import Faults, ModemEmulator
from cellcall.emulator.scenario import Scenario
from cellcall.line.sim7600 import Sim7600Line
from cellcall.policy import DialLedger

BUSY = Scenario(name="quick-busy", outcome="busy", answer_delay_s=0.2)


def _settings(tmp_path: Path) -> Settings:
    settings = Settings()
    settings.paths.outbox = str(tmp_path / "outbox")
    settings.policy.max_calls_per_hour = 1000
    settings.policy.max_calls_per_day = 1000
    return settings


def _write_slowly(path: Path, text: str, pieces: int, pause_s: float) -> None:
    step = -(-len(text) // pieces)
    with path.open("w") as fh:
        for start in range(0, len(text), step):
            fh.write(text[start : start + step])
            fh.flush()
            time.sleep(pause_s)


def _md(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("*.md") if not p.name.endswith(".error.md"))


@pytest.mark.slow
def test_twenty_goals_dropped_at_once(tmp_path: Path) -> None:
    goals = tmp_path / "goals"
    goals.mkdir()
    settings = _settings(tmp_path)
    seam = LineOnlyCalls(tmp_path / "outbox")
    with (
        ModemEmulator(scenario=BUSY) as emu,
        RunnerThread(settings, goals, lambda: Sim7600Line(emu.at_port, emu.audio_port), seam) as run,
    ):
        valid = {f"call{i:02d}": goal_text(objective=f"Ask about order {i}") for i in range(12)}
        for name, text in valid.items():
            (goals / f"{name}.md").write_text(text)
        for i in range(3):  # same content under another name: dialled once only
            (goals / f"copy-of-call0{i}.md").write_text(valid[f"call0{i}"])
        (goals / "no-frontmatter.md").write_text("Call the dentist please\n")
        (goals / "typo.md").write_text(goal_text(extra="objectiv: typo\n"))
        (goals / "bad-number.md").write_text(goal_text(number="12"))
        for junk in (".call00.md.swp", "call00.md~", "draft.tmp", ".hidden.md"):
            (goals / junk).write_text(valid["call00"])
        outside = tmp_path / "staging.md"
        outside.write_text(goal_text(objective="Moved in from elsewhere"))
        os.rename(outside, goals / "moved-in.md")
        writers = [
            threading.Thread(target=_write_slowly, args=(goals / f"slow{i}.md", goal_text(objective=f"Slow {i}"), 6, 0.3))
            for i in range(2)
        ]
        for writer in writers:
            writer.start()
        for writer in writers:
            writer.join()
        expected_calls = sorted([*valid, "moved-in", "slow0", "slow1"])
        wait_for(
            lambda: len(_md(goals / "done")) == len(expected_calls) + 3 and len(_md(goals / "failed")) == 3,
            90,
            "every goal archived or failed",
        )
        time.sleep(1.0)  # any late double dial would show now
        dialled = atd_count(emu.at_log)

    assert sorted(seam.calls) == expected_calls
    assert dialled == len(expected_calls)
    assert _md(goals / "failed") == ["bad-number.md", "no-frontmatter.md", "typo.md"]
    assert "frontmatter" in (goals / "failed" / "no-frontmatter.error.md").read_text()
    assert 'did you mean "objective"' in (goals / "failed" / "typo.error.md").read_text()
    assert "number" in (goals / "failed" / "bad-number.error.md").read_text()
    for i in range(3):
        result = json.loads((goals / "done" / f"copy-of-call0{i}.result.json").read_text())
        assert result["status"] == "duplicate" and result["duplicate_of"] == f"call0{i}.md"
    for name in expected_calls:
        result = json.loads((goals / "done" / f"{name}.result.json").read_text())
        assert result["status"] == "busy" and Path(result["outbox"], "report.md").is_file()
    assert sorted(p.name for p in goals.iterdir() if p.is_file()) == [".call00.md.swp", ".hidden.md", "call00.md~", "draft.tmp"]
    assert not list((goals / "running").iterdir())
    assert len(run.events("dialling")) == len(expected_calls)


@pytest.mark.slow
def test_two_runners_on_one_folder_never_dial_a_goal_twice(tmp_path: Path) -> None:
    goals = tmp_path / "goals"
    goals.mkdir()
    settings = _settings(tmp_path)
    seams = [LineOnlyCalls(tmp_path / "outbox"), LineOnlyCalls(tmp_path / "outbox")]
    with ModemEmulator(scenario=BUSY) as emu_a, ModemEmulator(scenario=BUSY) as emu_b:
        lines = [lambda: Sim7600Line(emu_a.at_port, emu_a.audio_port), lambda: Sim7600Line(emu_b.at_port, emu_b.audio_port)]
        with RunnerThread(settings, goals, lines[0], seams[0]), RunnerThread(settings, goals, lines[1], seams[1]):
            names = [f"goal{i:02d}" for i in range(16)]
            for name in names:
                (goals / f"{name}.md").write_text(goal_text(objective=f"Objective {name}"))
            wait_for(lambda: len(_md(goals / "done")) == len(names), 90, "all goals archived")
            time.sleep(1.0)
        total = atd_count(emu_a.at_log) + atd_count(emu_b.at_log)
    assert sorted(seams[0].calls + seams[1].calls) == names
    assert total == len(names)
    assert seams[0].calls and seams[1].calls, "both runners should have taken some goals"


@pytest.mark.slow
def test_busy_is_retried_after_the_backoff_then_done(tmp_path: Path) -> None:
    goals = tmp_path / "goals"
    goals.mkdir()
    seam = LineOnlyCalls(tmp_path / "outbox")
    with (
        ModemEmulator(scenario=BUSY) as emu,
        RunnerThread(_settings(tmp_path), goals, lambda: Sim7600Line(emu.at_port, emu.audio_port), seam) as run,
    ):
        (goals / "retry.md").write_text(goal_text(extra="retry: {attempts: 2, backoff_s: 1.5, on: [busy]}\n"))
        wait_for(lambda: atd_count(emu.at_log) == 1 and list((goals / "waiting").glob("*.md")), 30, "first call, then waiting")
        wait_json = json.loads(next((goals / "waiting").glob("*.wait.json")).read_text())
        assert wait_json["reason"] == "busy" and wait_json["attempt"] == 1
        first_at = next(t for t, d, line in emu.at_log if d == "rx" and line.startswith("ATD"))
        emu.scenario = Scenario(name="answers", outcome="answer", answer_delay_s=0.2, silent=True)
        wait_for(lambda: (goals / "done" / "retry.result.json").exists(), 30, "the retry archived")
        second_at = [t for t, d, line in emu.at_log if d == "rx" and line.startswith("ATD")][1]
    result = json.loads((goals / "done" / "retry.result.json").read_text())
    assert [a["status"] for a in result["attempts"]] == ["busy", "completed"]
    assert result["status"] == "completed"
    assert second_at - first_at >= 1.5
    assert atd_count(emu.at_log) == 2
    assert len(run.events("retry-scheduled")) == 1


@pytest.mark.slow
def test_line_lost_mid_call_fails_that_call_reconnects_and_resumes(tmp_path: Path) -> None:
    goals = tmp_path / "goals"
    goals.mkdir()
    seam = LineOnlyCalls(tmp_path / "outbox", hold_s=3.0)  # the modem vanishes 0.8 s into the first call
    answered = Scenario(name="answers", outcome="answer", answer_delay_s=0.2, silent=True)
    with (
        ModemEmulator(scenario=answered, faults=Faults(vanish_after_s=0.8, reenumerate_s=1.5)) as emu,
        RunnerThread(_settings(tmp_path), goals, lambda: Sim7600Line(emu.at_port, emu.audio_port), seam) as run,
    ):
        (goals / "first.md").write_text(goal_text(objective="first"))
        wait_for(lambda: bool(run.events("line-lost")), 30, "the modem to vanish mid-call")
        emu.faults = Faults()  # the next call's modem behaves
        (goals / "second.md").write_text(goal_text(objective="second"))  # queued while the line is lost
        wait_for(lambda: (goals / "done" / "second.result.json").exists(), 60, "the second call after reconnecting")
    first = json.loads((goals / "done" / "first.result.json").read_text())
    second = json.loads((goals / "done" / "second.result.json").read_text())
    assert first["status"] == "failed"
    assert json.loads(Path(first["outbox"], "call.json").read_text())["status"] == "failed"
    assert second["status"] == "completed"
    assert run.events("line-lost") and len(run.events("line-up")) >= 2


@pytest.mark.slow
def test_rate_limit_defers_and_emergency_numbers_are_refused_never_dialled(tmp_path: Path) -> None:
    goals = tmp_path / "goals"
    goals.mkdir()
    settings = _settings(tmp_path)
    settings.policy.max_calls_per_hour = 2
    ledger = DialLedger(tmp_path / "outbox" / ".dials.jsonl")
    for _ in range(2):
        ledger.record("+14155550100", datetime.now(UTC))

    def place(goal, line, observer, stop):  # the real place_call: its policy check refuses before any model loads
        return place_call(goal, settings, line, stop=stop, observer=observer)

    with (
        ModemEmulator(scenario=BUSY) as emu,
        RunnerThread(settings, goals, lambda: Sim7600Line(emu.at_port, emu.audio_port), place) as run,
    ):
        (goals / "held.md").write_text(goal_text(objective="held by the rate limit"))
        wait_for(lambda: bool(run.events("dialling-held")), 20, "the rate limit to hold the goal")
        time.sleep(1.5)
        assert (goals / "held.md").exists() and atd_count(emu.at_log) == 0  # deferred, not refused
        settings.policy.max_calls_per_hour = 100
        (goals / "held.md").unlink()
        (goals / "emergency.md").write_text(goal_text(number="911", objective="never dialled"))
        wait_for(lambda: (goals / "done" / "emergency.result.json").exists(), 20, "the refused goal archived")
    result = json.loads((goals / "done" / "emergency.result.json").read_text())
    assert result["status"] == "refused" and "emergency" in Path(result["outbox"], "report.md").read_text()
    assert atd_count(emu.at_log) == 0
    assert "max_calls_per_hour" in run.events("dialling-held")[0]
