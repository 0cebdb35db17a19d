"""The emulator's scripted far end over a real SIP call on loopback (cellcall/emulator/sip.py), no models.

A real SipLine dials a real second baresip user agent (its own process, cellcall/emulator/sip_peer.py)
straight at its loopback URI; the far end is the emulator's own FarEnd playing tones, so the test
checks the transport: the scenario's lines reach the agent over RTP, the agent's audio reaches the
far end's speech tracker (wait_for_agent, voice-to-voice on its clock), DTMF both ways, the far
end's hang-up as a BYE, busy as 486, and the peer process gone by PID afterwards.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from cellcall.cli.app import app
from cellcall.config import Settings
from cellcall.emulator.scenario import Scenario, ScenarioLine, Sound, Tone
from cellcall.emulator.sip import sip_loopback_line
from cellcall.emulator.sounds import tone_pcm
from cellcall.line import Line, LineEvent, LineEventKind

NUMBER = "+14155550100"
EXAMPLES = Path(__file__).parent.parent / "goals" / "examples"


def loud(frame: bytes) -> bool:
    data = np.frombuffer(frame, dtype="<i2").astype(np.float32)
    return bool(data.size) and float(np.sqrt(np.mean(data * data))) > 1000.0


def wait_event(line: Line, kinds: set[LineEventKind], timeout: float) -> LineEvent:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        event = line.next_event(0.2)
        if event is not None and event.kind in kinds:
            return event
    raise AssertionError(f"no {kinds} within {timeout} s")


def wait_tone(line: Line, timeout: float) -> float:
    """Read frames until a loud one arrives; its arrival time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        frame = line.read_frame(0.1)
        if frame is not None and loud(frame):
            return time.monotonic()
    raise AssertionError("the far end's tone never arrived over RTP")


def gone(pid: int | None) -> bool:
    try:
        os.kill(pid or 0, 0)
    except ProcessLookupError:
        return True
    return False


def test_scripted_far_end_over_sip_hears_the_agent_and_hangs_up_with_a_bye() -> None:
    scenario = Scenario(
        name="sip-tones",
        answer_delay_s=0.3,
        greeting=Sound(tone=Tone(440.0, 400)),
        lines=(ScenarioLine(sound=Sound(tone=Tone(660.0, 400)), dtmf="5", wait_for_agent=True),),
        hangup_when_done=True,
        max_wait_s=8.0,
        quiet_ms=400,
    )
    with sip_loopback_line(Settings(), scenario) as (line, peer):
        line.dial(NUMBER)
        wait_event(line, {LineEventKind.ANSWERED}, 10.0)
        wait_tone(line, 5.0)  # the greeting
        time.sleep(0.6)  # let it end, then the agent "speaks" a 600 ms tone
        line.write(tone_pcm(300.0, 600))
        time.sleep(0.9)  # RFC 4733: RTP carries the digit instead of audio, so not over the tone's tail
        line.send_dtmf("7")
        assert wait_event(line, {LineEventKind.DTMF}, 8.0).detail == "5"
        wait_tone(line, 5.0)  # the far end's second line: it waited for the agent, then spoke
        wait_event(line, {LineEventKind.REMOTE_HANGUP}, 10.0)
        assert peer.done.wait(5.0)
        metrics = peer.metrics
    assert metrics.ended_by == "far_end"
    assert metrics.heard_agent_utterances == 1
    assert len(metrics.turns) == 1 and not metrics.turns[0].cut  # the second line, played whole
    assert metrics.turns[0].agent_reply_at is None  # the agent did not answer it
    assert metrics.dtmf_heard == "7"
    gaps = [(round(u.start - (metrics.audio_at or 0), 2), u.gaps) for u in metrics.utterances]
    assert metrics.uplink_underruns == 0, gaps  # the agent's RTP reached the far end's clock in time
    assert gone(peer.pid)


def test_busy_scenario_over_sip_is_busy_at_the_agent_and_nothing_is_answered() -> None:
    scenario = Scenario(name="sip-busy", outcome="busy", answer_delay_s=0.3)
    with sip_loopback_line(Settings(), scenario) as (line, peer):
        line.dial(NUMBER)
        wait_event(line, {LineEventKind.BUSY}, 10.0)
    assert peer.metrics.answered_at is None and peer.metrics.ended_by == "far_end"
    assert gone(peer.pid)


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for name in [n for n in os.environ if n.startswith("CELLCALL_")]:
        monkeypatch.delenv(name)
    (tmp_path / "cellcall.toml").write_text('[paths]\noutbox = "out"\n')
    return tmp_path


def test_wrong_line_for_bench_calls_and_eval_exits_2_before_any_call(workdir: Path) -> None:
    bench = CliRunner().invoke(app, ["bench", "calls", "--scenarios", "dentist", "--line", "pots"])
    assert bench.exit_code == 2 and "--line must be one of emulator, sip" in bench.output
    ev = CliRunner().invoke(app, ["eval", str(EXAMPLES / "dentist.md"), "--scenario", "receptionist", "--line", "pots"])
    assert ev.exit_code == 2 and "--line must be one of emulator, sip" in ev.output
    assert not (workdir / "out").exists()


def test_inbound_persona_over_sip_is_refused_with_a_clear_error(workdir: Path) -> None:
    result = CliRunner().invoke(app, ["eval", str(EXAMPLES / "inbound.md"), "--scenario", "caller-message", "--line", "sip"])
    assert result.exit_code == 2 and "inbound personas run on the emulator only" in result.output
