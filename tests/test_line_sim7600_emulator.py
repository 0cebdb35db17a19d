"""Sim7600Line against the modem emulator over real ptys, given only the two port paths."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest

from cellcall.config import Settings
from cellcall.emulator.line import start_emulated_line
from cellcall.emulator.modem import Faults, ModemEmulator
from cellcall.emulator.scenario import Scenario, Sound, Tone
from cellcall.line import LineError, LineEvent, LineEventKind
from cellcall.line.factory import make_line
from cellcall.line.pacing import PacedWriter
from cellcall.line.sim7600 import ModemOptions, Sim7600Line

K = LineEventKind
GREETING = Sound(tone=Tone(440.0, 3000))
STARVED_MS = ModemOptions().lead_ms - 20  # a writer gap this long empties the modem's buffer
LINE_THREADS = ("at-reader", "audio-reader", "uplink-writer", "line-control", "line-teardown")


@contextmanager
def modem(faults: Faults | None = None, **scenario: object) -> Iterator[tuple[Sim7600Line, ModemEmulator]]:
    settings = dict(name="test", answer_delay_s=0.5, greeting=GREETING)
    settings.update(scenario)
    emulator = ModemEmulator(scenario=Scenario(**settings), faults=faults)
    emulator.start()
    line = Sim7600Line(emulator.at_port, emulator.audio_port, ModemOptions(answer_timeout_s=10, reset_timeout_s=15))
    try:
        line.open()
        yield line, emulator
    finally:
        line.close()
        emulator.stop()


def wait_for(line: Sim7600Line, kind: LineEventKind, timeout: float = 8.0) -> tuple[LineEvent, list[LineEvent]]:
    """The first event of `kind`, and the events seen before it."""
    seen: list[LineEvent] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        event = line.next_event(0.05)
        if event is None:
            continue
        if event.kind is kind:
            return event, seen
        seen.append(event)
    raise AssertionError(f"no {kind.value} event within {timeout} s; saw {[(e.kind.value, e.detail) for e in seen]}")


def sent(emulator: ModemEmulator) -> list[str]:
    return [text for _, direction, text in emulator.at_log if direction == "rx"]


def tone(seconds: float, rate: int = 8000, hz: float = 500.0) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    return (np.sin(2 * np.pi * hz * t) * 8000).astype("<i2").tobytes()


def read_frames(line: Sim7600Line, seconds: float) -> list[bytes]:
    frames, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        frame = line.read_frame(0.1)
        if frame is not None:
            frames.append(frame)
    return frames


def assert_no_underrun(underruns: int, writer: PacedWriter) -> None:
    """No underrun while fed, unless the OS starved the writer thread for about its whole lead.

    The lead (60 ms) minus the modem's and the writer's tick (~20 ms) is all the slack there is;
    on a loaded test machine a thread can be descheduled for longer, which no pacing can fix.
    That case is printed, never hidden; an underrun without such a gap fails.
    """
    if underruns:
        gap_ms = writer.max_gap_s * 1000
        print(f"\n{underruns} uplink underrun(s); the writer thread was starved for up to {gap_ms:.0f} ms")
        assert gap_ms > STARVED_MS, f"{underruns} underrun(s) with the writer never late"


def line_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name in LINE_THREADS]


@pytest.mark.slow
def test_outbound_connect_audio_both_ways_and_host_hangup() -> None:
    with modem() as (line, emulator):
        status = line.status()
        assert (status.ready, status.registered, status.operator, status.signal_dbm, status.sim) == (
            True, True, "T-Mobile", -71, "READY",
        )  # fmt: skip
        assert status.model == "SIMCOM_SIM7600G-H"
        line.dial("+14155550132")
        _, before = wait_for(line, K.ANSWERED)
        assert [e.kind for e in before] == [K.RINGING]
        assert line.sample_rate == 8000
        frames = read_frames(line, 1.0)
        downlink = bytes(emulator.metrics.downlink)
        assert frames and {len(f) for f in frames} == {320}
        assert b"".join(frames) == downlink[: 320 * len(frames)]  # byte-exact through unaligned reads
        assert np.abs(np.frombuffer(b"".join(frames), "<i2")).max() > 1000  # the greeting tone, not silence
        agent = tone(0.6)
        writer = line.uplink
        assert writer is not None
        line.write(agent, tag="reply-1")
        started, _ = wait_for(line, K.TX_STARTED)
        assert started.tag == "reply-1"
        wait_for(line, K.TX_IDLE)
        time.sleep(0.2)
        line.hangup()
        assert line.next_event(0.5) is None  # a host hang-up is not reported as a remote one
        played = np.frombuffer(bytes(emulator.metrics.uplink), "<i2")
        reply = np.frombuffer(agent, "<i2")
        at = int(np.flatnonzero(played)[0]) - 1  # the reply starts with a zero sample
        inner = slice(80, reply.size - 80)  # the 10 ms fades at both edges change those samples
        assert emulator.metrics.ended_by == "host"
        assert_no_underrun(emulator.metrics.uplink_underruns, writer)
        if not emulator.metrics.uplink_underruns:  # (a starved writer's gap of silence is printed above)
            assert np.array_equal(played[at:][inner], reply[inner])  # the reply reached the network intact
    commands = sent(emulator)
    assert commands.index("AT+CPCMREG=0", commands.index("ATE0")) < commands.index("ATD+14155550132;")
    assert "AT+CPCMREG?" in commands and commands[-1] == "AT+CHUP"


@pytest.mark.slow
def test_clear_tx_stops_the_agent_on_the_network_quickly() -> None:
    """Barge-in: queued uplink and the port's output buffer are dropped; the far end hears silence."""
    with modem(greeting=None) as (line, emulator):
        line.dial("+14155550132")
        wait_for(line, K.ANSWERED)
        line.write(tone(3.0), tag="long")
        wait_for(line, K.TX_STARTED)
        time.sleep(0.6)
        cleared_at = time.monotonic()
        line.clear_tx()
        assert line.tx_queued_ms() == 0
        time.sleep(0.5)
        line.hangup()
        (spoken,) = emulator.metrics.utterances
        stop_ms = (spoken.end - cleared_at) * 1000
        print(f"\nagent audio stopped {stop_ms:.0f} ms after clear_tx")
        assert spoken.end - spoken.start < 1.2 and stop_ms < 150  # lead (60 ms) + the modem's own buffer


