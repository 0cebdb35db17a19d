"""Fleet test helpers: a worker (runner + emulated line + queue dialler) in a thread, and report reading."""

from __future__ import annotations

from pathlib import Path

from runner_support import LineOnlyCalls, RunnerThread

from cellcall.config import QueueSettings, Settings
from cellcall.emulator.modem import ModemEmulator
from cellcall.emulator.scenario import Scenario
from cellcall.line.sim7600 import Sim7600Line
from cellcall.queue import fleet
from cellcall.queue.connection import QueueClient
from cellcall.queue.worker import QueueDialler
from cellcall.watch.runner import PlaceFn, RunnerOptions

BUSY = Scenario(name="quick-busy", outcome="busy", answer_delay_s=0.1)
ANSWERED = Scenario(name="answers", outcome="answer", answer_delay_s=0.1)


def worker_settings(root: Path, queue: QueueSettings) -> Settings:
    settings = Settings()
    settings.paths.outbox = str(root / "outbox")
    settings.policy.max_calls_per_hour = 1000
    settings.policy.max_calls_per_day = 1000
    settings.queue = queue
    return settings


class Worker:
    """One appliance: its own emulated modem, goals folder, outbox, runner thread and queue client."""

    def __init__(
        self, root: Path, queue: QueueSettings, scenario: Scenario = BUSY, hold_s: float = 0.2, place: PlaceFn | None = None
    ) -> None:
        root.mkdir(parents=True, exist_ok=True)
        (root / "goals").mkdir(exist_ok=True)
        self.root = root
        self.settings = worker_settings(root, queue)
        self.emulator = ModemEmulator(scenario=scenario)
        self.seam = LineOnlyCalls(root / "outbox", hold_s=hold_s)
        self.place: PlaceFn = place or self.seam  # the real place_call for the end-to-end test
        self.client: QueueClient | None = None
        self.thread: RunnerThread | None = None

    def __enter__(self) -> Worker:
        self.emulator.__enter__()
        self.client = QueueClient(self.settings.queue)
        client = self.client
        emu = self.emulator
        self.thread = RunnerThread(
            self.settings,
            self.root / "goals",
            lambda: Sim7600Line(emu.at_port, emu.audio_port),
            self.place,
            options=RunnerOptions(rescan_s=0.5, stable_s=0.05),
            dialler=lambda runner, wake: QueueDialler(runner, wake, client),
        )
        self.thread.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self.thread is not None:
                self.thread.stop()
        finally:
            if self.client is not None:
                self.client.close()
            self.emulator.__exit__(None, None, None)


def report_rows(client: QueueClient) -> list[dict[str, object]]:
    return fleet.reports(client, limit=10_000)
