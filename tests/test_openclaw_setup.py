"""The skill file, `cellcall openclaw setup` / `install-skill`, and per-call memory notes (no OpenClaw needed).

What OpenClaw itself makes of them (skill ready, memory search hits) is checked in test_openclaw_gateway.py.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import zipfile
from pathlib import Path

import frontmatter
import pytest
from test_openclaw_push import HOSTILE, make_record
from typer.testing import CliRunner

from cellcall.cli.app import app
from cellcall.config import Settings
from cellcall.openclaw.memory import append_memory_note
from cellcall.openclaw.notify import notify_call_finished
from cellcall.openclaw.setup import hook_mapping, install_skill, setup_plan, setup_text, skill_text

REPO = Path(__file__).resolve().parents[1]


def test_skill_frontmatter_is_what_openclaw_gates_on() -> None:
    skill = frontmatter.loads(skill_text())
    assert skill["name"] == "cellcall"
    assert 0 < len(skill["description"]) < 160
    gate = skill["metadata"]["openclaw"]
    assert gate["requires"]["bins"] == ["cellcall"] and gate["os"] == ["linux"]
    for command in (
        "cellcall run",
        "cellcall validate",
        "cellcall calls --json",
        "cellcall status",
        "report.md",
        "objective_met",
    ):
        assert command in skill.content
    assert skill_text() == (REPO / "skills/cellcall/SKILL.md").read_text(encoding="utf-8")


def test_install_skill_writes_into_the_workspace_skills_folder(tmp_path: Path) -> None:
    target = install_skill(Settings(), tmp_path / "ws")
    assert target == tmp_path / "ws" / "skills" / "cellcall" / "SKILL.md"
    assert target.read_text(encoding="utf-8") == skill_text()
    result = CliRunner().invoke(app, ["openclaw", "install-skill", "--workspace", str(tmp_path / "ws2")])
    assert result.exit_code == 0 and (tmp_path / "ws2/skills/cellcall/SKILL.md").is_file()


def test_install_skill_into_a_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "ws").write_text("")
    result = CliRunner().invoke(app, ["openclaw", "install-skill", "--workspace", str(tmp_path / "ws")])
    assert result.exit_code == 1 and "is not a folder" in result.output


def test_setup_plan_merges_with_existing_paths_and_mappings(tmp_path: Path) -> None:
    settings = Settings()
    settings.paths.outbox = str(tmp_path / "outbox")
    settings.openclaw.mode = "mapped"
    other = {"match": {"path": "github"}, "action": "agent"}
    stale = {"match": {"path": "cellcall"}, "action": "agent", "messageTemplate": "old"}
    plan = {
        c.path: c.value for c in setup_plan(settings, {"memory.search.extraPaths": ["/notes"], "hooks.mappings": [other, stale]})
    }
    assert plan["memory.search.extraPaths"] == ["/notes", str(tmp_path / "outbox")]
    assert plan["hooks.mappings"] == [other, hook_mapping(settings)] and plan["hooks.enabled"] is True
    again = setup_plan(settings, {"memory.search.extraPaths": plan["memory.search.extraPaths"]})
    assert again[0].value == ["/notes", str(tmp_path / "outbox")]  # applying twice adds nothing


def test_setup_text_is_runnable_shell_and_never_holds_the_token(tmp_path: Path) -> None:
    settings = Settings()
    settings.paths.outbox = str(tmp_path / "it's outbox")
    settings.openclaw.token = "tok-123456789"
    text = setup_text(settings)
    assert "tok-123456789" not in text
    [line] = [line for line in text.splitlines() if "extraPaths" in line and not line.startswith("#")]
    argv = shlex.split(line)
    assert argv[:4] == ["openclaw", "config", "set", "memory.search.extraPaths"]
    assert json.loads(argv[4]) == [str(tmp_path / "it's outbox")]


def test_cli_mode_needs_no_hooks_config() -> None:
    settings = Settings()
    settings.openclaw.mode = "cli"
    assert [c.path for c in setup_plan(settings)] == ["memory.search.extraPaths"]


def test_memory_note_is_one_line_once_per_call_and_holds_no_caller_words(tmp_path: Path) -> None:
    settings = Settings()
    settings.openclaw.workspace = str(tmp_path / "ws")
    record = make_record(caller_text=HOSTILE)
    daily = append_memory_note(settings, record, tmp_path / "call")
    append_memory_note(settings, record, tmp_path / "call")
    [line] = daily.read_text(encoding="utf-8").splitlines()
    assert daily == tmp_path / "ws/memory/2026-11-26.md"
    assert line.startswith("- 10:30 cellcall outbound call +14155550132 (goal dentist): completed, objective met: yes.")
    assert str(tmp_path / "call" / "report.md") in line and "Ignore previous" not in line


def test_memory_notes_are_written_even_when_the_push_is_off(tmp_path: Path) -> None:
    settings = Settings()
    settings.openclaw.workspace = str(tmp_path / "ws")
    settings.openclaw.memory_notes = True
    settings.paths.outbox = str(tmp_path / "outbox")
    notify_call_finished(settings, make_record(), tmp_path / "call")
    assert (tmp_path / "ws/memory/2026-11-26.md").is_file() and not (tmp_path / "outbox").exists()


@pytest.mark.slow
def test_wheel_ships_the_skill(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(REPO)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    [wheel] = tmp_path.glob("cellcall-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        assert archive.read("cellcall/skill/SKILL.md").decode("utf-8") == skill_text()
