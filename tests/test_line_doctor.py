"""`cellcall doctor`'s line part: status from the emulator, from a recorded modem, and clear failures."""

from __future__ import annotations

from scripted_modem import scripted_line
from typer.testing import CliRunner

from cellcall.cli.app import app
from cellcall.cli.doctor import line_report, priority_line, run_doctor
from cellcall.config import Settings
from cellcall.priority import Grant


def test_doctor_on_the_emulator_reports_modem_sim_network() -> None:
    settings = Settings()
    settings.line.kind = "emulator"
    settings.line.scenario = "busy"  # a far end that never speaks: no voice model to load
    text, ok = run_doctor(settings, engines=False)
    assert ok, text
    assert "SIMCOM_SIM7600G-H" in text and "SIM      READY" in text
    assert "registered, operator T-Mobile, signal -71 dBm" in text and "if02-port0" in text
    assert "priority ok: the call's threads run at nice -10" in text or "priority WARNING" in text


def test_doctor_says_how_to_let_calls_run_ahead_when_priority_is_refused() -> None:
    refused = Grant(
        wanted=-10, nice=0, why="Operation not permitted (raising priority needs root, CAP_SYS_NICE or LimitNICE=-10)"
    )
    line = priority_line(refused)
    assert line.startswith("priority WARNING: the call's threads run at nice 0, not -10") and "CAP_SYS_NICE" in line
    assert priority_line(Grant(wanted=-10, nice=-10)) == "priority ok: the call's threads run at nice -10"


def test_status_of_a_recorded_modem_without_service() -> None:
    with scripted_line("open_and_status_no_service.txt") as (line, modem):
        line.open()
        status = line.status()
    assert not modem.mismatches and modem.done.is_set()
    assert (status.ready, status.registered, status.operator, status.signal_dbm) == (False, False, None, None)
    assert status.sim == "READY" and "not registered" in status.detail
    report = "\n".join(line_report(status, "sim7600"))
    assert "NOT READY" in report and "NOT registered, operator ?, signal ?" in report


def test_doctor_cli_fails_clearly_without_a_modem(tmp_path) -> None:
    missing = str(tmp_path / "ttyUSB2")
    result = CliRunner().invoke(
        app, ["doctor", "--line", "sim7600", "--at-port", missing, "--audio-port", missing, "--no-engines"]
    )
    assert result.exit_code == 1
    assert "NOT READY" in result.output and f"cannot open the AT port {missing}" in result.output
