"""`cellcall watch`: the goals folder becomes a phone, 24/7.

One runner owns one line. Its thread dials queued goals one at a time (oldest first), answers
inbound calls while idle, reconnects a lost line with backoff, and archives every goal it touched.
The folder mechanics (claims, state files) live in inbox.py, watching in intake.py, timing rules in
schedule.py, picking and settling outbound goals in outbound.py, the ringing phone in ringing.py,
orphaned claims in recovery.py, the call's view of the line in calltap.py; this module is the
lifecycle around one call at a time. The runner thread owns the line, the status dict and the
helpers above; `stop()` and `hangup_current()` may come from any thread (the call lock guards `_call`).

Calls go through two injectable functions (`PlaceFn`, `AnswerFn`) so the mechanics can be tested
quickly; the defaults are cellcall.call.place_call and answer_call with engines loaded once.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, Protocol

from cellcall.config import Settings
from cellcall.goal import Goal, parse_goal
from cellcall.goal import load_goal as _load_goal_file
from cellcall.line import Line, LineError
from cellcall.openclaw.notify import PushToOpenClaw, notify_call_finished, start_periodic_delivery
from cellcall.outbox import read_record
from cellcall.policy import DialLedger
from cellcall.record import CallStatus
from cellcall.watch.calltap import CallLine, CallObserver, Outcome
from cellcall.watch.eventlog import EventLog
from cellcall.watch.gitlog import commit_call
from cellcall.watch.inbox import Claim, Inbox, Owner, atomic_write_json, utcnow
from cellcall.watch.intake import GoalIntake
from cellcall.watch.outbound import InboxDialler
from cellcall.watch.recovery import recover_orphans
from cellcall.watch.ringing import InboundDesk
from cellcall.watch.schedule import Hold

if TYPE_CHECKING:
    from cellcall.call import CallResult
    from cellcall.engines.cache import Engines
    from cellcall.queue.connection import QueueClient


class Dialler(Protocol):
    """Where outbound goals come from: the local goals folder (outbound.py) or the fleet queue (cellcall.queue)."""

    hold: Hold | None  # why dialling waits now, for the status line

    def dial_next(self) -> None: ...


class PlaceFn(Protocol):
    def __call__(self, goal: Goal, line: Line, observer: Any, stop: threading.Event) -> CallResult: ...


class AnswerFn(Protocol):
    def __call__(self, goal: Goal, line: Line, caller: str | None, observer: Any, stop: threading.Event) -> CallResult: ...


@dataclass
class RunnerOptions:
    stable_s: float = 0.2  # a dropped file must stay unchanged this long before it is used
    invalid_grace_s: float = 2.0  # an unparseable file must stay unchanged this long before failed/
    rescan_s: float = 2.0  # full folder scan behind the watchdog observer
    dedupe_window: timedelta = timedelta(hours=12)  # identical content claimed within this is a duplicate
    reconnect_min_s: float = 1.0
    reconnect_max_s: float = 30.0
    status_every_s: float = 300.0  # the status line, also written when anything changes
    ring_gap_s: float = 8.0  # no RING for this long: that inbound call has stopped ringing
    idle_poll_s: float = 0.02  # line event poll while idle (bounds the drop-to-dial latency)


class Runner:
    """Dials the queue, answers the phone, survives crashes; `run()` blocks until `stop()`."""

    def __init__(
        self,
        settings: Settings,
        goals_dir: Path,
        *,
        line_factory: Callable[[], Line],
        place: PlaceFn,
        answer: AnswerFn,
        log: EventLog | None = None,
        options: RunnerOptions | None = None,
        outbox_root: Path | None = None,
        dialler: Callable[[Runner, threading.Event], Dialler] | None = None,
    ) -> None:
        self.settings = settings
        self.options = options or RunnerOptions()
        self.log = log or EventLog(json_lines=settings.log.json)
        self.inbox = Inbox(Path(goals_dir))
        self.outbox_root = Path(outbox_root or settings.paths.outbox)
        self.ledger = DialLedger.in_outbox(self.outbox_root)
        inbound = self.inbox.root / settings.inbound.goal
        self.inbound_path = inbound
        self._line_factory = line_factory
        self.place = place
        self.answer = answer
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._call_lock = threading.Lock()
        self._call: tuple[str, threading.Event] | None = None  # (goal file or "", its stop); set by the runner thread only
        self.intake = GoalIntake(
            self.inbox,
            self.load_goal,
            self.log,
            inbound_name=inbound.name if inbound.parent == self.inbox.root else "",
            on_ready=self._wake.set,
            stable_s=self.options.stable_s,
            invalid_grace_s=self.options.invalid_grace_s,
            rescan_s=self.options.rescan_s,
        )
        self.line: Line | None = None
        self._line_retry_at = 0.0
        self._line_backoff = self.options.reconnect_min_s
        self.inbound = InboundDesk(self)
        self.dialler: Dialler = (dialler or InboxDialler)(self, self._wake)  # the goals folder, or the fleet queue
        self._status_file = self.inbox.state_dir / f"runner-{os.getpid()}.json"
        self._status: dict[str, Any] = {
            "owner": Owner.current().to_json(),
            "started": utcnow().isoformat(),
            "goals": str(self.inbox.root),
            "outbox": str(self.outbox_root),
            "line": {"state": "connecting"},
            "current": None,
            "calls": 0,
        }
        self._next_status_line = 0.0

    # --- public -------------------------------------------------------------------------------
    def load_goal(self, path: Path, name: str | None = None) -> Goal:
        country = self.settings.policy.default_country
        if name is None:
            return _load_goal_file(path, country)
        return parse_goal(path.read_text(encoding="utf-8"), name, path, country)

    def stop(self) -> None:
        """Ask the runner to finish: the current call hangs up, reports are written, run() returns."""
        self._stop.set()
        self._wake.set()
        self.hangup_current()

    def hangup_current(self, source: str | None = None) -> bool:
        """Hang up the call in progress and go on with the queue (`cellcall serve`'s hang-up; any thread).

        With `source` (a goal file name) only that goal's call is stopped, so a hang-up meant for a call
        that just ended never reaches the next one. True when a call was told to stop.
        """
        with self._call_lock:
            if self._call is None or (source is not None and source != self._call[0]):
                return False
            self._call[1].set()
            return True

    def run(self) -> None:
        self.log.emit("runner-start", goals=str(self.inbox.root), outbox=str(self.outbox_root), pid=os.getpid())
        self.recover()
        self.intake.start()
        try:
            while not self._stop.is_set():
                try:
                    self._tick()
                except Exception as exc:  # noqa: BLE001 - a full disk or a bad permission must not stop the phone for good
                    self.log.emit("runner-error", error=f"{type(exc).__name__}: {exc}")
                    self._stop.wait(1.0)
        finally:
            self.intake.stop()
            self._close_line()
            self._status_file.unlink(missing_ok=True)
            self.log.emit("runner-stop", calls=self._status["calls"])

    def recover(self) -> None:
        """Settle claims left in running/ by a runner that died; never redial one that may have dialled."""
        recover_orphans(self)

    # --- the loop ---------------------------------------------------------------------------------
    def _tick(self) -> None:
        self._status_heartbeat()
        line = self.line
        if line is None:
            if not self._connect():
                self._wake.wait(timeout=0.25)
                self._wake.clear()
            return
        try:
            event = line.next_event(self.options.idle_poll_s)
        except LineError as exc:
            self.line_lost(str(exc))
            return
        if event is not None:
            self.inbound.idle_event(event)
        if self.inbound.is_ringing():
            return  # never dial out while the phone rings
        if self.line is None:
            return  # lost while handling the event: the queue waits for the reconnect
        self.dialler.dial_next()

    def _status_heartbeat(self) -> None:
        if time.monotonic() < self._next_status_line:
            return
        self._next_status_line = time.monotonic() + self.options.status_every_s
        waiting = self.inbox.waiting()
        self.log.emit(
            "status",
            line=self._status["line"].get("state"),
            queued=len(self.intake.ready()),
            waiting=len(waiting),
            next_retry=waiting[0].due if waiting else None,
            hold=self.dialler.hold.reason if self.dialler.hold else None,
            calls=self._status["calls"],
        )
        self.inbox.prune_seen(self.options.dedupe_window)
        self.publish()

    def publish(self, **changes: Any) -> None:
        """Write this runner's status file for `cellcall status` (atomic; a reader never sees half)."""
        self._status.update(changes)
        self._status["updated"] = utcnow().isoformat()
        atomic_write_json(self._status_file, self._status)

    # --- the line -----------------------------------------------------------------------------
    def _connect(self) -> bool:
        if time.monotonic() < self._line_retry_at or self._stop.is_set():
            return False
        try:
            line = self._line_factory()
            line.open()
        except (LineError, OSError) as exc:
            self._line_retry_at = time.monotonic() + self._line_backoff
            self.log.emit("line-down", reason=str(exc), retry_in_s=round(self._line_backoff, 1))
            self.publish(line={"state": "down", "detail": str(exc)})
            self._line_backoff = min(self._line_backoff * 2, self.options.reconnect_max_s)
            return False
        self.line = line
        self._line_backoff = self.options.reconnect_min_s
        self.log.emit("line-up")
        self.publish(line={"state": "up", "since": utcnow().isoformat()})
        return True

    def line_lost(self, reason: str) -> None:
        """The line failed (any runner-thread caller): close it, forget what rang, reconnect with backoff."""
        self.log.emit("line-lost", reason=reason)
        self._close_line()
        self.inbound.forget()
        self._line_retry_at = time.monotonic() + self._line_backoff
        self.publish(line={"state": "down", "detail": reason})

    def _close_line(self) -> None:
        line, self.line = self.line, None
        if line is None:
            return
        try:
            line.close()
        except Exception as exc:  # noqa: BLE001 - a dead port may fail to close; the next open starts clean
            self.log.emit("line-close-error", reason=str(exc))

    # --- one call, observed -------------------------------------------------------------------
    def observed(
        self,
        call: Callable[[Line, CallObserver, threading.Event], CallResult],
        claim: Claim | None,
        label: str,
        caller: str | None,
    ) -> Outcome:
        """Run one call on the runner's line; whatever happens, return an outcome and keep running."""
        assert self.line is not None
        tap = CallLine(self.line, caller)
        observer = CallObserver(self, claim, label)
        self.publish(current={"goal": label, "since": utcnow().isoformat(), "caller": caller})
        call_stop = threading.Event()  # set by stop() or hangup_current()
        with self._call_lock:
            self._call = (claim.source_name if claim else "", call_stop)
        if self._stop.is_set():
            call_stop.set()
        try:
            result = call(tap, observer, call_stop)  # type: ignore[arg-type]
            outcome = Outcome(result.record.status, result.folder, result.report, result.record.error)
        except LineError as exc:
            tap.lost = tap.lost or str(exc)
            outcome = Outcome(CallStatus.FAILED, observer.folder, None, f"line error: {exc}")
        except Exception as exc:  # noqa: BLE001 - a bug in one call must not stop the phone
            self.log.emit("call-crashed", goal=label, error=f"{type(exc).__name__}: {exc}")
            outcome = Outcome(CallStatus.FAILED, observer.folder, None, f"{type(exc).__name__}: {exc}")
        with self._call_lock:
            self._call = None
        self._status["calls"] += 1
        self.publish(
            current=None,
            last={"goal": label, "status": outcome.status.value, "outbox": str(outcome.folder) if outcome.folder else None},
        )
        self.inbound.rang_during_call(tap)
        if tap.lost:
            self.line_lost(tap.lost)
        return outcome

    def publish_report(self, folder: Path, message: str) -> None:
        """A report the runner wrote itself (missed, interrupted): commit it and tell OpenClaw, like a call's."""
        self.commit(folder, message)
        notify_call_finished(self.settings, read_record(folder / "call.json"), folder)

    def commit(self, folder: Path | None, message: str) -> None:
        if not self.settings.outbox.git or folder is None:
            return
        try:
            commit_call(self.outbox_root, Path(folder), message)
        except Exception as exc:  # noqa: BLE001 - git trouble never stops the phone; the report is on disk
            self.log.emit("git-error", folder=str(folder), error=str(exc))
        else:
            self.log.emit("git-commit", folder=str(folder))


def default_call_fns(settings: Settings) -> tuple[PlaceFn, AnswerFn, Engines]:
    """place_call / answer_call with one set of engines for every call (loading starts now, kept warm)."""
    from cellcall.call import answer_call, place_call
    from cellcall.engines.cache import shared_engines
    from cellcall.observe import Fanout

    engines = shared_engines(settings)
    engines.preload()  # background threads: the runner starts watching at once
    push = PushToOpenClaw(settings)

    def place(goal: Goal, line: Line, observer: Any, stop: threading.Event) -> CallResult:
        return place_call(goal, settings, line, engines=engines, stop=stop, observer=Fanout(observer, push))

    def answer(goal: Goal, line: Line, caller: str | None, observer: Any, stop: threading.Event) -> CallResult:
        return answer_call(goal, settings, line, caller, engines=engines, stop=stop, observer=Fanout(observer, push))

    return place, answer, engines


def settle_engines(engines: Engines, log: EventLog) -> None:
    """Let model loads still running finish: native loaders abort the process if it exits under them."""
    for name, load in (("stt", engines.stt), ("tts", engines.tts), ("llm", engines.llm)):
        try:
            load()
        except Exception as exc:  # noqa: BLE001 - a model that cannot load no longer matters on the way out
            log.emit("engine-unavailable", engine=name, error=str(exc))


class WatchError(RuntimeError):
    """`cellcall watch` cannot start (no goals folder, unknown line kind)."""


def _fleet_dialler(settings: Settings) -> tuple[QueueClient | None, Callable[[Runner, threading.Event], Dialler] | None]:
    """With `[queue] url` the runner dials the fleet queue's goals (cellcall.queue); else its own folder's."""
    if not settings.queue.url:
        return None, None
    from cellcall.queue.connection import QueueClient, QueueError  # noqa: F811 - needed at run time too
    from cellcall.queue.worker import QueueDialler

    try:
        client = QueueClient(settings.queue)
    except QueueError as exc:
        raise WatchError(str(exc)) from None
    return client, lambda runner, wake: QueueDialler(runner, wake, client)


def watch(
    settings: Settings, goals_dir: Path | None = None, attach: Callable[[Runner], Callable[[], None]] | None = None
) -> NoReturn:
    """`cellcall watch`: run until SIGTERM or Ctrl-C, then hang up, finish the reports, exit 0.

    `attach` (`cellcall serve`'s HTTP API) starts beside the runner and returns how to stop it.

    The process ends with os._exit once the reports are written and model loads have settled:
    native threads of the speech and language libraries (a call's opening still being prepared,
    say) can abort the interpreter's own shutdown, which would turn a clean stop into a crash.
    """
    from cellcall.line.factory import KINDS, make_line

    goals = Path(goals_dir or settings.paths.goals)
    if not goals.is_dir():
        raise WatchError(f"goals folder not found: {goals} (create it, or pass GOALS_DIR)")
    if settings.line.kind not in KINDS:
        raise WatchError(f"unknown line kind {settings.line.kind!r}: choose one of {', '.join(KINDS)}")
    client, dialler = _fleet_dialler(settings)  # before the models load: a refused token ends here
    place, answer, engines = default_call_fns(settings)
    runner = Runner(settings, goals, line_factory=lambda: make_line(settings), place=place, answer=answer, dialler=dialler)
    try:
        detach = attach(runner) if attach else None
    except BaseException:
        settle_engines(engines, runner.log)
        raise
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: runner.stop())
    flushing = threading.Event()
    start_periodic_delivery(settings, flushing)  # pushes queued while the gateway was down
    runner.run()
    if client is not None:
        client.close()
    if detach is not None:
        detach()
    flushing.set()
    settle_engines(engines, runner.log)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
