"""The systemd unit runs `cellcall watch` the way the runner expects to be stopped and restarted."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

from cellcall.config import PrioritySettings

UNIT = Path(__file__).resolve().parents[1] / "deploy" / "cellcall.service"


def _unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # systemd keys are case-sensitive
    parser.read_string(UNIT.read_text(encoding="utf-8"))
    return parser


def test_unit_runs_watch_and_gives_sigterm_time_to_finish_a_call() -> None:
    unit = _unit()
    service = unit["Service"]
    assert service["ExecStart"].endswith("/bin/cellcall watch")
    assert service["KillSignal"] == "SIGTERM" and int(service["TimeoutStopSec"]) >= 60
    assert service["Restart"] == "on-failure" and "dialout" in service["SupplementaryGroups"]
    assert service["WorkingDirectory"] in service["ReadWritePaths"]
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def test_unit_lets_calls_run_ahead_of_other_work() -> None:
    """The default [priority] call_nice is what the service starts at, and may come back to."""
    service = _unit()["Service"]
    wanted = PrioritySettings().call_nice
    assert int(service["Nice"]) == wanted and int(service["LimitNICE"]) == wanted


def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    """systemd-analyze verify, with ExecStart pointed at this venv's cellcall (the real path is /opt)."""
    analyze = shutil.which("systemd-analyze")
    text = UNIT.read_text(encoding="utf-8").replace(
        "/opt/cellcall/.venv/bin/cellcall", str(Path(sys.executable).with_name("cellcall"))
    )
    unit = tmp_path / "cellcall.service"
    unit.write_text(text)
    if analyze is None:  # no systemd here: at least every line is a section, a comment or key=value
        assert all(not line or line[0] in "#[" or "=" in line for line in text.splitlines())
        return
    done = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True)
    problems = [line for line in done.stderr.splitlines() if "cellcall.service" in line]
    assert not problems, problems
