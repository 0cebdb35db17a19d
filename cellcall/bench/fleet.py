"""`cellcall bench fleet`: push -> ATD through the NATS queue vs a drop into the local goals folder,
and the goals per minute three emulated lines sustain from one queue.

A real nats-server (from PATH, JetStream, loopback, a temp store and token) is started for the run
and stopped by its PID. Calls are the real place_call (models warm) meeting a busy line, so each
goal costs one real ATD and the next one finds the line free. Figures are medians over the runs,
printed with the load average (other work on the machine makes them grow) and written to the
`fleet` section of docs/benchmarks.md.
"""

from __future__ import annotations

import dataclasses
import io
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from cellcall.bench.report import write_section
from cellcall.bench.watch import BUSY, GOALS, measure
from cellcall.config import QueueSettings, Settings
from cellcall.emulator.modem import ModemEmulator
from cellcall.line.sim7600 import Sim7600Line, modem_options
from cellcall.queue import fleet
from cellcall.queue.connection import QueueClient
from cellcall.queue.messages import GoalMessage
from cellcall.queue.worker import QueueDialler
from cellcall.watch.eventlog import EventLog
from cellcall.watch.runner import AnswerFn, PlaceFn, Runner, RunnerOptions, default_call_fns, settle_engines

TEMPLATE = GOALS["without an opening line"]


class BenchError(RuntimeError):
    """The fleet bench cannot run here (no nats-server on PATH)."""


class _Server:
    """nats-server for the run: loopback only, a random token, stopped by PID."""

    def __init__(self, store: Path) -> None:
        binary = shutil.which("nats-server") or ("/usr/sbin/nats-server" if Path("/usr/sbin/nats-server").exists() else None)
        if binary is None:
            raise BenchError("nats-server is not installed (apt-get install nats-server)")
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        self.token = secrets.token_urlsafe(16)
        self.url = f"nats://127.0.0.1:{port}"
        args = [binary, "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(store), "--auth", self.token]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise BenchError("nats-server did not start")

    def queue(self, line: str) -> QueueSettings:
        return QueueSettings(url=self.url, line_name=line, token=self.token)

    def stop(self) -> None:
        os.kill(self.proc.pid, signal.SIGTERM)
        self.proc.wait(timeout=10)


class _Line:
    """One emulated line with a runner taking goals from the queue."""

    def __init__(self, settings: Settings, work: Path, queue: QueueSettings, place: PlaceFn, answer: AnswerFn) -> None:
        (work / "goals").mkdir(parents=True)
        self.emulator = ModemEmulator(scenario=BUSY).__enter__()
        self.client = QueueClient(queue)
        line_settings = dataclasses.replace(settings, queue=queue)
        emulator, client = self.emulator, self.client
        self.runner = Runner(
            line_settings,
            work / "goals",
            line_factory=lambda: Sim7600Line(emulator.at_port, emulator.audio_port, modem_options(settings)),
            place=place,
            answer=answer,
            log=EventLog(io.StringIO()),
            outbox_root=work / "outbox",
            dialler=lambda runner, wake: QueueDialler(runner, wake, client),
        )
        self.thread = threading.Thread(target=self.runner.run, name="bench-fleet-line", daemon=True)
        self.thread.start()

    def atds(self) -> list[float]:
        return [at for at, d, line in list(self.emulator.at_log) if d == "rx" and line.upper().startswith("ATD")]

    def close(self) -> None:
        self.runner.stop()
        self.thread.join(timeout=30)
        self.client.close()
        self.emulator.__exit__(None, None, None)


def _push_to_atd(server: _Server, line: _Line, runs: int) -> list[float]:
    pusher = QueueClient(server.queue("bench-pusher"))
    times = []
    try:
        for i in range(runs):
            seen = len(line.atds())
            pushed = time.monotonic()
            fleet.push(pusher, [GoalMessage(f"push{i:02d}.md", TEMPLATE.format(i=f"push {i}").encode(), "any")])
            deadline = pushed + 30
            while len(line.atds()) <= seen and time.monotonic() < deadline:
                time.sleep(0.002)
            times.append((line.atds()[seen] - pushed) * 1000)
            while len(fleet.reports(pusher, 100_000)) <= i and time.monotonic() < deadline + 30:
                time.sleep(0.05)  # its report is out: the line is idle again for the next push
    finally:
        pusher.close()
    return times


def _goals_per_minute(server: _Server, goals: int) -> float:
    pusher = QueueClient(server.queue("bench-pusher"))
    try:
        before = len(fleet.reports(pusher, 100_000))
        start = time.monotonic()
        fleet.push(pusher, [GoalMessage(f"rate{i:03d}.md", TEMPLATE.format(i=f"rate {i}").encode(), "any") for i in range(goals)])
        while len(fleet.reports(pusher, 100_000)) < before + goals and time.monotonic() - start < 600:
            time.sleep(0.2)
        return goals / ((time.monotonic() - start) / 60)
    finally:
        pusher.close()


def run_bench(settings: Settings, runs: int = 10, goals: int = 30) -> str:
    load = os.getloadavg()
    settings.policy.max_calls_per_hour = settings.policy.max_calls_per_day = 10 * (runs + goals) + 100
    place, answer, engines = default_call_fns(settings)
    settle_engines(engines, EventLog(io.StringIO()))
    local = measure(settings, place, answer, runs, TEMPLATE)["drop_to_atd_ms"]
    work = Path(tempfile.mkdtemp(prefix="cellcall-bench-fleet-"))
    server = _Server(work / "jetstream")
    lines: list[_Line] = []
    try:
        lines = [_Line(settings, work / "latency", server.queue("latency-line"), place, answer)]
        time.sleep(2.0)  # the line opens
        queued = _push_to_atd(server, lines[0], runs)
        lines.pop().close()
        lines = [_Line(settings, work / f"rate{i}", server.queue(f"rate-line-{i}"), place, answer) for i in range(3)]
        time.sleep(2.0)
        rate = _goals_per_minute(server, goals)
    finally:
        for line in lines:
            if line.thread.is_alive():
                line.close()
        server.stop()
    markdown = "\n".join(
        [
            f"Fleet bench (real nats-server on loopback, real place_call meeting a busy emulated line, models warm), "
            f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at the start, {os.cpu_count()} cores:",
            f"- push -> ATD through the queue (one line): median {statistics.median(queued):.0f} ms over {runs} "
            f"(min {min(queued):.0f}, max {max(queued):.0f})",
            f"- drop -> ATD through the local goals folder: median {statistics.median(local):.0f} ms over {runs} "
            f"(min {min(local):.0f}, max {max(local):.0f}; includes the {RunnerOptions().stable_s * 1000:.0f} ms stability window)",
            f"- goals per minute, three emulated lines, {goals} goals pushed at once: {rate:.0f}",
        ]
    )
    write_section(Path("docs/benchmarks.md"), "fleet", markdown)
    return markdown
