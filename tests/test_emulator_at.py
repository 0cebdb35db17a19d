"""The emulated SIM7600G-H's AT port, driven over a real pyserial connection to its pty."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator

import pytest
import serial
from emulator_client import AtClient

from cellcall.emulator.modem import Faults, ModemEmulator
from cellcall.emulator.scenario import Scenario

NUMBER = "+14155550132"


@pytest.fixture
def modem(request: pytest.FixtureRequest) -> Iterator[ModemEmulator]:
    faults = getattr(request, "param", None) or Faults()
    with ModemEmulator(Scenario(answer_delay_s=0.3), faults=faults) as emulator:
        yield emulator


@pytest.fixture
def at(modem: ModemEmulator) -> Iterator[AtClient]:
    client = AtClient(modem.at_port)
    client.wait_for("^PB DONE$", 3)  # the boot URCs, sent once the port is open, as a booting modem does
    yield client
    client.close()


def connect(at: AtClient) -> None:
    """Echo off, dial, wait for the answer."""
    at.command("ATE0")
    assert at.command(f"ATD{NUMBER};")[-1] == "OK"
    at.wait_for("^VOICE CALL: BEGIN$", 3)


def enable_pcm(at: AtClient) -> str:
    """AT+CPCMREG=1 (must say OK), then what AT+CPCMREG? reads once acceptance had time to happen."""
    assert at.command("AT+CPCMREG=1") == ["OK"]
    time.sleep(0.6)
    reply = at.command("AT+CPCMREG?")
    assert reply[-1] == "OK"
    return reply[0]


def test_echo_until_ate0_and_boot_urcs_after_open(at: AtClient) -> None:
    assert bytes(at.raw) == b"\r\nRDY\r\n\r\n+CPIN: READY\r\n\r\nSMS DONE\r\n\r\nPB DONE\r\n"
    assert at.command("AT") == ["AT", "OK"]
    assert at.command("ATE0") == ["ATE0", "OK"]
    assert at.command("AT") == ["OK"]


def test_identity_and_status_queries(at: AtClient) -> None:
    at.command("ATE0")
    assert at.command("ATI")[:2] == ["Manufacturer: SIMCOM INCORPORATED", "Model: SIMCOM_SIM7600G-H"]
    assert at.command("AT+CSQ") == ["+CSQ: 21,99", "OK"]
    assert at.command("AT+CREG?") == ["+CREG: 0,1", "OK"]
    assert at.command("AT+CEREG?") == ["+CEREG: 0,1", "OK"]
    assert at.command("AT+COPS?") == ['+COPS: 0,0,"T-Mobile",7', "OK"]
    assert at.command("AT+CPIN?") == ["+CPIN: READY", "OK"]
    assert at.command("AT+CLIP=1;+CVHU=0") == ["OK"]
    assert at.command("AT+CVHU?") == ["+CVHU: 0", "OK"]


def test_unknown_commands_error_plain_or_verbose(at: AtClient) -> None:
    at.command("ATE0")
    assert at.command("AT+NOSUCH") == ["ERROR"]
    assert at.command("AT+CMEE=2") == ["OK"]
    assert at.command("AT+NOSUCH") == ["+CME ERROR: operation not supported"]


def test_cpcmreg_refused_outside_a_call_and_right_after_begin(modem: ModemEmulator, at: AtClient) -> None:
    at.command("ATE0")
    assert at.command("AT+CPCMREG=1") == ["ERROR"]
    at.send("ATD+14155550132;")
    at.wait_for("^VOICE CALL: BEGIN$", 3)
    # A second call attempt while one is up is refused.
    assert at.command("ATD+14155550100;")[-1] == "ERROR"
    at.command("AT+CHUP")
    modem.incoming_call(NUMBER)
    at.wait_for("^RING$", 2)
    at.send(b"ATA\rAT+CPCMREG=1\r")  # both reach the modem at once: CPCMREG lands within 0.1 s of BEGIN
    assert at.wait_for("^(OK|ERROR)$") == "OK"
    assert at.wait_for("^(OK|ERROR)$") == "ERROR"


def test_cpcmreg_acceptance_is_asynchronous(at: AtClient) -> None:
    connect(at)
    time.sleep(0.2)
    at.send(b"AT+CPCMREG=1\rAT+CPCMREG?\r")
    at.wait_for("^OK$")
    assert at.wait_for(r"^\+CPCMREG:") == "+CPCMREG: 0"
    time.sleep(0.4)
    assert at.command("AT+CPCMREG?") == ["+CPCMREG: 1", "OK"]


@pytest.mark.parametrize("modem", [Faults(flaky_cpcmreg=True)], indirect=True)
def test_flaky_cpcmreg_first_ok_routes_nothing(modem: ModemEmulator, at: AtClient) -> None:
    connect(at)
    time.sleep(0.2)
    assert enable_pcm(at) == "+CPCMREG: 0"
    assert enable_pcm(at) == "+CPCMREG: 1"


def test_cpcmreg_left_on_breaks_the_next_call_until_reset(modem: ModemEmulator, at: AtClient) -> None:
    connect(at)
    time.sleep(0.2)
    enable_pcm(at)
    at.command("AT+CHUP")
    connect(at)
    time.sleep(0.2)
    enable_pcm(at)
    with serial.Serial(modem.audio_port, timeout=0.5) as audio:
        assert audio.read(100) == b""  # the stale route from the last call: nothing flows
        assert at.command("AT+CPCMREG=0,1") == ["OK"]
        assert enable_pcm(at) == "+CPCMREG: 1"
        assert len(audio.read(100)) == 100


def test_chup_reports_duration(modem: ModemEmulator, at: AtClient) -> None:
    connect(at)
    time.sleep(1.1)
    reply = at.command("AT+CHUP")
    assert re.fullmatch(r"VOICE CALL: END: 0000(0[1-9])", reply[0]), reply
    assert reply[-1] == "OK"
    assert modem.done.is_set() and modem.metrics.ended_by == "host"


def test_ath_is_ignored_unless_cvhu_0(at: AtClient) -> None:
    connect(at)
    assert at.command("ATH") == ["OK"]
    assert at.command("AT+CLCC") == [f'+CLCC: 1,0,0,0,0,"{NUMBER}",145', "OK"]
    at.command("AT+CVHU=0")
    reply = at.command("ATH")
    assert reply[0].startswith("VOICE CALL: END: ") and reply[-1] == "OK"
    assert at.command("AT+CLCC") == ["OK"]


def test_clcc_urcs_follow_the_call(at: AtClient) -> None:
    at.command("ATE0")
    at.command("AT+CLCC=1")
    at.send(f"ATD{NUMBER};")
    for stat in (2, 3, 0):
        at.wait_for(rf'^\+CLCC: 1,0,{stat},0,0,"\{NUMBER}",145$', 3)
    at.send("AT+CHUP")
    at.wait_for(rf'^\+CLCC: 1,0,6,0,0,"\{NUMBER}",145$')


@pytest.mark.parametrize("modem", [Faults(end_without_duration=True)], indirect=True)
def test_end_without_duration_and_odd_spacing(modem: ModemEmulator, at: AtClient) -> None:
    connect(at)
    assert at.command("AT+CHUP")[0] == "VOICE CALL: END"
    modem.scenario = Scenario(answer_delay_s=0.3, hangup_after_s=0.5)
    connect(at)
    assert re.fullmatch(r"VOICE CALL:END: \d{6}", at.wait_for("VOICE CALL", 3))
    at.wait_for("^NO CARRIER$")


def test_remote_hangup_then_no_carrier(modem: ModemEmulator, at: AtClient) -> None:
    modem.scenario = Scenario(answer_delay_s=0.3, hangup_after_s=1.2)
    connect(at)
    assert at.wait_for("VOICE CALL", 3) == "VOICE CALL: END: 000001"
    at.wait_for("^NO CARRIER$")
    assert modem.metrics.ended_by == "far_end"


@pytest.mark.parametrize(("outcome", "urc"), [("busy", "BUSY"), ("no-answer", "NO ANSWER")])
def test_busy_and_no_answer(modem: ModemEmulator, at: AtClient, outcome: str, urc: str) -> None:
    modem.scenario = Scenario(outcome=outcome, answer_delay_s=0.5)
    at.command("ATE0")
    started = time.monotonic()
    assert at.command(f"ATD{NUMBER};") == ["OK"]
    at.wait_for(f"^{urc}$", 3)
    assert time.monotonic() - started >= 0.45
    assert modem.done.is_set() and modem.metrics.ended_by == "far_end" and modem.metrics.answered_at is None
    assert at.command("ATD+14155550100;") == ["OK"]  # the line is free again


def test_inbound_ring_clip_then_answer(modem: ModemEmulator, at: AtClient) -> None:
    at.command("ATE0")
    assert at.command("ATA") == ["NO CARRIER"]
    at.command("AT+CLIP=1")
    modem.incoming_call("+27839776374", Scenario(ring_interval_s=0.3))
    at.wait_for("^RING$")
    assert at.wait_for(r"^\+CLIP") == '+CLIP: "+27839776374",145,,,"",0'
    at.wait_for("^RING$")
    assert at.command("ATA") == ["VOICE CALL: BEGIN", "OK"]
    assert at.command("AT+CLCC") == ['+CLCC: 1,1,0,0,0,"+27839776374",145', "OK"]


def test_unanswered_inbound_call_is_missed(modem: ModemEmulator, at: AtClient) -> None:
    at.command("ATE0")
    at.command("AT+CRC=1")
    modem.incoming_call("+27839776374", Scenario(ring_cycles=2, ring_interval_s=0.2))
    at.wait_for(r"^\+CRING: VOICE$")
    missed = at.wait_for("^MISSED_CALL", 2)
    assert re.fullmatch(r"MISSED_CALL: \d\d:\d\d[AP]M \+27839776374", missed)
    assert modem.done.is_set() and modem.metrics.ended_by == "missed"
    assert modem.metrics.answered_at is None


def test_sms_prompt_flow(modem: ModemEmulator, at: AtClient) -> None:
    at.command("ATE0")
    assert at.command(f'AT+CMGS="{NUMBER}"') == ["ERROR"]  # text mode first
    at.command("AT+CMGF=1")
    assert at.command(f'AT+CMGS="{NUMBER}"')[-1].startswith(">")
    at.send(b"Sam's cleaning moved to Friday 9:30\x1a")
    assert at.wait_for(r"^\+CMGS") == "+CMGS: 1"
    at.wait_for("^OK$")
    assert modem.sms_sent == [(NUMBER, "Sam's cleaning moved to Friday 9:30")]
    at.command(f'AT+CMGS="{NUMBER}"')
    at.send(b"never mind\x1b")  # ESC cancels
    at.wait_for("^OK$")
    assert len(modem.sms_sent) == 1


def test_dtmf_both_ways(modem: ModemEmulator, at: AtClient) -> None:
    from cellcall.emulator.scenario import ScenarioLine

    modem.scenario = Scenario(answer_delay_s=0.3, lines=(ScenarioLine(dtmf="4#"),))
    assert at.command("AT+VTS=1")[-1] == "ERROR"  # no call
    connect(at)
    assert at.wait_for(r"^\+RXDTMF") == "+RXDTMF: 4"
    assert at.wait_for(r"^\+RXDTMF") == "+RXDTMF: #"
    assert at.command("AT+VTS=5") == ["OK"]
    assert at.command('AT+VTS="12"') == ["OK"]
    assert modem.metrics.dtmf_heard == "512"


@pytest.mark.parametrize("modem", [Faults(doubled_crlf=True)], indirect=True)
def test_doubled_crlf_urc_framing(at: AtClient) -> None:
    connect(at)
    assert b"\r\r\nVOICE CALL: BEGIN\r\r\n" in at.raw


@pytest.mark.parametrize("modem", [Faults(slow_ok_s=0.4)], indirect=True)
def test_slow_ok(at: AtClient) -> None:
    at.command("ATE0")
    started = time.monotonic()
    assert at.command("AT+CSQ") == ["+CSQ: 21,99", "OK"]
    assert time.monotonic() - started >= 0.4


@pytest.mark.slow
@pytest.mark.parametrize("modem", [Faults(reenumerate_s=1.0)], indirect=True)
def test_creset_ports_vanish_and_return(modem: ModemEmulator, at: AtClient) -> None:
    at.command("ATE0")
    assert at.command("AT+CRESET") == ["OK"]
    time.sleep(0.5)
    assert not os.path.exists(modem.at_port) and not os.path.exists(modem.audio_port)
    with pytest.raises(serial.SerialException):
        at.port.write(b"AT\r")
        at.port.read(1)
        serial.Serial(modem.at_port)
    deadline = time.monotonic() + 3
    while not os.path.exists(modem.at_port) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert os.path.exists(modem.audio_port)
    again = AtClient(modem.at_port)
    try:
        assert again.command("AT") == ["AT", "OK"]  # settings reset: echo is back on
        again.wait_for("^PB DONE$", 2)
    finally:
        again.close()


@pytest.mark.slow
@pytest.mark.parametrize("modem", [Faults(vanish_after_s=0.8, reenumerate_s=2.0)], indirect=True)
def test_ports_vanish_mid_call(modem: ModemEmulator, at: AtClient) -> None:
    connect(at)
    assert modem.done.wait(2)
    assert modem.metrics.ended_by == "lost"
    assert not os.path.exists(modem.at_port)
    at._thread.join(1)
    assert not at._thread.is_alive()  # the host's read failed: the device is gone
    deadline = time.monotonic() + 5
    while not os.path.exists(modem.at_port) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert os.path.exists(modem.at_port)
