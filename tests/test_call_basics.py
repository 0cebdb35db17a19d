"""place_call's decisions that need no audio: policy refusals, per-call overrides, exit codes, `cellcall run` errors."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cellcall.call import call_settings, exit_code, place_call
from cellcall.cli.app import app
from cellcall.config import Settings
from cellcall.goal import load_goal
from cellcall.observe import CallObserver
from cellcall.openclaw.notify import PushToOpenClaw
from cellcall.record import CallStatus

DENTIST = Path(__file__).resolve().parents[1] / "goals" / "examples" / "dentist.md"


class UntouchableLine:
    """A line that fails the test if anything is asked of it."""

    sample_rate = 8000

    def __getattr__(self, name: str):
        raise AssertionError(f"the line was touched: {name}")


class Seen(CallObserver):
    def __init__(self) -> None:
        self.folders: list[Path] = []
        self.states: list[str] = []

    def on_outbox(self, folder: Path) -> None:
        self.folders.append(folder)

    def on_state(self, state: str) -> None:
        self.states.append(state)


@pytest.mark.parametrize("number", ["+1911", "911", "+19005551234"])
def test_refused_numbers_never_touch_the_line_and_are_reported(tmp_path: Path, number: str) -> None:
    settings = Settings()
    settings.paths.outbox = str(tmp_path)
    goal = dataclasses.replace(load_goal(DENTIST), number=number)
    seen = Seen()
    result = place_call(goal, settings, UntouchableLine(), observer=seen)
    assert result.record.status is CallStatus.REFUSED and exit_code(result.record.status) == 5
    assert result.record.hangup_reason.startswith("policy: ")
    assert seen.folders == [result.folder] and seen.states == ["done"]
    report = result.report.read_text()
    assert "refused" in report
    assert json.loads((result.folder / "call.json").read_text())["status"] == "refused"
    assert not (tmp_path / ".dials.jsonl").exists()  # a refused call is not a dial attempt


def test_goal_overrides_apply_to_a_copy_and_never_to_policy() -> None:
    settings = Settings()
    goal = dataclasses.replace(
        load_goal(DENTIST), llm={"temperature": 0.1}, stt={"beam_size": 2}, tts={"length_scale": 0.9}, voice="/tmp/v.onnx"
    )
    goal.hangup.max_duration_s, goal.hangup.silence_timeout_s = 42.0, 7.0
    out = call_settings(goal, settings)
    assert (out.voice.max_duration_s, out.voice.silence_timeout_s) == (42.0, 7.0)
    assert (out.llm.temperature, out.stt.beam_size, out.tts.length_scale, out.tts.voice) == (0.1, 2, 0.9, "/tmp/v.onnx")
    assert out.policy == settings.policy and settings.voice.max_duration_s == 300.0 and settings.llm.temperature == 0.4


def test_every_status_has_its_own_exit_code() -> None:
    codes = [exit_code(status) for status in CallStatus]
    assert codes[0] == 0 and len(set(codes)) == len(codes)


def test_run_reports_goal_errors_and_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.md"
    bad.write_text("---\nnumber: '+14155550132'\npersonna: x\n---\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["run", str(bad), "--line", "emulator"])
    assert result.exit_code == 2
    assert "personna" in result.output


def test_run_with_an_unknown_scenario_is_a_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["run", str(DENTIST), "--line", "emulator", "--scenario", "dentst"], env={"CELLCALL_PATHS_OUTBOX": str(tmp_path)}
    )
    assert result.exit_code == 2
    assert "dentist" in result.output and "Traceback" not in result.output


def test_every_finished_call_is_queued_for_openclaw_refused_ones_too(tmp_path: Path) -> None:
    """With the push on (as `run` and `watch` pass it) and no gateway listening, the outcome waits in the
    on-disk queue; a call placed without the push (a benchmark, an eval) is never sent to OpenClaw."""
    settings = Settings()
    settings.paths.outbox = str(tmp_path)
    settings.openclaw.enabled = True
    settings.openclaw.url = "http://127.0.0.1:9"  # discard port: nothing listens
    goal = dataclasses.replace(load_goal(DENTIST), number="+1911")
    silent = place_call(goal, settings, UntouchableLine())
    assert not (tmp_path / ".openclaw-queue" / f"{silent.record.call_id}.json").exists()
    result = place_call(goal, settings, UntouchableLine(), observer=PushToOpenClaw(settings))
    queued = tmp_path / ".openclaw-queue" / f"{result.record.call_id}.json"
    assert queued.exists()
    assert json.loads(queued.read_text())["payload"]["status"] == "refused"
