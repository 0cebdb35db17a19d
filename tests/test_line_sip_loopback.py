"""SipLine against real servers on loopback: kamailio (registrar + proxy, digest auth) and a far-end UA.

Both are started by the tests (tests/sip_rig.py) and stopped by PID. The far end is a second
baresip user agent in its own process that answers, rejects, lets ring, plays and records audio,
sends and prints DTMF, and hangs up when told.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import time
import wave
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sip_rig import USERS, FarEnd, Kamailio, free_udp_port

from cellcall.call import place_call
from cellcall.config import Settings
from cellcall.goal import load_goal
from cellcall.line import LineError, LineEvent, LineEventKind
from cellcall.line.sip import SipLine, SipOptions
from cellcall.record import CallStatus

FAR = "+14155550132"
DENTIST = Path(__file__).resolve().parents[1] / "goals" / "examples" / "dentist.md"

pytestmark = pytest.mark.slow  # real-time calls through real servers (seconds each)
_rtp_base = [32000]


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kamailio]:
    server = Kamailio(tmp_path_factory.mktemp("kamailio")).start()
    try:
        yield server
    finally:
        server.stop()


def options(rig: Kamailio, **changes: object) -> SipOptions:
    _rtp_base[0] += 40
    base = SipOptions(
        domain=rig.domain,
        username="alice",
        password=USERS["alice"],
        listen=f"127.0.0.1:{free_udp_port()}",
        rtp_ports=(_rtp_base[0], _rtp_base[0] + 20),
        answer_timeout_s=10.0,
        ring_interval_s=0.5,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


@pytest.fixture
def line(rig: Kamailio) -> Iterator[SipLine]:
    sip = SipLine(options(rig))
    sip.open()
    try:
        yield sip
    finally:
        sip.close()


def far_end(rig: Kamailio, *args: str) -> FarEnd:
    _rtp_base[0] += 40
    end = FarEnd(rig, "--listen", str(free_udp_port()), "--rtp", str(_rtp_base[0]), *args)
    end.wait_for("registered", 15)
    return end


def tone_wav(path: Path, seconds: float, hz: float = 440.0) -> Path:
    t = np.arange(int(8000 * seconds)) / 8000
    pcm = (0.3 * 32767 * np.sin(2 * np.pi * hz * t)).astype("<i2")
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        wav.writeframes(pcm.tobytes())
    return path


def until(
    line: SipLine,
    kinds: set[LineEventKind],
    timeout: float,
    frames: list[bytes] | None = None,
    seen: list[LineEventKind] | None = None,
) -> LineEvent:
    """The first event of `kinds`, draining downlink frames into `frames` and the events before it into `seen`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        event = line.next_event(0.02)
        while (frame := line.read_frame(0)) is not None:
            if frames is not None:
                frames.append(frame)
        if event is not None and event.kind in kinds:
            return event
        if event is not None and seen is not None:
            seen.append(event.kind)
    raise AssertionError(f"none of {sorted(k.value for k in kinds)} within {timeout:g} s")


def rms(pcm: bytes) -> float:
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    return float(np.sqrt(np.mean(samples**2))) if samples.size else 0.0


def test_registers_with_digest_auth_and_reports_status(line: SipLine) -> None:
    status = line.status()
    assert status.ready and status.registered is True
    assert status.ports["codecs"] == "pcmu,pcma" and status.ports["sip"].startswith("sip:alice@127.0.0.1:")


def test_wrong_password_is_a_clear_error_without_a_retry_storm(rig: Kamailio) -> None:
    before = rig.registers()
    sip = SipLine(options(rig, password="wrong-password-123"))
    started = time.monotonic()
    with pytest.raises(LineError, match=r"refused \(403\).*line.sip.password") as err:
        sip.open()
    assert time.monotonic() - started < 5
    assert "wrong-password-123" not in str(err.value)
    time.sleep(2.0)  # a retrying stack would keep sending REGISTERs now
    assert rig.registers() - before <= 2
    assert sip.status().ready is False


