"""validate, new, config, calls and show through typer's CliRunner, with their exit codes."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cellcall.cli.app import app
from cellcall.goal import parse_goal
from cellcall.outbox import CallOutbox
from cellcall.record import CallRecord, CallStatus, Direction, ObjectiveMet, Speaker, Turn

DATA = Path(__file__).parent / "data" / "goals"
EXAMPLES = Path(__file__).parent.parent / "goals" / "examples"
runner = CliRunner()


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory with its own cellcall.toml, so no user config leaks in."""
    monkeypatch.chdir(tmp_path)
    for name in [n for n in os.environ if n.startswith("CELLCALL_")]:
        monkeypatch.delenv(name)
    (tmp_path / "cellcall.toml").write_text('[paths]\noutbox = "out"\n[policy]\ndefault_country = "GB"\n')
    return tmp_path


def test_validate_examples_exit_0(workdir: Path) -> None:
    result = runner.invoke(app, ["validate", str(EXAMPLES / "dentist.md"), str(EXAMPLES / "inbound.md")])
    assert result.exit_code == 0, result.output
    assert "ok  " in result.output and "2 valid, 0 invalid" in result.output


def test_validate_folder_of_broken_goals_lists_each_and_exits_1(workdir: Path) -> None:
    result = runner.invoke(app, ["validate", str(DATA / "invalid")])
    assert result.exit_code == 1
    broken = sorted((DATA / "invalid").glob("*.md"))
    for path in broken:
        assert f"{path}:" in result.output, path.name
    assert f"0 valid, {len(broken)} invalid" in result.output
    assert f"{DATA / 'invalid' / 'unknown_keys.md'}:2: unknown key 'numbr' (did you mean \"number\"?)" in result.output


def test_validate_json(workdir: Path) -> None:
    result = runner.invoke(
        app, ["validate", "--json", str(EXAMPLES / "dentist.md"), str(DATA / "invalid" / "bad_number.md"), "absent.md"]
    )
    assert result.exit_code == 1
    rows = {Path(row["path"]).name: row for row in json.loads(result.output)}
    assert rows["dentist.md"]["valid"] and rows["dentist.md"]["number"] == "+14155550132" and rows["dentist.md"]["problems"] == []
    assert rows["bad_number.md"]["problems"][0]["line"] == 2 and rows["bad_number.md"]["problems"][0]["key"] == "number"
    assert not rows["absent.md"]["valid"] and "cannot read" in rows["absent.md"]["problems"][0]["message"]


def test_validate_uses_the_configured_default_country(workdir: Path) -> None:
    (workdir / "london.md").write_text('---\nnumber: "020 7946 0018"\nobjective: Ask\n---\n')
    result = runner.invoke(app, ["validate", "london.md"])
    assert result.exit_code == 0 and "+442079460018" in result.output


def test_validate_empty_folder_is_a_failure(workdir: Path) -> None:
    (workdir / "empty").mkdir()
    result = runner.invoke(app, ["validate", "empty"])
    assert result.exit_code == 1 and "no goal files found" in result.output


def test_new_prints_a_goal_that_validates(workdir: Path) -> None:
    result = runner.invoke(
        app,
        [
            "new",
            "Dentist Friday",
            "--number",
            "+1 415 555 0132",
            "--objective",
            'Move "the" cleaning: any Friday',
            "--persona",
            "Alex",
        ],
    )
    assert result.exit_code == 0, result.output
    goal = parse_goal(result.output, "new")
    assert (goal.id, goal.number, goal.objective, goal.persona) == (
        "dentist-friday",
        "+14155550132",
        'Move "the" cleaning: any Friday',
        "Alex",
    )
    (workdir / "dentist.md").write_text(result.output)
    assert runner.invoke(app, ["validate", "dentist.md"]).exit_code == 0


def test_new_without_options_still_validates(workdir: Path) -> None:
    result = runner.invoke(app, ["new"])
    assert result.exit_code == 0
    assert parse_goal(result.output, "new").number == "+14155550100"


def test_new_with_a_bad_number_exits_2(workdir: Path) -> None:
    result = runner.invoke(app, ["new", "x", "--number", "call me"])
    assert result.exit_code == 2 and "is not a phone number" in result.output


