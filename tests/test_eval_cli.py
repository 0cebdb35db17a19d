"""`cellcall eval` and `bench conversation` refuse bad input with exit 2 and a clear message, before any call."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cellcall.cli.app import app

EXAMPLES = Path(__file__).parent.parent / "goals" / "examples"
runner = CliRunner()


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for name in [n for n in os.environ if n.startswith("CELLCALL_")]:
        monkeypatch.delenv(name)
    (tmp_path / "cellcall.toml").write_text('[paths]\noutbox = "out"\n')
    return tmp_path


def test_persona_file_error_names_its_line_and_exits_2(workdir: Path) -> None:
    persona = workdir / "mine.toml"
    persona.write_text('start = "hi"\n\n[states.hi]\nsay = "Hello?"\n[[states.hi.on]]\nmatch = "yes"\ngoto = "bye"\n')
    result = runner.invoke(app, ["eval", str(EXAMPLES / "dentist.md"), "--scenario", str(persona)])
    assert result.exit_code == 2
    assert f"{persona.resolve()}:7: states.hi.on[0].goto: no state 'bye'" in result.output
    assert not (workdir / "out").exists()  # nothing was dialled, no call folder


def test_persona_for_the_other_direction_exits_2(workdir: Path) -> None:
    result = runner.invoke(app, ["eval", str(EXAMPLES / "inbound.md"), "--scenario", "receptionist"])
    assert result.exit_code == 2 and "is for outbound calls but goal 'inbound' is inbound" in result.output


def test_unknown_persona_and_bad_goal_exit_2(workdir: Path) -> None:
    unknown = runner.invoke(app, ["eval", str(EXAMPLES / "dentist.md"), "--scenario", "receptionst"])
    assert unknown.exit_code == 2 and "did you mean 'receptionist'" in unknown.output
    (workdir / "bad.md").write_text("---\nnumber: 12\n---\n")
    bad = runner.invoke(app, ["eval", str(workdir / "bad.md"), "--scenario", "receptionist"])
    assert bad.exit_code == 2 and "bad.md" in bad.output


def test_bench_conversation_checks_every_persona_first(workdir: Path) -> None:
    result = runner.invoke(app, ["bench", "conversation", "--personas", "receptionist,nobody"])
    assert result.exit_code == 2 and "no built-in persona 'nobody'" in result.output
    assert not Path("docs/benchmarks.md").exists()
