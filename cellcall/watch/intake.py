"""Watching the goals folder: new or moved-in goal files become ready once stable and valid.

A watchdog observer reports changes within milliseconds; a periodic rescan catches anything it
missed (inotify queue overflow, files dropped while the runner was down). A file is used only once
it has stopped changing for `stable_s` and it parses. A file that stays unparseable for
`invalid_grace_s` is moved to failed/ with its errors: the longer grace keeps a slow writer's
half-written file from being failed, and nothing here ever dials.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from cellcall.goal import Goal, GoalError
from cellcall.watch.eventlog import EventLog
from cellcall.watch.inbox import Inbox, StabilityTracker, is_goal_file_name

CHANGES = frozenset({"created", "modified", "moved", "deleted", "closed"})


class _StopRace(logging.Filter):
    """watchdog logs an error when an inotify read returns during observer.stop(); it is harmless."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "called when the thread is inactive" not in record.getMessage()


logging.getLogger("watchdog.observers.inotify").addFilter(_StopRace())


@dataclass(frozen=True)
class ReadyGoal:
    """A stable, valid goal file still in the top folder, not yet claimed."""

    path: Path
    goal: Goal
    mtime_ns: int


class _Handler(FileSystemEventHandler):
    def __init__(self, intake: GoalIntake) -> None:
        self._intake = intake

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type not in CHANGES:  # opened / closed_no_write: our own reads, not changes
            return
        for raw in (event.src_path, getattr(event, "dest_path", "")):
            if raw:
                self._intake.poke(Path(str(raw)))


class GoalIntake:
    """Turns folder events into ready goals; runs its own thread so calls never delay it."""

    def __init__(
        self,
        inbox: Inbox,
        load: Callable[[Path], Goal],
        log: EventLog,
        *,
        inbound_name: str,
        on_ready: Callable[[], None] = lambda: None,
        stable_s: float = 0.2,
        invalid_grace_s: float = 2.0,
        rescan_s: float = 2.0,
    ) -> None:
        self.inbox = inbox
        self._load = load
        self._log = log
        self._inbound_name = inbound_name
        self._on_ready = on_ready
        self._stable_s = stable_s
        self._invalid_grace_s = invalid_grace_s
        self._rescan_s = rescan_s
        self._tracker = StabilityTracker(stable_s)
        self._due: dict[Path, float] = {}  # path -> monotonic time of its next check
        self._ready: dict[Path, ReadyGoal] = {}
        self._announced: dict[Path, int] = {}  # path -> mtime of the version logged as ready
        self._inbound_seen: set[tuple[Path, int]] = set()
        self._cond = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="cellcall-intake", daemon=True)
        self._observer = Observer()

    def start(self) -> None:
        self._observer.schedule(_Handler(self), str(self.inbox.root), recursive=False)
        self._observer.start()
        self._rescan()
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._observer.stop()
        self._observer.join(timeout=5)
        self._thread.join(timeout=5)

    def poke(self, path: Path) -> None:
        """Something happened to `path`: check it soon (it may be new, growing, or gone)."""
        if path.parent != self.inbox.root or not is_goal_file_name(path.name):
            return
        with self._cond:
            self._ready.pop(path, None)
            self._due[path] = time.monotonic()
            self._cond.notify_all()

    def ready(self) -> list[ReadyGoal]:
        """Ready goals, oldest file first."""
        with self._cond:
            return sorted(self._ready.values(), key=lambda r: (r.mtime_ns, r.path.name))

    def discard(self, path: Path) -> None:
        """The runner moved `path` away (claimed, failed): stop tracking it."""
        with self._cond:
            self._ready.pop(path, None)
            self._due.pop(path, None)
            self._announced.pop(path, None)
        self._tracker.forget(path)

    def _run(self) -> None:
        next_rescan = time.monotonic() + self._rescan_s
        while True:
            with self._cond:
                if self._stopping:
                    return
                now = time.monotonic()
                due = [p for p, t in self._due.items() if t <= now]
                for path in due:
                    del self._due[path]
                if not due:
                    wake = min([next_rescan, *self._due.values()])
                    self._cond.wait(timeout=max(0.0, wake - now))
            for path in due:
                self._check(path)
            if time.monotonic() >= next_rescan:
                self._rescan()
                next_rescan = time.monotonic() + self._rescan_s

    def _rescan(self) -> None:
        """Poke every goal file not already known (the safety net behind the observer)."""
        with self._cond:
            known = set(self._ready) | set(self._due)
            gone = [p for p in self._ready if not p.exists()]
            for path in gone:
                del self._ready[path]
        for path in self.inbox.queued():
            if path not in known:
                self.poke(path)

    def _check(self, path: Path) -> None:
        if path.name == self._inbound_name:
            self._check_inbound(path)
            return
        wait = self._tracker.settle_in(path)
        if wait is None:
            self.discard(path)
            return
        if wait > 0:
            self._schedule(path, wait)
            return
        try:
            mtime_ns = path.stat().st_mtime_ns
            goal = self._load(path)
        except FileNotFoundError:
            self.discard(path)
            return
        except GoalError as exc:
            self._invalid(path, exc)
            return
        if goal.direction == "inbound":
            self._fail(path, [f"direction is inbound: an inbound goal answers calls; save it as {self._inbound_name}"])
            return
        with self._cond:
            if path in self._due:  # changed again while it was being read
                return
            known = self._announced.get(path) == mtime_ns
            self._announced[path] = mtime_ns
            self._ready[path] = ReadyGoal(path, goal, mtime_ns)
        if not known:
            self._log.emit("goal-ready", file=path.name, goal=goal.name)
        self._on_ready()

    def _invalid(self, path: Path, exc: GoalError) -> None:
        quiet = self._tracker.quiet_for(path)
        if quiet is None:
            self.discard(path)
            return
        wait = self._invalid_grace_s - quiet
        if wait > 0:
            self._schedule(path, wait)  # perhaps still being written: look again before failing it
            return
        self._fail(path, exc.lines())

    def _fail(self, path: Path, problems: list[str]) -> None:
        target = self.inbox.fail(path, problems)
        self.discard(path)
        if target is not None:
            self._log.emit(
                "goal-invalid",
                file=path.name,
                moved_to=str(target.relative_to(self.inbox.root)),
                problems=len(problems),
                first=problems[0] if problems else None,
            )

    def _check_inbound(self, path: Path) -> None:
        """The inbound goal stays in place; say once per version whether it is usable."""
        try:
            version = path.stat().st_mtime_ns
        except FileNotFoundError:
            return
        if (path, version) in self._inbound_seen:
            return
        self._inbound_seen.add((path, version))
        try:
            goal = self._load(path)
        except GoalError as exc:
            self._log.emit("inbound-goal-invalid", file=path.name, first=exc.lines()[0] if exc.lines() else None)
            return
        self._log.emit("inbound-goal", file=path.name, goal=goal.name)

    def _schedule(self, path: Path, delay: float) -> None:
        with self._cond:
            self._due[path] = min(self._due.get(path, float("inf")), time.monotonic() + delay)
            self._cond.notify_all()