def test_config_shows_sources_and_redacts_secrets(workdir: Path) -> None:
    env = {"CELLCALL_OPENCLAW_TOKEN": "s3cret-token-value", "CELLCALL_LLM_TEMPERATURE": "0.2"}
    result = runner.invoke(app, ["config", "--json"], env=env)
    assert result.exit_code == 0, result.output
    rows = {row["key"]: row for row in json.loads(result.output)}
    assert rows["openclaw.token"]["value"] == "***" and rows["openclaw.token"]["source"] == "env:CELLCALL_OPENCLAW_TOKEN"
    assert rows["llm.temperature"] == {"key": "llm.temperature", "value": 0.2, "source": "env:CELLCALL_LLM_TEMPERATURE"}
    assert rows["paths.outbox"]["value"] == "out" and rows["paths.outbox"]["source"].startswith("file:")
    assert rows["line.kind"]["source"] == "default"
    table = runner.invoke(app, ["config"], env=env)
    assert table.exit_code == 0 and "s3cret" not in table.output and "policy.default_country" in table.output


def test_config_error_exits_2(workdir: Path) -> None:
    (workdir / "cellcall.toml").write_text("[polcy]\nx = 1\n")
    result = runner.invoke(app, ["config"])
    assert result.exit_code == 2 and 'did you mean "policy"' in result.output


def _finished_call(root: Path, call_id: str, goal: str, hour: int) -> Path:
    record = CallRecord(call_id=call_id, goal=goal, number="+14155550132", direction=Direction.OUTBOUND, status=CallStatus.COMPLETED,
                        started=datetime(2026, 11, 24, hour, 0, tzinfo=UTC), objective_met=ObjectiveMet.YES, duration_s=61.0,
                        summary="Moved to Friday.", turns=[Turn(1, Speaker.AGENT, "Hi", 0.1), Turn(2, Speaker.CALLER, "Hello", 1.0)])  # fmt: skip
    box = CallOutbox.create(root, record)
    box.finalize(record)
    return box.path


def test_calls_and_show(workdir: Path) -> None:
    _finished_call(workdir / "out", "c-older", "dentist", 9)
    newer = _finished_call(workdir / "out", "c-newer", "[bold]plumber[/bold]", 10)
    result = runner.invoke(app, ["calls", "--json"])
    assert result.exit_code == 0
    rows = json.loads(result.output)
    assert [row["call_id"] for row in rows] == ["c-newer", "c-older"]
    assert (
        rows[0]["turns"] == 2
        and rows[0]["status"] == "completed"
        and rows[0]["folder"] == str(Path("out") / newer.relative_to(workdir / "out"))
    )
    table = runner.invoke(app, ["calls", "-n", "1"], env={"COLUMNS": "200"})
    assert table.exit_code == 0 and "[bold]plumber[/bold]" in table.output and "c-older" not in table.output
    shown = runner.invoke(app, ["show", "c-newer"])
    assert shown.exit_code == 0 and shown.output == (newer / "report.md").read_text()
    assert runner.invoke(app, ["show", str(newer)]).output == shown.output
    missing = runner.invoke(app, ["show", "c-nothing"])
    assert missing.exit_code == 1 and "no call matches 'c-nothing'" in missing.output
    ambiguous = runner.invoke(app, ["show", "c-"])
    assert ambiguous.exit_code == 1 and "matches 2 calls" in ambiguous.output


def test_show_a_call_without_report(workdir: Path) -> None:
    record = CallRecord(
        "c-live", "dentist", "+14155550132", Direction.OUTBOUND, CallStatus.COMPLETED, datetime(2026, 11, 24, tzinfo=UTC)
    )
    CallOutbox.create(workdir / "out", record)
    result = runner.invoke(app, ["show", "c-live"])
    assert result.exit_code == 1 and "no report.md yet" in result.output


def test_calls_on_an_empty_outbox(workdir: Path) -> None:
    result = runner.invoke(app, ["calls"])
    assert result.exit_code == 0 and "no calls in the outbox yet" in result.output
