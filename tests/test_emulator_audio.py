"""The emulated modem's PCM port: real-time downlink in unaligned chunks, uplink back-pressure, echo."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import numpy as np
import pytest
from emulator_client import AtClient, AudioClient, tone

from cellcall.emulator.modem import Faults, ModemEmulator
from cellcall.emulator.scenario import Echo, Scenario

pytestmark = pytest.mark.slow


def start_call(faults: Faults | None = None, scenario: Scenario | None = None) -> tuple[ModemEmulator, AtClient]:
    modem = ModemEmulator(scenario or Scenario(answer_delay_s=0.2), faults=faults)
    modem.start()
    at = AtClient(modem.at_port)
    at.wait_for("^PB DONE$", 3)
    at.command("ATE0")
    at.command("ATD+14155550132;")
    at.wait_for("^VOICE CALL: BEGIN$", 3)
    time.sleep(0.15)
    assert at.command("AT+CPCMREG=1") == ["OK"]
    return modem, at


@pytest.fixture
def call(request: pytest.FixtureRequest) -> Iterator[tuple[ModemEmulator, AtClient]]:
    modem, at = start_call(*getattr(request, "param", ()))
    yield modem, at
    at.close()
    modem.stop()


def byte_rate(chunks: list[tuple[float, int]], skip_s: float = 0.5) -> float:
    """Least-squares slope of cumulative bytes over read times (robust to scheduling jitter)."""
    times = np.array([t for t, _ in chunks])
    total = np.cumsum([n for _, n in chunks])
    keep = times >= times[0] + skip_s
    slope, _ = np.polyfit(times[keep] - times[keep][0], total[keep], 1)
    return float(slope)


def measure_downlink(modem: ModemEmulator, seconds: float) -> AudioClient:
    audio = AudioClient(modem.audio_port)
    time.sleep(seconds)
    audio.close()
    dropped = modem._pump.dropped if modem._pump else 0
    assert dropped == 0, f"the test's reader was starved (CPU contention): the modem dropped {dropped} B"
    return audio


def test_downlink_real_time_in_unaligned_chunks(call: tuple[ModemEmulator, AtClient]) -> None:
    modem, _ = call
    audio = measure_downlink(modem, 4.5)
    rate = byte_rate(audio.chunks)
    print(f"downlink rate {rate:.1f} B/s over {len(audio.chunks)} reads")
    assert abs(rate - 16000) / 16000 < 0.01
    sizes = {n for _, n in audio.chunks}
    assert any(n % 2 for n in sizes), "expected odd-sized reads (not sample aligned)"
    assert any(n % 320 for n in sizes), "expected reads that are not whole 20 ms frames"
    assert modem.metrics.downlink[: len(audio.received)] == audio.received  # byte-exact, nothing lost


@pytest.mark.parametrize("call", [(Faults(volte_16k=True),)], indirect=True)
def test_volte_16k_despite_cpcmfrm_readback(call: tuple[ModemEmulator, AtClient]) -> None:
    modem, at = call
    assert at.command("AT+CPCMFRM?") == ["+CPCMFRM: 0", "OK"]
    rate = byte_rate(measure_downlink(modem, 3.0).chunks)
    print(f"VoLTE downlink rate {rate:.1f} B/s")
    assert abs(rate - 32000) / 32000 < 0.01


def test_uplink_back_pressure_at_exactly_real_time(call: tuple[ModemEmulator, AtClient]) -> None:
    modem, _ = call
    fd = os.open(modem.audio_port, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    try:
        time.sleep(0.5)  # the route starts a few hundred ms after CPCMREG=1
        block = tone(20)
        total = 0
        full: list[tuple[float, int]] = []  # (time, bytes accepted so far) whenever the port was full
        end = time.monotonic() + 5.0
        while time.monotonic() < end:
            try:
                total += os.write(fd, block)
            except BlockingIOError:
                # The port is full: the host must wait, exactly as on the modem. Sampling only at these
                # moments keeps the port's fill level out of the figure: what was accepted = what was consumed.
                full.append((time.monotonic(), total))
                time.sleep(0.005)
    finally:
        os.close(fd)
    assert len(full) > 100, "writing as fast as possible must fill the port"
    increments = [(t, n - previous) for (t, n), (_, previous) in zip(full, [(0.0, full[0][1])] + full, strict=False)]
    rate = byte_rate(increments, skip_s=0.5)
    print(f"uplink accepted at {rate:.1f} B/s once the port was full ({len(full)} refused writes)")
    assert abs(rate - 16000) / 16000 < 0.02


@pytest.mark.parametrize("call", [(Faults(uplink_stall_after_s=1.0),)], indirect=True)
def test_uplink_stall_is_one_way_audio(call: tuple[ModemEmulator, AtClient]) -> None:
    modem, _ = call
    fd = os.open(modem.audio_port, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    downlink = AudioClient(modem.audio_port)
    try:
        time.sleep(1.3)  # past the stall
        written = 0
        with pytest.raises(BlockingIOError):
            for _ in range(10_000):
                written += os.write(fd, tone(100))
        size_before = len(modem.metrics.uplink)
        time.sleep(0.5)
        assert len(downlink.received) > 0
    finally:
        downlink.close()
        os.close(fd)
    played = np.frombuffer(bytes(modem.metrics.uplink[size_before:]), dtype="<i2")
    assert played.size > 0 and not played.any(), "after the stall the far end hears only silence"
    assert written < 200_000, "nothing drains the port any more"


def test_echo_mixes_the_uplink_back_late_and_quiet() -> None:
    scenario = Scenario(answer_delay_s=0.2, echo=Echo(gain_db=-18, delay_ms=60))
    modem, at = start_call(scenario=scenario)
    audio = AudioClient(modem.audio_port, lead_ms=120)
    try:
        time.sleep(0.6)
        audio.play(tone(1000, level=0.5))
        time.sleep(2.0)
    finally:
        audio.close()
        at.close()
        modem.stop()
    up = np.frombuffer(bytes(modem.metrics.uplink), dtype="<i2").astype(np.float64)
    down = np.frombuffer(bytes(modem.metrics.downlink[: len(modem.metrics.downlink) // 2 * 2]), dtype="<i2")
    down = down.astype(np.float64)[: up.size]
    start_up = int(np.argmax(np.abs(up) > 1000))
    start_down = int(np.argmax(np.abs(down) > 1000 * 10 ** (-18 / 20)))
    delay_ms = (start_down - start_up) / 8
    level_db = 20 * np.log10(np.abs(down).max() / np.abs(up).max())
    print(f"echo delay {delay_ms:.1f} ms, level {level_db:.1f} dB")
    assert 55 <= delay_ms <= 65
    assert -19 <= level_db <= -17


def test_volte_far_end_speech_keeps_its_length_and_pitch() -> None:
    from emulator_client import loud_spans

    from cellcall.emulator.scenario import ScenarioLine, Sound, Tone

    line = ScenarioLine(sound=Sound(tone=Tone(hz=500, ms=400)), pause_s=2.0)  # well after the route is up
    modem, at = start_call(Faults(volte_16k=True), Scenario(answer_delay_s=0.2, lines=(line,)))
    audio = AudioClient(modem.audio_port, rate=16000)
    try:
        time.sleep(3.0)
    finally:
        audio.close()
        at.close()
        modem.stop()
    spans = loud_spans(bytes(audio.received), 16000)
    assert len(spans) == 1
    assert spans[0][1] - spans[0][0] == pytest.approx(0.4, abs=0.03)
    received = bytes(audio.received)
    pcm = np.frombuffer(received[: len(received) // 2 * 2], dtype="<i2").astype(np.float64)  # reads are unaligned
    start = int(spans[0][0] * 16000) + 800
    window = pcm[start : start + 3200]
    peak_hz = np.argmax(np.abs(np.fft.rfft(window))) * 16000 / window.size
    assert peak_hz == pytest.approx(500, abs=10)


def test_a_host_that_falls_behind_in_odd_byte_counts_never_shifts_the_samples(call: tuple[ModemEmulator, AtClient]) -> None:
    """Short, odd-sized uplink writes with gaps: the modem plays silence for the gaps, never half a sample."""
    modem, _ = call
    fd = os.open(modem.audio_port, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    try:
        time.sleep(0.5)  # the route starts a few hundred ms after CPCMREG=1
        stream = np.full(8000, 0x0102, dtype="<i2").tobytes()
        sent = 0
        for size in (161, 77, 333, 41, 1, 255) * 8:  # odd pieces, 30 ms apart: the modem keeps running short
            sent += os.write(fd, stream[sent : sent + size])
            time.sleep(0.03)
        time.sleep(0.3)
    finally:
        os.close(fd)
    uplink = bytes(modem.metrics.uplink)
    values = set(np.unique(np.frombuffer(uplink[: len(uplink) // 2 * 2], dtype="<i2")).tolist())
    assert 0x0102 in values, "the far end heard none of the host's audio"
    assert values <= {0, 0x0102}, f"the far end heard byte-shifted samples: {sorted(values)[:8]}"


def test_downlink_bytes_the_host_did_not_read_are_dropped_in_whole_samples(tmp_path) -> None:
    """A host that stops reading: the modem drops what does not fit, but only whole samples."""
    import wave

    from cellcall.emulator.scenario import ScenarioLine, Sound

    wav = tmp_path / "dc.wav"
    with wave.open(str(wav), "wb") as out:
        out.setnchannels(1), out.setsampwidth(2), out.setframerate(8000)
        out.writeframes(np.full(8000 * 6, 0x0102, dtype="<i2").tobytes())
    scenario = Scenario(answer_delay_s=0.2, lines=(ScenarioLine(sound=Sound(wav=wav)),))
    modem, at = start_call(scenario=scenario)
    fd = os.open(modem.audio_port, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    received = bytearray()
    try:
        time.sleep(4.0)  # nothing read: the pty fills, the modem must drop
        end = time.monotonic() + 1.5
        while time.monotonic() < end:
            try:
                received += os.read(fd, 333)
            except BlockingIOError:
                time.sleep(0.01)
    finally:
        os.close(fd)
        at.close()
        modem.stop()
    values = set(np.unique(np.frombuffer(bytes(received[: len(received) // 2 * 2]), dtype="<i2")).tolist())
    assert 0x0102 in values, "the far end's audio never arrived"
    assert values <= {0, 0x0102}, f"dropped bytes shifted the samples: {sorted(values)[:8]}"
