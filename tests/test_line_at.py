"""The AT channel against recorded SIM7600G-H transcripts, over a real pty."""

from __future__ import annotations

import os
import queue
import threading
import time

import pytest
import serial
from hypothesis import given
from hypothesis import strategies as st
from scripted_modem import ScriptedModem, load

from cellcall.line import LineError
from cellcall.line.at import ATChannel, ATCommandError, ATTimeout, Urc, UrcKind, command_prefix, parse_urc


@pytest.mark.parametrize(
    ("line", "state", "duration"),
    [
        ("VOICE CALL: BEGIN", "BEGIN", ""),
        ("VOICE CALL: END: 000017", "END", "000017"),
        ("VOICE CALL:END: 000017", "END", "000017"),
        ("VOICE CALL: END:000017", "END", "000017"),
        ("VOICE CALL:  END", "END", ""),
    ],
)
def test_voice_call_urc_in_every_spacing(line: str, state: str, duration: str) -> None:
    assert parse_urc(line) == Urc(UrcKind.VOICE_CALL, line, (state, duration))


def test_urc_fields_are_parsed() -> None:
    assert parse_urc('+CLIP: "+27839776374",145,,,"",0').args == ("+27839776374",)
    assert parse_urc("MISSED_CALL: 08:48AM +27839776374").args == ("08:48AM", "+27839776374")
    assert parse_urc("+RXDTMF: #").args == ("#",)
    assert parse_urc('+CMTI: "SM",2').args == ("SM", "2")
    assert parse_urc('+CLCC: 1,0,3,0,0,"+14155550132",145').args[:3] == ("1", "0", "3")
    assert parse_urc("+CRING: VOICE").kind is UrcKind.RING
    assert parse_urc("OK") is None and parse_urc("+CSQ: 21,99") is None


def test_command_prefix() -> None:
    assert command_prefix("AT+CPCMREG?") == "+CPCMREG:"
    assert command_prefix('AT+CMGS="+1"') == "+CMGS:"
    assert command_prefix("ATD+14155550132;") is None and command_prefix("ATI") is None


class Session:
    """An ATChannel on a pty driven by a transcript; URCs collected in a queue."""

    def __init__(self, transcript: str) -> None:
        self.modem = ScriptedModem(load(transcript))
        self.port = serial.Serial(self.modem.path, timeout=0.05)
        self.urcs: queue.Queue[Urc] = queue.Queue()
        self.errors: list[Exception] = []
        self.modem.start()
        self.channel = ATChannel(self.port, self.urcs.put, self.errors.append).start()

    def urc(self, timeout: float = 2.0) -> Urc:
        return self.urcs.get(timeout=timeout)

    def close(self) -> None:
        self.channel.stop()
        self.port.close()
        self.modem.close()
        assert not self.modem.mismatches


@pytest.fixture
def session(request: pytest.FixtureRequest):
    made: list[Session] = []

    def make(name: str) -> Session:
        made.append(Session(name))
        return made[-1]

    yield make
    for s in made:
        s.close()


def test_boot_urcs_echo_and_status_responses(session) -> None:
    s = session("boot_init.txt")
    assert [s.urc().args[0] for _ in range(4)] == ["RDY", "+CPIN: READY", "SMS DONE", "PB DONE"]
    assert s.channel.command("AT").ok  # echoed "AT" is dropped, not taken as a response line
    assert s.channel.command("ATE0").lines == []
    s.channel.command("AT+CVHU=0").check()
    s.channel.command("AT+CLIP=1").check()
    ati = s.channel.command("ATI")
    assert "Model: SIMCOM_SIM7600G-H" in ati.lines and ati.lines[0].startswith("Manufacturer")
    assert s.channel.command("AT+CSQ").values("+CSQ:") == ["21,99"]
    assert s.channel.command("AT+CREG?").values("+CREG:") == ["0,3"]
    assert s.channel.command("AT+CEREG?").values("+CEREG:") == ["0,1"]
    assert s.channel.command("AT+COPS?").values("+COPS:") == ['0,0,"T-Mobile",7']
    cpin = s.channel.command("AT+CPIN?")  # +CPIN: READY is the answer here, not a boot URC
    assert cpin.values("+CPIN:") == ["READY"] and s.urcs.empty()


def test_outbound_cpcmreg_errors_and_hangup(session) -> None:
    s = session("outbound_flaky_cpcmreg.txt")
    assert s.channel.command("AT+CPCMREG=0").final == "ERROR"
    assert s.channel.command("ATD+14155550132;").ok
    assert s.channel.command("AT+CLCC").values("+CLCC:")[0].startswith("1,0,2")
    assert s.channel.command("AT+CLCC").values("+CLCC:")[0].startswith("1,0,3")
    begin = s.urc()
    assert (begin.kind, begin.args[0]) == (UrcKind.VOICE_CALL, "BEGIN")
    with pytest.raises(ATCommandError, match=r"AT\+CPCMREG=1 -> ERROR"):
        s.channel.command("AT+CPCMREG=1").check()
    s.channel.command("AT+CPCMREG=1").check()
    assert s.channel.command("AT+CPCMREG?").values("+CPCMREG:") == ["0"]
    s.channel.command("AT+CPCMREG=1").check()
    assert s.channel.command("AT+CPCMREG?").values("+CPCMREG:") == ["1"]
    s.channel.command("AT+VTS=5").check()
    assert s.channel.command("AT+CHUP").ok
    assert s.urc().args == ("END", "000017")  # the URC inside the CHUP response still dispatched