def test_outbound_call_carries_audio_both_ways_and_dtmf_both_ways(rig: Kamailio, line: SipLine, tmp_path: Path) -> None:
    recording = tmp_path / "heard.wav"
    far = far_end(
        rig,
        "--play",
        str(tone_wav(tmp_path / "tone.wav", 3.0)),
        "--record",
        str(recording),
        "--send-dtmf",
        "42#",
        "--dtmf-after",
        "0.5",
        "--hangup-after",
        "3.0",
    )
    try:
        line.dial(FAR)
        assert until(line, {LineEventKind.ANSWERED}, 10).kind is LineEventKind.ANSWERED
        assert line.sample_rate == 8000
        line.write(tone_wav(tmp_path / "ours.wav", 1.5, 660).read_bytes()[44:], tag="greeting")
        line.send_dtmf("7*")
        frames: list[bytes] = []
        digits = []
        deadline = time.monotonic() + 8
        ended = None
        while ended is None and time.monotonic() < deadline:
            event = until(line, {LineEventKind.DTMF, LineEventKind.REMOTE_HANGUP, LineEventKind.TX_STARTED}, 8, frames)
            if event.kind is LineEventKind.DTMF:
                digits.append(event.detail)
            elif event.kind is LineEventKind.REMOTE_HANGUP:
                ended = event
        assert ended is not None and "hung up" in ended.detail
        assert digits == ["4", "2", "#"]
        assert all(len(frame) == 320 for frame in frames) and len(frames) >= 100
        assert rms(b"".join(frames)) > 2000  # the far end's tone, not silence
        far.wait_for("done", 5)
        assert [e["digit"] for e in far.events() if e["event"] == "dtmf"] == ["7", "*"]
        with wave.open(str(recording), "rb") as wav:
            heard = wav.readframes(wav.getnframes())
        assert rms(heard) > 1000  # our tone reached the far end over RTP
    finally:
        far.stop()


def test_busy_is_a_busy_outcome_with_the_sip_code(rig: Kamailio, line: SipLine) -> None:
    far = far_end(rig, "--mode", "reject")
    try:
        line.dial(FAR)
        event = until(line, {LineEventKind.BUSY, LineEventKind.ERROR, LineEventKind.NO_ANSWER}, 10)
        assert event.kind is LineEventKind.BUSY and event.detail.startswith("SIP 486")
    finally:
        far.stop()


def test_no_answer_cancels_the_invite(rig: Kamailio, tmp_path: Path) -> None:
    far = far_end(rig, "--mode", "ring")
    sip = SipLine(options(rig, answer_timeout_s=4.0))  # from the INVITE: a busy box can take 2 s to ring
    sip.open()
    try:
        sip.dial(FAR)
        before: list[LineEventKind] = []
        event = until(sip, {LineEventKind.NO_ANSWER, LineEventKind.BUSY, LineEventKind.ERROR}, 10, seen=before)
        assert event.kind is LineEventKind.NO_ANSWER
        assert LineEventKind.RINGING in before  # it rang, then went unanswered
        closed = far.wait_for("closed", 5)  # the CANCEL reached the far end
        assert far.wait_for("incoming", 1) and closed["reason"]
    finally:
        sip.close()
        far.stop()


def test_unknown_number_fails_with_404(line: SipLine) -> None:
    line.dial("+15559999")
    event = until(line, {LineEventKind.ERROR, LineEventKind.BUSY, LineEventKind.NO_ANSWER}, 10)
    assert event.kind is LineEventKind.ERROR and event.detail == "SIP 404 Not Found"
    line.dial("+15559998")  # the line is idle again: a second call can be placed
    assert until(line, {LineEventKind.ERROR}, 10).detail == "SIP 404 Not Found"


def test_inbound_call_rings_and_is_answered_after_two_rings(rig: Kamailio, line: SipLine, tmp_path: Path) -> None:
    far = far_end(rig, "--mode", "call", "--call", f"sip:alice@{rig.domain}", "--play", str(tone_wav(tmp_path / "t.wav", 2.0)))
    try:
        first = until(line, {LineEventKind.INCOMING}, 10)
        second = until(line, {LineEventKind.INCOMING}, 3)
        assert first.number == second.number == FAR and second.at - first.at >= 0.4
        line.answer()
        assert until(line, {LineEventKind.ANSWERED}, 5).kind is LineEventKind.ANSWERED
        far.wait_for("established", 5)
        time.sleep(1.0)
        line.hangup()
        assert far.wait_for("closed", 5)
        later = [line.next_event(0.1) for _ in range(5)]
        assert not [e for e in later if e is not None and e.kind is LineEventKind.REMOTE_HANGUP]  # we hung up
    finally:
        far.stop()