@pytest.mark.parametrize(("outcome", "kind"), [("busy", K.BUSY), ("no-answer", K.NO_ANSWER)])
def test_busy_and_no_answer(outcome: str, kind: LineEventKind) -> None:
    with modem(outcome=outcome, answer_delay_s=0.6) as (line, _):
        line.dial("+14155550132")
        event, _ = wait_for(line, kind)
        assert event.detail
        line.dial("+14155550133")  # the line is idle again
        wait_for(line, kind)


def test_driver_gives_up_after_answer_timeout() -> None:
    with modem(answer_delay_s=30) as (line, emulator):
        line.options.answer_timeout_s = 1.0
        line.dial("+14155550132")
        event, _ = wait_for(line, K.NO_ANSWER, timeout=5)
        assert "1 s" in event.detail
        assert "AT+CHUP" in sent(emulator)


@pytest.mark.slow
@pytest.mark.parametrize("faults", [Faults(), Faults(doubled_crlf=True, end_without_duration=True, slow_ok_s=0.05)])
def test_remote_hangup(faults: Faults) -> None:
    with modem(faults, hangup_after_s=2.5) as (line, _):
        line.dial("+14155550132")
        wait_for(line, K.ANSWERED)
        event, _ = wait_for(line, K.REMOTE_HANGUP)
        assert "call ended" in event.detail
        assert line.next_event(0.3) is None  # NO CARRIER after END is not a second hang-up
        line.dial("+14155550132")  # CPCMREG was reset: the next call routes audio again
        wait_for(line, K.ANSWERED)


@pytest.mark.slow
def test_inbound_ring_then_answer_then_missed_call() -> None:
    with modem(ring_cycles=2, ring_interval_s=0.4) as (line, emulator):
        with pytest.raises(LineError, match="no incoming call"):
            line.answer()
        emulator.incoming_call("+27839776374")
        ring, _ = wait_for(line, K.INCOMING)
        assert ring.number == "+27839776374"
        line.answer()
        wait_for(line, K.ANSWERED)
        assert "ATA" in sent(emulator)
        line.hangup()
        emulator.incoming_call("+27839776375")
        rings = [wait_for(line, K.INCOMING)[0] for _ in range(2)]
        assert [r.number for r in rings] == ["+27839776375"] * 2
        missed, _ = wait_for(line, K.MISSED)
        assert missed.number == "+27839776375"