def test_remote_hangup_variants_busy_and_no_answer(session) -> None:
    s = session("remote_hangup_variants.txt")
    assert s.channel.command("ATD+14155550132;").ok
    got = [s.urc() for _ in range(3)]
    assert [(u.kind, u.args) for u in got] == [
        (UrcKind.VOICE_CALL, ("BEGIN", "")),
        (UrcKind.VOICE_CALL, ("END", "000017")),
        (UrcKind.NO_CARRIER, ()),
    ]
    assert s.channel.command("ATD+14155550133;").ok
    assert [(u.kind, u.args) for u in (s.urc(), s.urc(), s.urc())] == [
        (UrcKind.VOICE_CALL, ("BEGIN", "")),
        (UrcKind.VOICE_CALL, ("END", "")),
        (UrcKind.NO_CARRIER, ()),
    ]
    assert s.channel.command("ATD+14155550134;").ok
    assert s.urc().kind is UrcKind.BUSY
    assert s.channel.command("ATD+14155550135;").ok
    assert s.urc().kind is UrcKind.NO_ANSWER


def test_inbound_ring_clip_ata_dtmf_missed(session) -> None:
    s = session("inbound.txt")
    kinds = [s.urc().kind for _ in range(4)]
    assert kinds == [UrcKind.RING, UrcKind.CLIP, UrcKind.RING, UrcKind.CLIP]
    assert s.channel.command("ATA").ok
    assert s.urc().args[0] == "BEGIN"
    assert s.urc().args == ("1",)
    assert s.urc().args == ("END", "000042")
    assert s.urc().kind is UrcKind.NO_CARRIER  # outside ATA: a URC, not a final result
    assert s.channel.command("AT").ok
    assert [s.urc().kind for _ in range(3)] == [UrcKind.RING, UrcKind.CLIP, UrcKind.MISSED_CALL]


def test_urcs_inside_responses_and_sms_prompt(session) -> None:
    s = session("sms_and_interleaved.txt")
    csq = s.channel.command("AT+CSQ")
    assert csq.values("+CSQ:") == ["20,99"] and csq.ok
    assert s.urc().kind is UrcKind.RING
    clcc = s.channel.command("AT+CLCC")  # +CLCC here is the answer; +CLIP is a URC
    assert clcc.values("+CLCC:") == ['1,1,4,0,0,"+27839776374",145']
    assert s.urc().args == ("+27839776374",)
    s.channel.command("AT+CMGF=1").check()
    sent = s.channel.command_with_prompt('AT+CMGS="+14155550132"', b"Running 5 min late. RING me back\x1a", 5)
    assert sent.values("+CMGS:") == ["12"]
    assert s.urc().args == ("SM", "2")
    failed = s.channel.command_with_prompt('AT+CMGS="+1"', b"x\x1a", 5)  # fails before any prompt
    assert failed.final == "+CMS ERROR: 304" and not failed.ok
    assert s.urcs.empty()


def test_timeout_and_vanished_port() -> None:
    master, slave = os.openpty()
    port = serial.Serial(os.ttyname(slave), timeout=0.05)
    errors: list[Exception] = []
    died = threading.Event()
    channel = ATChannel(port, lambda urc: None, lambda exc: (errors.append(exc), died.set())).start()
    started = time.monotonic()
    with pytest.raises(ATTimeout, match="AT: no final result within 0.3 s"):
        channel.command("AT", timeout=0.3)
    assert 0.25 < time.monotonic() - started < 2
    os.close(master)  # the far side disappears: the reader sees EIO
    assert died.wait(1.0), "the reader did not report the vanished port"
    with pytest.raises(LineError, match="AT port is gone"):
        channel.command("AT", timeout=0.3)
    channel.stop()
    port.close()
    os.close(slave)


URC_STREAM = (
    b'\r\nRING\r\n\r\n+CLIP: "+27839776374",145,,,"",0\r\n\r\r\nVOICE CALL: BEGIN\r\r\n'
    b"\r\n+RXDTMF: 1\r\n\r\r\nVOICE CALL:END: 000017\r\r\n\r\nNO CARRIER\r\n"
    b'\r\nMISSED_CALL: 08:48AM +27839776374\r\n\r\n+CMTI: "SM",2\r\n'
)


@given(st.lists(st.integers(min_value=0, max_value=len(URC_STREAM)), max_size=12))
def test_urcs_survive_any_split_of_the_byte_stream(cuts: list[int]) -> None:
    """USB reads cut lines anywhere (even between \\r and \\n); the URCs must come out the same."""
    got: list[Urc] = []
    channel = ATChannel(port=None, on_urc=got.append)  # type: ignore[arg-type]  # feed() never touches the port
    bounds = [0, *sorted(cuts), len(URC_STREAM)]
    for start, end in zip(bounds, bounds[1:], strict=False):
        channel.feed(URC_STREAM[start:end])
    assert [(u.kind, u.args) for u in got] == [
        (UrcKind.RING, ()),
        (UrcKind.CLIP, ("+27839776374",)),
        (UrcKind.VOICE_CALL, ("BEGIN", "")),
        (UrcKind.DTMF, ("1",)),
        (UrcKind.VOICE_CALL, ("END", "000017")),
        (UrcKind.NO_CARRIER, ()),
        (UrcKind.MISSED_CALL, ("08:48AM", "+27839776374")),
        (UrcKind.CMTI, ("SM", "2")),
    ]
