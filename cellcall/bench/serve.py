"""`cellcall bench serve`: a goal POSTed to `cellcall serve` -> 202, -> ATD on the modem, and how late
the event stream tells a reader that the runner dialled.

The same runner, real place_call (models warm) and emulated modem as `bench watch`, with the API
server in front on a loopback port, a real HTTP client posting and a real reader on /v1/events.
Every call meets a busy line, so the next post finds the runner idle.
"""

from __future__ import annotations

import io
import json
import os
import secrets
import socket
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

import httpx

from cellcall.bench.report import write_section
from cellcall.bench.watch import BUSY, GOALS, _atd_after, _EventTimes, _let_background_work_finish, _rows
from cellcall.config import Settings
from cellcall.emulator.modem import ModemEmulator
from cellcall.line.sim7600 import Sim7600Line, modem_options
from cellcall.serve.server import ApiServer, context_for
from cellcall.watch.eventlog import EventLog
from cellcall.watch.runner import AnswerFn, PlaceFn, Runner, default_call_fns, settle_engines


class _Reader(threading.Thread):
    """Reads /v1/events; keeps (event name, data, wall-clock time it arrived)."""

    def __init__(self, url: str, token: str) -> None:
        super().__init__(name="bench-events", daemon=True)
        self.url, self.token = url, token
        self.seen: list[tuple[str, dict, float]] = []
        self.start()

    def run(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        try:
            with httpx.stream("GET", self.url + "/v1/events", headers=headers, timeout=httpx.Timeout(10, read=None)) as r:
                name = ""
                for line in r.iter_lines():
                    if line.startswith("event: "):
                        name = line[7:]
                    elif line.startswith("data: "):
                        self.seen.append((name, json.loads(line[6:]), time.time()))
        except httpx.HTTPError:
            pass  # the server stopped

    def arrival(self, name: str, call_id: str, timeout: float) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for seen, data, at in list(self.seen):
                if seen == name and data.get("call_id") == call_id:
                    return at
            time.sleep(0.005)
        raise TimeoutError(f"no {name} event for {call_id} within {timeout} s")


def measure(settings: Settings, place: PlaceFn, answer: AnswerFn, posts: int, template: str) -> dict[str, list[float]]:
    """Milliseconds per post: post -> 202, post -> ATD, runner's dialling log line -> the reader has it."""
    work = Path(tempfile.mkdtemp(prefix="cellcall-bench-serve-"))
    (work / "goals").mkdir()
    settings.paths.outbox = str(work / "outbox")
    settings.api.token = secrets.token_hex(16)
    figures: dict[str, list[float]] = {"post_to_202_ms": [], "post_to_atd_ms": [], "dialling_to_reader_ms": []}
    events = _EventTimes()
    before = set(threading.enumerate())
    with ModemEmulator(scenario=BUSY) as emulator:
        runner = Runner(
            settings,
            work / "goals",
            line_factory=lambda: Sim7600Line(emulator.at_port, emulator.audio_port, modem_options(settings)),
            place=place,
            answer=answer,
            log=EventLog(events, json_lines=True),
        )
        server = ApiServer(context_for(settings, runner), socket.create_server(("127.0.0.1", 0))).start()
        thread = threading.Thread(target=runner.run, name="bench-runner", daemon=True)
        thread.start()
        reader = _Reader(server.url, settings.api.token)
        client = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {settings.api.token}"}, timeout=30)
        try:
            time.sleep(2.0)  # line open, intake started, reader connected
            for i in range(posts):
                idle = set(threading.enumerate())
                posted = time.monotonic()
                answer_ = client.post("/v1/calls", content=template.format(i=i), headers={"Content-Type": "text/markdown"})
                figures["post_to_202_ms"].append((time.monotonic() - posted) * 1000)
                call_id = answer_.json()["call_id"]
                figures["post_to_atd_ms"].append((_atd_after(emulator, posted, 30.0) - posted) * 1000)
                received = reader.arrival("dialling", call_id, 30.0)
                logged = _logged(events, "dialling", call_id)
                figures["dialling_to_reader_ms"].append((received - logged) * 1000)
                reader.arrival("ended", call_id, 30.0)
                _let_background_work_finish(10.0, keep=idle | {reader})
        finally:
            client.close()
            runner.stop()
            thread.join(timeout=30)
            server.stop()
    _let_background_work_finish(30.0, keep=before)
    return figures


def _logged(events: _EventTimes, event: str, call_id: str) -> float:
    """Wall-clock time of the runner's log line for the call's `event` (its goal name is the call id)."""
    for line in events.getvalue().splitlines():
        data = json.loads(line)
        if data["event"] == event and data.get("goal") == call_id:
            return datetime.fromisoformat(data["time"]).timestamp()
    raise LookupError(f"no {event} log line for {call_id}")


def render(results: dict[str, dict[str, list[float]]], load: float) -> str:
    posts = len(next(iter(results.values()))["post_to_atd_ms"])
    rows = [
        f"A goal POSTed to `cellcall serve` (loopback, token auth) -> 202, and -> `ATD` on the emulated modem's AT port; "
        f"and the runner's `dialling` log line -> a reader of /v1/events has the event. {posts} posts per goal kind, "
        "models warm, one call at a time (real place_call and modem driver). Milliseconds.",
    ]
    for kind, figures in results.items():
        rows += ["", f"Goal {kind}:", "", "| figure | median | p90 | min | max |", "|---|---|---|---|---|", *_rows(figures)]
    rows += [
        "",
        "Post -> ATD includes the inbox's stability window, as for a dropped file (the API writes the goal into "
        "the folder). The event's delay is log line (millisecond stamp) to arrival at the reader.",
        "",
        f"Machine: {os.cpu_count()} CPU cores, 1-minute load average {load:.1f} when the run started.",
    ]
    return "\n".join(rows)


def run_bench(settings: Settings, posts: int = 10) -> str:
    """Measure both goal kinds; print-ready markdown, also the `serve` section of docs/benchmarks.md."""
    load = os.getloadavg()[0]
    settings.policy.max_calls_per_hour = settings.policy.max_calls_per_day = 2 * posts + 10
    place, answer, engines = default_call_fns(settings)
    settle_engines(engines, EventLog(io.StringIO()))
    results = {kind: measure(settings, place, answer, posts, template) for kind, template in GOALS.items()}
    markdown = render(results, load)
    write_section(Path("docs/benchmarks.md"), "serve", markdown)
    return markdown