@pytest.mark.slow
def test_flaky_cpcmreg_is_verified_and_retried() -> None:
    with modem(Faults(flaky_cpcmreg=True)) as (line, emulator):
        line.dial("+14155550132")
        wait_for(line, K.ANSWERED)
        assert sent(emulator).count("AT+CPCMREG=1") >= 2
        assert len(read_frames(line, 0.3)) >= 10


@pytest.mark.slow
def test_volte_16k_detected_from_byte_rate() -> None:
    with modem(Faults(volte_16k=True)) as (line, emulator):
        line.dial("+14155550132")
        answered, _ = wait_for(line, K.ANSWERED)
        assert line.sample_rate == 16000 and "16000" in answered.detail
        frames = read_frames(line, 0.5)
        assert {len(f) for f in frames} == {640}
        assert b"".join(frames) == bytes(emulator.metrics.downlink)[: 640 * len(frames)]


@pytest.mark.slow
def test_dtmf_and_sms() -> None:
    with modem() as (line, emulator):
        assert line.send_sms("+14155550132", "Running late, RING me") >= 1
        assert emulator.sms_sent == [("+14155550132", "Running late, RING me")]
        with pytest.raises(LineError, match="SMS text"):
            line.send_sms("+14155550132", "bad\x1a")
        with pytest.raises(LineError, match="answered call"):
            line.send_dtmf("1")
        line.dial("+14155550132")
        wait_for(line, K.ANSWERED)
        line.send_dtmf("12#")
        assert emulator.metrics.dtmf_heard == "12#"


def test_caller_text_cannot_inject_commands() -> None:
    with modem() as (line, emulator):
        for bad in ("+1415;+CFUN=0", "1234\rATH", ""):
            with pytest.raises(LineError, match="not a dialable number"):
                line.dial(bad)
        with pytest.raises(LineError, match="not DTMF"):
            line.send_dtmf("1;+CRESET")
        assert not any("CFUN" in c or "CRESET" in c for c in sent(emulator))


@pytest.mark.slow
def test_port_vanishing_mid_call_is_an_error_within_1_s_and_tears_down() -> None:
    with modem(Faults(vanish_after_s=2.5, reenumerate_s=1.5)) as (line, emulator):
        line.dial("+14155550132")
        wait_for(line, K.ANSWERED)
        error, _ = wait_for(line, K.ERROR, timeout=5)
        assert emulator.done.wait(5)  # the ports vanish a moment before the emulator ends the call
        vanished_at = emulator.metrics.ended_at
        assert vanished_at is not None and emulator.metrics.ended_by == "lost"
        print(f"\nline error {1000 * (error.at - vanished_at):.0f} ms after the ports vanished")
        assert error.at - vanished_at < 1.0 and "vanished" in error.detail
        deadline = time.monotonic() + 3
        while line_threads() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert line_threads() == []  # clean teardown: every line thread ended
        with pytest.raises(LineError):
            line.dial("+14155550132")
        assert line.recover() == "reopened"  # the ports came back at the same paths
        assert line.status().ready
        line.dial("+14155550132")
        wait_for(line, K.ANSWERED)


@pytest.mark.slow
def test_creset_recovery_reopens_both_ports() -> None:
    with modem(Faults(reenumerate_s=1.5)) as (line, emulator):
        started = time.monotonic()
        line.reset_modem()
        assert time.monotonic() - started >= 1.5
        assert line.next_event(0.1) is None  # an intended reset is not a line error
        commands = sent(emulator)
        assert commands.index("AT+CRESET") < len(commands) - 1 - commands[::-1].index("ATE0")
        assert line.status().ready
        line.dial("+14155550132")
        wait_for(line, K.ANSWERED)
        assert len(read_frames(line, 0.3)) >= 10  # the audio port was reopened too


