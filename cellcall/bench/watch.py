"""`cellcall bench watch`: a goal file dropped into the watched folder -> ATD on the modem's AT port.

The full path a dropped goal takes: inotify event, the stability window (the file must stay
unchanged for RunnerOptions.stable_s, so a half-written file never dials), parsing, the atomic
claim, then the real place_call (policy, dial ledger, outbox folder) and the real modem driver
writing `ATD<number>;` to the emulated modem's pty. The emulator timestamps the line when it
arrives. Models are loaded before the first drop (a watch runs for days, so they are warm), and
every call meets a busy line so the next drop finds the runner idle.
"""

from __future__ import annotations

import io
import json
import os
import statistics
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

from cellcall.bench.report import write_section
from cellcall.config import Settings
from cellcall.emulator.modem import ModemEmulator
from cellcall.emulator.scenario import Scenario
from cellcall.line.sim7600 import Sim7600Line, modem_options
from cellcall.watch.eventlog import EventLog
from cellcall.watch.runner import AnswerFn, PlaceFn, Runner, RunnerOptions, default_call_fns, settle_engines

BUSY = Scenario(name="bench-busy", outcome="busy", answer_delay_s=0.2)
GOALS = {  # place_call starts preparing a goal's opening line (TTS) before it dials: measure both kinds
    "with an opening line": '---\nnumber: "+14155550132"\nobjective: Benchmark drop {i}\nopening: Hello, this is a test.\n---\n',
    "without an opening line": '---\nnumber: "+14155550132"\nobjective: Benchmark drop {i}\n---\n',
}


class _EventTimes(io.StringIO):
    """The runner's JSON event log, kept to read when each goal was ready and when it was dialled."""

    def times(self, event: str, goal: str) -> float:
        """Wall-clock seconds of the first `event` for `goal` (the log has millisecond stamps)."""
        for line in self.getvalue().splitlines():
            data = json.loads(line)
            if data["event"] == event and goal in (data.get("goal"), data.get("file"), f"{data.get('goal')}.md"):
                return datetime.fromisoformat(data["time"]).timestamp()
        raise LookupError(f"no {event} event for {goal}")


def _atd_after(emulator: ModemEmulator, since: float, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for at, direction, line in list(emulator.at_log):
            if direction == "rx" and line.upper().startswith("ATD") and at >= since:
                return at
        time.sleep(0.002)
    raise TimeoutError(f"no ATD within {timeout} s of the drop")


def _wait_archived(goals: Path, name: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not (goals / "done" / f"{name}.result.json").exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{name} was not archived within {timeout} s")
        time.sleep(0.02)


def measure(settings: Settings, place: PlaceFn, answer: AnswerFn, drops: int, template: str) -> dict[str, list[float]]:
    """Milliseconds per drop: drop -> ready, ready -> dialling, dialling -> ATD, and drop -> ATD."""
    work = Path(tempfile.mkdtemp(prefix="cellcall-bench-watch-"))
    goals = work / "goals"
    goals.mkdir()
    settings.paths.outbox = str(work / "outbox")
    figures: dict[str, list[float]] = {
        "drop_to_ready_ms": [],
        "ready_to_dialling_ms": [],
        "dialling_to_atd_ms": [],
        "drop_to_atd_ms": [],
    }
    events = _EventTimes()
    before = set(threading.enumerate())
    with ModemEmulator(scenario=BUSY) as emulator:
        runner = Runner(
            settings,
            goals,
            line_factory=lambda: Sim7600Line(emulator.at_port, emulator.audio_port, modem_options(settings)),
            place=place,
            answer=answer,
            log=EventLog(events, json_lines=True),
        )
        thread = threading.Thread(target=runner.run, name="bench-runner", daemon=True)
        thread.start()
        try:
            time.sleep(2.0)  # line open, intake started
            for i in range(drops):
                name = f"drop{i:02d}"
                idle = set(threading.enumerate())
                dropped, dropped_wall = time.monotonic(), time.time()
                (goals / f"{name}.md").write_text(template.format(i=i))
                atd = _atd_after(emulator, dropped, 30.0)
                _wait_archived(goals, name, 30.0)
                ready, dialling = events.times("goal-ready", name), events.times("dialling", name)
                figures["drop_to_ready_ms"].append((ready - dropped_wall) * 1000)
                figures["ready_to_dialling_ms"].append((dialling - ready) * 1000)
                figures["dialling_to_atd_ms"].append((atd - dropped) * 1000 - (dialling - dropped_wall) * 1000)
                figures["drop_to_atd_ms"].append((atd - dropped) * 1000)
                _let_background_work_finish(10.0, keep=idle)  # the next drop finds the runner idle
        finally:
            runner.stop()
            thread.join(timeout=30)
    _let_background_work_finish(30.0, keep=before)
    return figures


def _rows(figures: dict[str, list[float]]) -> list[str]:
    rows = []
    for name, values in figures.items():
        ordered = sorted(values)
        p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
        rows.append(f"| {name} | {statistics.median(values):.0f} | {p90:.0f} | {ordered[0]:.0f} | {ordered[-1]:.0f} |")
    return rows


def render(results: dict[str, dict[str, list[float]]], stable_s: float, load: float) -> str:
    drops = len(next(iter(results.values()))["drop_to_atd_ms"])
    rows = [
        f"Goal file dropped -> `ATD` on the emulated modem's AT port, {drops} drops per goal kind, models warm, one "
        f"call at a time (real place_call and modem driver; stability window {stable_s * 1000:.0f} ms). "
        "Target: median <= 300 ms. Milliseconds.",
    ]
    for kind, figures in results.items():
        rows += ["", f"Goal {kind}:", "", "| figure | median | p90 | min | max |", "|---|---|---|---|---|", *_rows(figures)]
    rows += [
        "",
        "Drop -> ready is mostly the stability window (a file must stay unchanged that long before it is used). "
        "Ready -> dialling is the claim (rename), re-parse and dedupe. Dialling -> ATD is place_call's policy "
        "check, dial ledger, outbox folder and the driver's AT+CPCMREG=0 (the opening line is synthesised only "
        "after the ATD, while it rings). Event-log stamps are "
        "wall-clock milliseconds, the ATD stamp is the emulator's monotonic clock.",
        "",
        f"Machine: {os.cpu_count()} CPU cores, 1-minute load average {load:.1f} when the run started (other work "
        "shares the cores; the figures grow with the load).",
    ]
    return "\n".join(rows)


def _let_background_work_finish(timeout_s: float, keep: set[threading.Thread]) -> None:
    """Join threads started since `keep` (an unanswered call's opening still being synthesised, say):
    they would compete with the next measurement, and native code running in one at exit can abort it."""
    deadline = time.monotonic() + timeout_s
    for thread in set(threading.enumerate()) - keep:
        thread.join(timeout=max(0.0, deadline - time.monotonic()))


def run_bench(settings: Settings, drops: int = 20) -> str:
    """Measure both goal kinds, print-ready markdown, and the `watch` section of docs/benchmarks.md."""
    load = os.getloadavg()[0]
    settings.policy.max_calls_per_hour = settings.policy.max_calls_per_day = 2 * drops + 10
    place, answer, engines = default_call_fns(settings)
    settle_engines(engines, EventLog(io.StringIO()))
    results = {kind: measure(settings, place, answer, drops, template) for kind, template in GOALS.items()}
    markdown = render(results, RunnerOptions().stable_s, load)
    write_section(Path("docs/benchmarks.md"), "watch", markdown)
    return markdown