def test_caller_giving_up_is_a_missed_call(rig: Kamailio, line: SipLine) -> None:
    far = far_end(rig, "--mode", "call", "--call", f"sip:alice@{rig.domain}")
    try:
        assert until(line, {LineEventKind.INCOMING}, 10).number == FAR
        far.stop()  # the far end's runtime closes: its INVITE is cancelled
        assert until(line, {LineEventKind.MISSED}, 5).number == FAR
    finally:
        far.stop()


def test_far_end_bye_mid_sentence_ends_the_call_and_keeps_the_line(rig: Kamailio, line: SipLine, tmp_path: Path) -> None:
    far = far_end(rig, "--play", str(tone_wav(tmp_path / "t.wav", 5.0)), "--hangup-after", "1.0")
    try:
        line.dial(FAR)
        until(line, {LineEventKind.ANSWERED}, 10)
        line.write(b"\x00\x10" * 8000 * 4, tag="long sentence")  # 4 s: still speaking when the BYE comes
        event = until(line, {LineEventKind.REMOTE_HANGUP}, 6)
        assert "hung up" in event.detail and line.tx_queued_ms() < 1000  # the rest of the sentence is dropped
        assert line.status().ready
    finally:
        far.stop()


def test_media_stopping_for_the_timeout_ends_the_call(rig: Kamailio, tmp_path: Path) -> None:
    far = far_end(rig, "--play", str(tone_wav(tmp_path / "t.wav", 1.0)))
    sip = SipLine(options(rig, media_timeout_s=1.5))
    sip.open()
    try:
        sip.dial(FAR)
        until(sip, {LineEventKind.ANSWERED}, 10)
        time.sleep(0.5)
        os.killpg(far.proc.pid, signal.SIGSTOP)  # the far end freezes: no RTP, no BYE
        started = time.monotonic()
        event = until(sip, {LineEventKind.REMOTE_HANGUP}, 5)
        assert "no audio" in event.detail and 1.2 < time.monotonic() - started < 4
    finally:
        os.killpg(far.proc.pid, signal.SIGCONT)
        sip.close()
        far.stop()


def test_dial_policy_applies_before_any_invite(rig: Kamailio, line: SipLine, tmp_path: Path) -> None:
    far = far_end(rig, "--mode", "ring")
    try:
        settings = Settings()
        settings.paths.outbox = str(tmp_path / "outbox")
        settings.policy.denylist = [FAR]
        goal = dataclasses.replace(load_goal(DENTIST), number=FAR)
        result = place_call(goal, settings, line)
        assert result.record.status is CallStatus.REFUSED
        time.sleep(1.0)
        assert not [e for e in far.events() if e["event"] == "incoming"]  # no INVITE ever reached it
        assert line.next_event(0.1) is None
    finally:
        far.stop()


def test_registration_lost_is_an_error_on_the_idle_line(tmp_path: Path) -> None:
    """The registrar restarts and now refuses our credentials: the next refresh fails, the line says so."""
    server = Kamailio(tmp_path).start()
    try:
        sip = SipLine(options(server, register_interval_s=3))
        sip.open()
        try:
            server.stop()
            server.users = {**USERS, "alice": "rotated"}
            server.start()
            event = until(sip, {LineEventKind.ERROR}, 15)
            assert event.detail.startswith("SIP registration lost") and "403" in event.detail
            assert sip.status().registered is False and not sip.status().ready
        finally:
            sip.close()
    finally:
        server.stop()


def test_g722_negotiates_16_khz_frames(rig: Kamailio) -> None:
    far = far_end(rig, "--codecs", "g722/16000/1,pcmu", "--hangup-after", "1.5")
    sip = SipLine(options(rig, codecs=("g722", "pcmu")))
    sip.open()
    try:
        sip.dial(FAR)
        until(sip, {LineEventKind.ANSWERED}, 10)
        assert sip.sample_rate == 16000 and sip.status().ports["call codec"] == "16000 Hz"
        frames: list[bytes] = []
        until(sip, {LineEventKind.REMOTE_HANGUP}, 5, frames)
        assert frames and {len(frame) for frame in frames} == {640}
    finally:
        sip.close()
        far.stop()
