"""`cellcall bench line`: the modem driver's real-time figures on the emulated SIM7600G-H, medians over calls.

Each call measures, from the emulator's clocks where it can: BEGIN -> ANSWERED (the CPCMREG dance
plus downlink rate detection), the uplink byte rate while fed, underruns the modem saw, how fast
clear_tx silences the agent on the network, and how fast a vanished port becomes an ERROR event.
"""

from __future__ import annotations

import os
import statistics
import time
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from cellcall.bench.report import write_section
from cellcall.emulator.modem import Faults, ModemEmulator
from cellcall.emulator.scenario import Scenario
from cellcall.line import LineEvent, LineEventKind
from cellcall.line.sim7600 import Sim7600Line

K = LineEventKind
CHUNK_S = 0.1


@dataclass
class LineRun:
    answer_ms: float  # VOICE CALL: BEGIN written by the modem -> ANSWERED event
    uplink_bps: float  # bytes the port took per second while the writer was fed (ideal 16000)
    underruns: int  # gaps the modem found in the agent's audio
    stop_ms: float  # clear_tx -> last agent audio played to the network
    error_ms: float  # ports vanished -> ERROR event
    max_gap_ms: float  # longest the OS kept the uplink writer from running (beyond ~40 ms: underruns)


def _wait(line: Sim7600Line, kind: LineEventKind, timeout: float) -> LineEvent:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        event = line.next_event(0.05)
        if event is not None and event.kind is kind:
            return event
    raise RuntimeError(f"no {kind.value} event within {timeout:g} s")


def _tone(seconds: float, rate: int) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    return (np.sin(2 * np.pi * 440.0 * t) * 8000).astype("<i2").tobytes()


def measure_call(seconds: float) -> LineRun:
    """One emulated call: answer, talk for `seconds`, barge-in, then the ports vanish."""
    faults = Faults(vanish_after_s=seconds + 3.0, reenumerate_s=60.0)
    with ModemEmulator(scenario=Scenario(name="bench-line", answer_delay_s=0.3), faults=faults) as emulator:
        line = Sim7600Line(emulator.at_port, emulator.audio_port)
        try:
            line.open()
            line.dial("+14155550132")
            answered = _wait(line, K.ANSWERED, 10)
            begin = next(t for t, way, text in emulator.at_log if way == "tx" and text == "VOICE CALL: BEGIN")
            writer = line.uplink
            if writer is None:
                raise RuntimeError("the call was answered but no uplink writer runs")
            speech = _tone(seconds + 1.0, line.sample_rate)
            step = int(CHUNK_S * line.sample_rate) * 2
            for i in range(0, len(speech), step):
                line.write(speech[i : i + step])
            sent0, t0 = writer.bytes_sent, time.monotonic()
            time.sleep(seconds)
            uplink_bps = (writer.bytes_sent - sent0) / (time.monotonic() - t0)
            cleared_at = time.monotonic()
            line.clear_tx()
            max_gap_ms = writer.max_gap_s * 1000
            error = _wait(line, K.ERROR, seconds + 10)
        finally:
            line.close()
        # The ports vanish a moment before the emulator ends the lost call and scores its uplink.
        if not emulator.done.wait(10):
            raise RuntimeError("the emulator never ended the lost call")
        vanished_at = emulator.vanished_at
        if vanished_at is None:
            raise RuntimeError("the driver reported ERROR but the emulator's ports never vanished")
        metrics = emulator.metrics
        spoken = max(metrics.utterances, key=lambda u: u.end - u.start)
        return LineRun(
            answer_ms=(answered.at - begin) * 1000,
            uplink_bps=uplink_bps,
            underruns=metrics.uplink_underruns,
            stop_ms=(spoken.end - cleared_at) * 1000,
            error_ms=(error.at - vanished_at) * 1000,
            max_gap_ms=max_gap_ms,
        )


def format_runs(runs: list[LineRun], seconds: float, load: float) -> str:
    names = [f.name for f in fields(LineRun)]
    header = "| figure | median | runs |\n|---|---|---|\n"
    rows = "".join(
        f"| {name} | {statistics.median(getattr(r, name) for r in runs):.1f} | "
        + ", ".join(f"{getattr(r, name):.1f}" for r in runs)
        + " |\n"
        for name in names
    )
    return (
        f"Modem driver on the emulated SIM7600G-H: {len(runs)} calls, uplink fed for {seconds:g} s each "
        f"(8 kHz, ideal 16000 B/s); {os.cpu_count()} CPUs, load average {load:.1f} when the runs began.\n\n" + header + rows
    )


def run_line_bench(calls: int = 3, seconds: float = 5.0, out: Path = Path("docs/benchmarks.md")) -> str:
    """Measure `calls` calls, write the `line` section of the benchmarks file, return the table."""
    if calls < 1 or seconds <= 0:
        raise ValueError("need at least one call of a positive length")
    load = os.getloadavg()[0]
    text = format_runs([measure_call(seconds) for _ in range(calls)], seconds, load)
    write_section(out, "line", text)
    return text
