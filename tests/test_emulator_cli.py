"""`cellcall sim`: the emulator as a standalone program that any client can dial."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from emulator_client import AtClient

from cellcall.emulator.sim import SimError, parse_faults


@pytest.mark.slow
def test_sim_prints_ports_plays_the_scenario_and_reports(tmp_path: Path) -> None:
    scenario = tmp_path / "beep.toml"
    scenario.write_text("answer_delay_s = 0.3\nhangup_after_s = 1.5\n[[lines]]\ntone = { hz = 700, ms = 400 }\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "cellcall", "sim", str(scenario), "--fault", "doubled_crlf"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        at_port = proc.stdout.readline().split(":", 1)[1].strip()
        audio_port = proc.stdout.readline().split(":", 1)[1].strip()
        assert at_port.endswith("-if02-port0") and audio_port.endswith("-if04-port0")
        at = AtClient(at_port)
        try:
            at.wait_for("^PB DONE$", 5)
            at.command("ATE0")
            at.command("ATD+14155550132;")
            at.wait_for("^VOICE CALL: BEGIN$", 5)
            at.wait_for("^NO CARRIER$", 10)
            assert b"\r\r\nNO CARRIER\r\r\n" in at.raw
        finally:
            at.close()
        out, err = proc.communicate(timeout=15)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "far end: beep, ended by far_end" in out
    assert "agent utterances heard: 0" in out


def test_sim_rejects_bad_scenarios_and_faults() -> None:
    run = subprocess.run([sys.executable, "-m", "cellcall", "sim", "dentst"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "did you mean 'dentist'" in run.stderr
    with pytest.raises(SimError, match="unknown fault 'vanish'"):
        parse_faults(["vanish=3"])
    with pytest.raises(SimError, match="expected a number"):
        parse_faults(["slow_ok_s=soon"])
    faults = parse_faults(["vanish_after_s=5", "doubled_crlf", "volte_16k=false"])
    assert (faults.vanish_after_s, faults.doubled_crlf, faults.volte_16k) == (5.0, True, False)