@pytest.mark.slow
def test_uplink_paced_for_10_s_without_underrun() -> None:
    """The emulated modem consumes at exactly 8 kHz and reports every gap in the agent's speech."""
    with modem(greeting=None) as (line, emulator):
        line.dial("+14155550132")
        wait_for(line, K.ANSWERED)
        writer = line.uplink
        assert writer is not None
        sent_before, skipped_before, t_before = writer.bytes_sent, writer.skipped_bytes, time.monotonic()
        speech = tone(10.4)
        for i in range(0, len(speech), 3200):  # fed 100 ms at a time, ahead of real time
            line.write(speech[i : i + 3200])
        time.sleep(10.0)
        elapsed = time.monotonic() - t_before
        rate = (writer.bytes_sent - sent_before) / elapsed
        skipped = writer.skipped_bytes - skipped_before
        wait_for(line, K.TX_IDLE, timeout=3)
        line.hangup()
        metrics = emulator.metrics
        gap_ms = writer.max_gap_s * 1000
        print(f"\nuplink {rate:.1f} B/s, underruns {metrics.uplink_underruns}, max writer gap {gap_ms:.0f} ms")
        assert_no_underrun(metrics.uplink_underruns, writer)
        # When the OS starved the writer, the time the modem played silence for is skipped, not owed.
        assert (rate if gap_ms <= STARVED_MS else rate + skipped / elapsed) == pytest.approx(16000, rel=0.01)
        assert metrics.heard_agent_utterances == 1


def test_make_line_emulator_kind_and_errors() -> None:
    settings = Settings()
    settings.line.kind = "emulator"
    settings.line.scenario = "busy"
    line = make_line(settings)
    try:
        line.open()
        assert line.status().ready
        line.dial("+14155550132")
        wait_for(line, K.BUSY)  # type: ignore[arg-type]
    finally:
        line.close()
    explicit = make_line(settings, at_port="/dev/ttyUSB2", audio_port="/dev/ttyUSB4")
    assert isinstance(explicit, Sim7600Line)  # explicit ports mean the modem behind them, not the emulator
    assert (explicit.at_path, explicit.audio_path) == ("/dev/ttyUSB2", "/dev/ttyUSB4")
    settings.line.kind = "pstn"
    with pytest.raises(LineError, match="unknown line kind 'pstn'"):
        make_line(settings)
    with pytest.raises(LineError, match="emulator scenario"):
        start_emulated_line(Settings(), scenario="no-such-scenario")


def test_open_fails_clearly_on_missing_ports(tmp_path) -> None:
    line = Sim7600Line(str(tmp_path / "at"), str(tmp_path / "audio"))
    with pytest.raises(LineError, match="cannot open the AT port .*/at"):
        line.open()
    line.close()


@pytest.mark.slow
def test_call_audio_is_started_and_stopped_only_on_the_control_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """A remote hang-up (URC on the AT reader), a host hang-up and a reroute never touch the audio path elsewhere."""
    from cellcall.line.call_audio import CallAudio

    threads: list[str] = []
    for name in ("begin_call", "end_call"):
        real = getattr(CallAudio, name)

        def recorded(self: CallAudio, _real=real, _name=name) -> None:
            threads.append(f"{_name}@{threading.current_thread().name}")
            _real(self)

        monkeypatch.setattr(CallAudio, name, recorded)
    with modem(hangup_after_s=3.0) as (line, _):
        line.dial("+14155550132")
        wait_for(line, K.ANSWERED)
        assert line.recover() == "rerouted"  # healthy and in a call: the reroute runs on the control thread
        assert len(read_frames(line, 0.3)) >= 10
        wait_for(line, K.REMOTE_HANGUP)
        line.dial("+14155550132")
        wait_for(line, K.ANSWERED)
        line.hangup()  # on this (the caller's) thread: it hands the stop to the control thread
        time.sleep(0.3)
        before_close = list(threads)  # close() then tears down here, after the control thread ended
    assert {entry.split("@")[1] for entry in before_close} == {"line-control"}, before_close
    assert [entry.split("@")[0] for entry in before_close].count("begin_call") >= 3  # two calls and a reroute (or more)
    assert set(threads[len(before_close) :]) <= {"end_call@MainThread", "end_call@line-control"}
