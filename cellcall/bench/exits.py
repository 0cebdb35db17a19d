"""`cellcall bench exits`: how fast `cellcall run` lets go when the call is over, as a real process.

The emulator runs in this process and the run reaches it only through its two pty paths (as it would
a real modem), so both ends share one monotonic clock: the far end's hang-up (NO CARRIER on the AT
port) and SIGTERM are timed against the process's exit, which comes after the reports are written.
Targets (issue 12): exit within 2 s of the far end's hang-up, a clean hang-up and exit within 10 s
of SIGTERM, whatever the load.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from cellcall.bench.calls import DEFAULT_GOAL
from cellcall.bench.load import busy_load, load_text
from cellcall.bench.report import publish
from cellcall.emulator.modem import ModemEmulator
from cellcall.emulator.scenario import load_scenario
from cellcall.trace import SpanStats, span_stats

RUN_TIMEOUT_S = 300.0
SIGTERM_AFTER_TURNS = 2  # the far end has spoken twice: the call is well under way


@dataclass
class ExitRun:
    case: str  # "remote hang-up" | "SIGTERM"
    exit_after_s: float | None  # the hang-up or the signal -> the process has exited
    hangup_after_s: float | None  # SIGTERM -> AT+CHUP reached the modem
    returncode: int | None


def _run(emu: ModemEmulator, outbox: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, CELLCALL_PATHS_OUTBOX=str(outbox), CELLCALL_LLM_BACKEND="embedded", PYTHONUNBUFFERED="1")
    command = [sys.executable, "-m", "cellcall", "run", str(DEFAULT_GOAL), "--line", "sim7600"]
    command += ["--at-port", emu.at_port, "--audio-port", emu.audio_port, "--json"]
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def remote_hangup(outbox: Path) -> ExitRun:
    with ModemEmulator(scenario=load_scenario("hangup-mid-sentence")) as emu:
        proc = _run(emu, outbox)
        code = proc.wait(RUN_TIMEOUT_S)
        exited = time.monotonic()
        emu.done.wait(2.0)
        ended = emu.metrics.ended_at if emu.metrics.ended_by == "far_end" else None
    return ExitRun("remote hang-up", exited - ended if ended is not None else None, None, code)


def sigterm(outbox: Path) -> ExitRun:
    with ModemEmulator(scenario=load_scenario("dentist")) as emu:
        proc = _run(emu, outbox)
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while len(emu.metrics.turns) < SIGTERM_AFTER_TURNS and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(RUN_TIMEOUT_S)
        exited = time.monotonic()
        emu.done.wait(2.0)
        hung_up = emu.metrics.ended_at if emu.metrics.ended_by == "host" else None
    return ExitRun("SIGTERM", exited - sent, hung_up - sent if hung_up is not None else None, code)


def run_bench(runs: int, load: int = 0, doc: Path = Path("docs/benchmarks.md")) -> str:
    results: list[ExitRun] = []
    before = load_text()
    with tempfile.TemporaryDirectory(prefix="cellcall-bench-") as folder, busy_load(load):
        for _ in range(runs):
            results.append(remote_hangup(Path(folder)))
            results.append(sigterm(Path(folder)))
        after = load_text()
    return publish(doc, "exits", render(results), load, before, after)


def render(results: list[ExitRun]) -> str:
    def stats(case: str, attribute: str) -> SpanStats | None:
        return span_stats(getattr(r, attribute) * 1000 for r in results if r.case == case and getattr(r, attribute) is not None)

    remote, term, chup = (
        stats("remote hang-up", "exit_after_s"),
        stats("SIGTERM", "exit_after_s"),
        stats("SIGTERM", "hangup_after_s"),
    )
    codes = ", ".join(f"{r.case}: {r.returncode}" for r in results)
    return "\n".join(
        [
            f"`cellcall run` as a process on the emulated SIM7600 (pty paths), {len(results)} calls; exit codes {codes}.",
            "",
            "| figure | p50 | p90 | n | target |",
            "|---|---|---|---|---|",
            f"| far end hangs up -> process exited (reports written) | {_ms(remote, 'p50')} | {_ms(remote, 'p90')} | {remote.n if remote else 0} | <= 2000 ms |",
            f"| SIGTERM -> AT+CHUP at the modem | {_ms(chup, 'p50')} | {_ms(chup, 'p90')} | {chup.n if chup else 0} | |",
            f"| SIGTERM -> process exited (reports written) | {_ms(term, 'p50')} | {_ms(term, 'p90')} | {term.n if term else 0} | <= 10000 ms |",
        ]
    )


def _ms(stats: SpanStats | None, key: str) -> str:
    return "-" if stats is None else f"{getattr(stats, key):.0f} ms"
