"""Helpers for the watch-runner tests: a runner in a thread, goal files, and line-only calls.

`LineOnlyCalls` fills the runner's call seams with real but model-free calls: it creates the outbox
folder, dials through the real line (the modem driver on the emulator's ptys), waits for busy, no
answer or answer, holds an answered call briefly, hangs up and writes the reports. It keeps the
folder-mechanics tests real (real ATD on a real pty) and fast; place_call itself is exercised by
the end-to-end tests with the real models.
"""

from __future__ import annotations

import io
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from cellcall.call import CallResult
from cellcall.config import Settings
from cellcall.goal import Goal
from cellcall.line import Line, LineEventKind
from cellcall.outbox import CallOutbox
from cellcall.record import CallRecord, CallStatus, Direction
from cellcall.watch.eventlog import EventLog
from cellcall.watch.runner import Runner, RunnerOptions

OUTCOMES = {
    LineEventKind.BUSY: CallStatus.BUSY,
    LineEventKind.NO_ANSWER: CallStatus.NO_ANSWER,
    LineEventKind.ERROR: CallStatus.FAILED,
}


def goal_text(number: str = "+14155550132", objective: str = "Book a table", extra: str = "") -> str:
    return f'---\nnumber: "{number}"\nobjective: {objective}\n{extra}---\n## Context\nA test goal.\n'


class LineOnlyCalls:
    """Call seams that really dial and answer on the line; they record what they were asked to do."""

    def __init__(self, outbox_root: Path, hold_s: float = 0.3) -> None:
        self.outbox_root = outbox_root
        self.hold_s = hold_s
        self.calls: list[str] = []
        self.answered: list[str | None] = []
        self.lock = threading.Lock()

    def __call__(self, goal: Goal, line: Line, observer: object, stop: threading.Event) -> CallResult:
        with self.lock:
            self.calls.append(goal.name)
        outbox, record = self._start(goal, goal.number, Direction.OUTBOUND, observer)
        line.dial(goal.number or "")
        return self._finish(line, stop, outbox, record)

    def answer(self, goal: Goal, line: Line, caller: str | None, observer: object, stop: threading.Event) -> CallResult:
        """The inbound seam: ATA, hold, hang up, report with direction inbound."""
        with self.lock:
            self.answered.append(caller)
        outbox, record = self._start(goal, caller, Direction.INBOUND, observer)
        line.answer()
        return self._finish(line, stop, outbox, record)

    def _start(self, goal: Goal, number: str | None, direction: Direction, observer: object) -> tuple[CallOutbox, CallRecord]:
        record = CallRecord(
            uuid.uuid4().hex[:12], goal.name, number, direction, CallStatus.FAILED, datetime.now(UTC), objective=goal.objective
        )
        outbox = CallOutbox.create(self.outbox_root, record)
        observer.on_outbox(outbox.path)  # type: ignore[attr-defined]
        return outbox, record

    def _finish(self, line: Line, stop: threading.Event, outbox: CallOutbox, record: CallRecord) -> CallResult:
        record.status, record.hangup_reason = self._outcome(line, stop)
        if record.status is not CallStatus.BUSY and record.status is not CallStatus.NO_ANSWER:
            line.hangup()
        return CallResult(record, outbox.path, outbox.finalize(record))

    def _outcome(self, line: Line, stop: threading.Event) -> tuple[CallStatus, str]:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not stop.is_set():
            event = line.next_event(0.05)
            if event is None:
                continue
            if event.kind in OUTCOMES:
                return OUTCOMES[event.kind], event.kind.value
            if event.kind is LineEventKind.ANSWERED:
                return self._hold(line, stop)
        return CallStatus.INTERRUPTED if stop.is_set() else CallStatus.NO_ANSWER, "test seam gave up"

    def _hold(self, line: Line, stop: threading.Event) -> tuple[CallStatus, str]:
        end = time.monotonic() + self.hold_s
        while time.monotonic() < end and not stop.is_set():
            event = line.next_event(0.05)
            if event is not None and event.kind is LineEventKind.ERROR:
                return CallStatus.FAILED, f"line error: {event.detail}"
            if event is not None and event.kind is LineEventKind.REMOTE_HANGUP:
                return CallStatus.COMPLETED, "remote hang-up"
        return (CallStatus.INTERRUPTED, "stopped") if stop.is_set() else (CallStatus.COMPLETED, "held and hung up")


def never_answer(*_: object) -> CallResult:
    raise AssertionError("this test expects no inbound call to be answered")


class RunnerThread:
    """A Runner running in a background thread, its log captured; stop() joins it."""

    def __init__(
        self,
        settings: Settings,
        goals: Path,
        line_factory: Callable[[], Line],
        place,
        answer=never_answer,
        options: RunnerOptions | None = None,
        dialler=None,
    ) -> None:
        self.log_stream = io.StringIO()
        self.runner = Runner(
            settings,
            goals,
            line_factory=line_factory,
            place=place,
            answer=answer,
            log=EventLog(self.log_stream),
            options=options or RunnerOptions(rescan_s=0.5),
            outbox_root=Path(settings.paths.outbox),
            dialler=dialler,
        )
        self.thread = threading.Thread(target=self.runner.run, name="test-runner", daemon=True)

    def __enter__(self) -> RunnerThread:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self.runner.stop()
        self.thread.join(timeout=30)
        assert not self.thread.is_alive(), "the runner did not stop"

    def events(self, name: str) -> list[str]:
        return [line for line in self.log_stream.getvalue().splitlines() if line.split(" ")[1:2] == [name]]


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def join_new_threads(before: set[threading.Thread], timeout: float) -> None:
    """Wait for threads started since `before` (a call's loaders and workers) to end: native code still
    running in one at interpreter exit can abort the whole test process."""
    deadline = time.monotonic() + timeout
    for thread in set(threading.enumerate()) - before:
        thread.join(timeout=max(0.0, deadline - time.monotonic()))


def atd_count(at_log: list[tuple[float, str, str]]) -> int:
    return sum(1 for _, direction, line in at_log if direction == "rx" and line.upper().startswith("ATD"))
