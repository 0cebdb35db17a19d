"""Helpers for the `cellcall serve` tests: a runner plus the real API server (uvicorn) on a loopback port.

`Served` starts a Runner in a thread (runner_support.RunnerThread) on the emulated modem and an
ApiServer on 127.0.0.1 with a free port, and gives a real httpx client for it. `TalkingCalls` is
LineOnlyCalls (a real dial on the emulator's ptys, no models) that, once the far end answers, says
a scripted conversation: each turn is appended to the outbox and reported to the observer exactly
as the voice loop's listener does, so transcripts, latency rows and runner events are the real
files and events, only the words are scripted.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from runner_support import LineOnlyCalls, RunnerThread

from cellcall.config import Settings
from cellcall.emulator.modem import ModemEmulator
from cellcall.emulator.scenario import Scenario
from cellcall.goal import Goal
from cellcall.line import Line
from cellcall.line.sim7600 import Sim7600Line
from cellcall.outbox import CallOutbox
from cellcall.record import CallRecord, Direction, Speaker, Turn, TurnLatency
from cellcall.serve.server import ApiServer, context_for
from cellcall.watch.runner import RunnerOptions

TOKEN = "test-token-" + "7" * 24
ANSWER = Scenario(name="quick-answer", answer_delay_s=0.2)
BUSY = Scenario(name="quick-busy", outcome="busy", answer_delay_s=0.2)
SCRIPT = (
    (Speaker.AGENT, "Hello, this is Alex calling for Sam Taylor about a cleaning."),
    (Speaker.CALLER, "Sure, we have Friday at nine with Dr Okafor."),
    (Speaker.AGENT, "Friday at nine works, thank you. Goodbye."),
)


def serve_settings(tmp_path: Path, token: str = TOKEN, rate: int = 6000) -> Settings:
    settings = Settings()
    settings.paths.outbox = str(tmp_path / "outbox")
    settings.policy.max_calls_per_hour = 1000
    settings.policy.max_calls_per_day = 1000
    settings.api.token = token
    settings.api.rate_per_minute = rate
    return settings


class TalkingCalls(LineOnlyCalls):
    """A real dial; when answered, the scripted turns (with latency rows), then hold until `hold_s` or a hang-up."""

    def __init__(self, outbox_root: Path, hold_s: float = 0.3, gap_s: float = 0.05, script=SCRIPT) -> None:
        super().__init__(outbox_root, hold_s)
        self.gap_s = gap_s
        self.script = script
        self._live: tuple[CallOutbox, object, CallRecord] | None = None  # the call in progress (runner thread only)
        self.spoken = threading.Event()  # set once the whole script was said on the current call

    def _start(self, goal: Goal, number: str | None, direction: Direction, observer: object):  # type: ignore[no-untyped-def]
        outbox, record = super()._start(goal, number, direction, observer)
        record.goal_path = str(goal.path)  # as place_call records it: the API finds the call id in it
        self._live = (outbox, observer, record)
        self.spoken.clear()
        return outbox, record

    def _hold(self, line: Line, stop: threading.Event):  # type: ignore[no-untyped-def]
        assert self._live is not None
        outbox, observer, record = self._live
        observer.on_state("answered")  # type: ignore[attr-defined]
        for index, (speaker, text) in enumerate(self.script):
            if stop.wait(self.gap_s):
                break
            turn = Turn(index + 1, speaker, text, 0.8 * index)  # numbered from 1, as the voice loop numbers them
            outbox.append_turn(turn)
            record.turns.append(turn)
            observer.on_turn(turn)  # type: ignore[attr-defined]
            if speaker is Speaker.AGENT:
                latency = TurnLatency(index + 1, stt_ms=120.0 + index, first_audio_ms=640.0 + 100 * index)
                outbox.append_latency(latency)
                record.latency.append(latency)
                observer.on_latency(latency)  # type: ignore[attr-defined]
        else:
            self.spoken.set()
        return super()._hold(line, stop)


def free_socket() -> socket.socket:
    return socket.create_server(("127.0.0.1", 0))


class Served:
    """A runner and its API; `client` is an httpx client with the token, `url` the base URL."""

    def __init__(self, run: RunnerThread, server: ApiServer, token: str) -> None:
        self.run = run
        self.server = server
        self.url = server.url
        self.client = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=10)

    @property
    def runner(self):  # type: ignore[no-untyped-def]
        return self.run.runner

    def post_goal(self, text: str, key: str | None = None, **headers: str) -> httpx.Response:
        sent = {"Content-Type": "text/markdown", **headers}
        if key:
            sent["Idempotency-Key"] = key
        return self.client.post("/v1/calls", content=text.encode(), headers=sent)

    def call(self, call_id: str) -> dict:
        response = self.client.get(f"/v1/calls/{call_id}")
        assert response.status_code == 200, response.text
        return response.json()


@contextmanager
def served(
    settings: Settings,
    goals: Path,
    place: Callable,
    line_factory: Callable[[], Line] | None = None,
    scenario: Scenario = ANSWER,
    options: RunnerOptions | None = None,
) -> Iterator[tuple[Served, ModemEmulator]]:
    """A runner on an emulated modem (or `line_factory`) and the API for it; both stopped on exit."""
    goals.mkdir(exist_ok=True)
    with ModemEmulator(scenario=scenario) as emulator:
        factory = line_factory or (lambda: Sim7600Line(emulator.at_port, emulator.audio_port))
        run = RunnerThread(settings, goals, factory, place, options=options or RunnerOptions(rescan_s=0.5, stable_s=0.05))
        server = ApiServer(context_for(settings, run.runner), free_socket()).start()
        api = Served(run, server, settings.api.token)
        try:
            with run:
                yield api, emulator
        finally:
            api.client.close()
            server.stop()
