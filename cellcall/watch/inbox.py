"""The goals/ folder as a crash-safe queue: every change of state is one atomic rename.

Layout, all inside the goals folder:

    NAME.md                    dropped by a person or OpenClaw: queued
    running/NAME.TOKEN.md      claimed by one runner; NAME.TOKEN.state.json says who (pid) and the outbox
    waiting/NAME.TOKEN.md      a retry due later; NAME.TOKEN.wait.json holds the due time and attempts
    done/NAME.md               a call was placed, refused or found a duplicate; NAME.result.json says how
    failed/NAME.md             never dialled (invalid, expired); NAME.error.md says why
    .cellcall/                 dedupe markers and the runner's status.json

Two runners, or a runner and its restart, can never take one goal twice: a claim is an os.rename
out of the shared folder and only one rename of a path succeeds (the loser gets FileNotFoundError).
Each step writes its intent into the state file before it moves anything, so a crash at any point
leaves enough behind for the next start to finish the step or to report the call as interrupted.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cellcall.files import atomic_write_json

QUEUE_DIRS = ("running", "waiting", "done", "failed")
STATE_DIR = ".cellcall"
_EDITOR_SUFFIXES = (".swp", ".swo", ".swx", "~", ".tmp", ".part", ".crdownload", "#")


def is_goal_file_name(name: str) -> bool:
    """A queued goal: `*.md`, not hidden, not an editor's swap/backup/temporary file."""
    return name.endswith(".md") and not name.startswith((".", "#")) and not name.endswith(_EDITOR_SUFFIXES)


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def utcnow() -> datetime:
    return datetime.now(UTC)


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in `path`, or None when it is missing or unreadable (a torn manual edit)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _process_start(pid: int) -> tuple[str, str] | None:
    """(state letter, start time in clock ticks) from /proc, or None where /proc cannot tell."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()  # the command name may contain spaces and ")"
    return (fields[0], fields[19]) if len(fields) > 19 else None


@dataclass(frozen=True)
class Owner:
    """The process holding a claim; `started` guards against a recycled pid after a reboot."""

    host: str
    pid: int
    started: str | None

    @classmethod
    def current(cls) -> Owner:
        info = _process_start(os.getpid())
        return cls(socket.gethostname(), os.getpid(), info[1] if info else None)

    @classmethod
    def from_json(cls, data: Any) -> Owner | None:
        if not isinstance(data, dict) or not isinstance(data.get("pid"), int):
            return None
        return cls(str(data.get("host", "")), data["pid"], data.get("started"))

    def to_json(self) -> dict[str, Any]:
        return {"host": self.host, "pid": self.pid, "started": self.started}

    def alive(self) -> bool:
        """False only when sure: same host, and the pid is gone, a zombie, or another process."""
        if self.host != socket.gethostname():
            return True  # a runner on another machine sharing the folder: never steal its claims
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        info = _process_start(self.pid)
        if info is None:
            return True
        state, started = info
        return state != "Z" and (self.started is None or started == self.started)


@dataclass
class Claim:
    """A goal this process owns, in running/, with its state file."""

    goal_file: Path
    state_file: Path
    state: dict[str, Any]

    @property
    def source_name(self) -> str:
        return str(self.state["source"])

    @property
    def attempt(self) -> int:
        return int(self.state.get("attempt", 0))

    @property
    def history(self) -> list[dict[str, Any]]:
        return list(self.state.get("history", []))

    @property
    def outbox(self) -> str | None:
        return self.state.get("outbox")


@dataclass
class Waiting:
    """A goal parked in waiting/ until `due` (a retry after busy or no answer)."""

    goal_file: Path
    wait_file: Path
    due: datetime
    reason: str
    attempt: int
    history: list[dict[str, Any]] = field(default_factory=list)
    source: str = ""


def _split_token(path: Path) -> tuple[str, str]:
    """`NAME.TOKEN.md` -> (NAME, TOKEN); a name without a token keeps a fresh one."""
    stem = path.name[: -len(".md")] if path.name.endswith(".md") else path.name
    name, dot, token = stem.rpartition(".")
    return (name, token) if dot and len(token) == 8 else (stem, secrets.token_hex(4))


class Inbox:
    """Moves goal files between the queue's folders; every method is safe against a rival runner."""

    def __init__(self, root: Path, clock: Callable[[], datetime] = utcnow, create: bool = True) -> None:
        """`create=False` for readers (`cellcall status`) that must not change the folder."""
        self.root = root
        self.clock = clock
        self.state_dir = root / STATE_DIR
        if create:
            for name in QUEUE_DIRS:
                (root / name).mkdir(parents=True, exist_ok=True)
            (self.state_dir / "seen").mkdir(parents=True, exist_ok=True)

    @property
    def running(self) -> Path:
        return self.root / "running"

    @property
    def waiting_dir(self) -> Path:
        return self.root / "waiting"

    @property
    def done(self) -> Path:
        return self.root / "done"

    @property
    def failed(self) -> Path:
        return self.root / "failed"

    # --- the queue -----------------------------------------------------------------------
    def queued(self, exclude: Iterable[str] = ()) -> list[Path]:
        """Goal files waiting in the top folder, oldest first (queue order is file time)."""
        skip = set(exclude)
        found = []
        for entry in os.scandir(self.root):
            if entry.is_file() and is_goal_file_name(entry.name) and entry.name not in skip:
                try:
                    found.append((entry.stat().st_mtime_ns, entry.name, Path(entry.path)))
                except FileNotFoundError:
                    continue
        return [path for _, _, path in sorted(found)]

    def waiting(self) -> list[Waiting]:
        """Parked retries, soonest first; a goal whose wait file was lost is due at once."""
        items = []
        for goal_file in self.waiting_dir.glob("*.md"):
            wait_file = goal_file.with_name(goal_file.name[: -len(".md")] + ".wait.json")
            data = read_json(wait_file) or {}
            try:
                due = datetime.fromisoformat(data["due"])
            except (KeyError, TypeError, ValueError):
                due = datetime.fromtimestamp(0, UTC)
            items.append(
                Waiting(
                    goal_file,
                    wait_file,
                    due,
                    str(data.get("reason", "")),
                    int(data.get("attempt", 0)),
                    list(data.get("history", [])),
                    str(data.get("source") or _split_token(goal_file)[0] + ".md"),
                )
            )
        return sorted(items, key=lambda w: (w.due, w.goal_file.name))

    # --- claiming --------------------------------------------------------------------------
    def claim(
        self, source: Path, *, attempt: int = 0, history: list[dict[str, Any]] | None = None, original: str | None = None
    ) -> Claim | None:
        """Take `source` into running/; None when a rival took it first (or it vanished)."""
        name, token = _split_token(source) if source.parent != self.root else (source.name[:-3], secrets.token_hex(4))
        goal_file = self.running / f"{name}.{token}.md"
        state_file = self.running / f"{name}.{token}.state.json"
        state = {
            "source": original or f"{name}.md",
            "token": token,
            "owner": Owner.current().to_json(),
            "claimed_at": self.clock().isoformat(),
            "phase": "claimed",
            "attempt": attempt,
            "history": history or [],
            "outbox": None,
        }
        atomic_write_json(state_file, state)  # intent first: a claim is never without its owner
        try:
            os.rename(source, goal_file)
        except FileNotFoundError:
            state_file.unlink(missing_ok=True)
            return None
        return Claim(goal_file, state_file, state)

    def claim_waiting(self, item: Waiting) -> Claim | None:
        claim = self.claim(item.goal_file, attempt=item.attempt, history=item.history, original=item.source)
        if claim is not None:
            item.wait_file.unlink(missing_ok=True)
        return claim

    def update(self, claim: Claim, **fields: Any) -> None:
        """Record progress (phase, outbox folder...) in the claim's state file."""
        claim.state.update(fields)
        atomic_write_json(claim.state_file, claim.state)

    # --- leaving running/ ----------------------------------------------------------------
    def defer(
        self, claim: Claim, due: datetime, reason: str, attempt: int | None = None, history: list[dict[str, Any]] | None = None
    ) -> Path:
        """Park a claimed goal in waiting/ until `due`."""
        wait = {
            "due": due.isoformat(),
            "reason": reason,
            "attempt": claim.attempt if attempt is None else attempt,
            "history": claim.history if history is None else history,
            "source": claim.source_name,
        }
        self.update(claim, next={"action": "defer", "wait": wait})
        return self._finish_defer(claim, wait)

    def _finish_defer(self, claim: Claim, wait: dict[str, Any]) -> Path:
        target = self.waiting_dir / claim.goal_file.name
        atomic_write_json(target.with_name(target.name[: -len(".md")] + ".wait.json"), wait)
        os.rename(claim.goal_file, target)
        claim.state_file.unlink(missing_ok=True)
        return target

    def archive(self, claim: Claim, result: dict[str, Any]) -> Path:
        """Move a claimed goal to done/ with its result (status, outbox folder, attempts)."""
        result = {
            "source": claim.source_name,
            "claimed_at": claim.state.get("claimed_at"),
            "archived_at": self.clock().isoformat(),
            **result,
        }
        self.update(claim, next={"action": "archive", "result": result})
        return self._finish_archive(claim, result)

    def _finish_archive(self, claim: Claim, result: dict[str, Any]) -> Path:
        target = self._move_with_sidecar(
            claim.goal_file,
            self.done,
            Path(claim.source_name).stem,
            ".result.json",
            json.dumps(result, indent=2, sort_keys=True) + "\n",
        )
        if target is None:
            raise FileNotFoundError(f"{claim.goal_file} vanished while it was being archived")
        claim.state_file.unlink(missing_ok=True)
        return target

    def fail(self, source: Path | Claim, problems: list[str], title: str = "Goal not dialled") -> Path | None:
        """Move a goal that must never dial to failed/ with NAME.error.md; None if a rival moved it."""
        claim = source if isinstance(source, Claim) else None
        path = source.goal_file if isinstance(source, Claim) else source
        stem = Path(claim.source_name).stem if claim else path.name[: -len(".md")]
        lines = [f"# {title}: {stem}", "", f"Moved here at {self.clock().isoformat(timespec='seconds')}.", ""]
        lines += [f"- {problem}" for problem in problems]
        target = self._move_with_sidecar(path, self.failed, stem, ".error.md", "\n".join(lines) + "\n")
        if claim:
            claim.state_file.unlink(missing_ok=True)
        return target

    def _move_with_sidecar(self, source: Path, folder: Path, stem: str, suffix: str, text: str) -> Path | None:
        """Rename `source` to folder/STEM[-n].md beside a sidecar, never overwriting an earlier one."""
        for n in range(1, 10_000):
            variant = stem if n == 1 else f"{stem}-{n}"
            sidecar, target = folder / f"{variant}{suffix}", folder / f"{variant}.md"
            try:
                fd = os.open(sidecar, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                continue
            if target.exists():
                os.close(fd)
                sidecar.unlink()
                continue
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
            try:
                os.rename(source, target)
            except FileNotFoundError:
                sidecar.unlink(missing_ok=True)
                return None
            return target
        raise OSError(f"no free name for {stem} in {folder}")

    # --- dedupe ----------------------------------------------------------------------------
    def first_claim_of(self, digest: str, claim: Claim, within: timedelta) -> dict[str, Any] | None:
        """Record this content as claimed; if it already was within `within`, the earlier record."""
        marker = self.state_dir / "seen" / f"{digest}.json"
        record = {"source": claim.source_name, "token": claim.state["token"], "at": self.clock().isoformat()}
        for _ in range(3):
            try:
                fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                earlier = read_json(marker)
                when = _parse_time(earlier.get("at")) if earlier else None
                if when is not None and self.clock() - when < within:
                    return earlier
                stale = marker.with_name(f".{marker.name}.{secrets.token_hex(4)}.old")
                try:
                    os.rename(marker, stale)  # only one runner retires an expired marker
                    stale.unlink()
                except FileNotFoundError:
                    pass
                continue
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(record, fh)
            return None
        return read_json(marker) or record

    def prune_seen(self, older_than: timedelta) -> None:
        cutoff = time.time() - older_than.total_seconds()
        for marker in (self.state_dir / "seen").glob("*.json"):
            try:
                if marker.stat().st_mtime < cutoff:
                    marker.unlink()
            except FileNotFoundError:
                continue

    # --- recovery ----------------------------------------------------------------------------
    def orphans(self) -> list[Claim]:
        """Claims in running/ whose owner is dead; stale state files of lost claim races are removed."""
        found = []
        for state_file in self.running.glob("*.state.json"):
            state = read_json(state_file)
            goal_file = state_file.with_name(state_file.name[: -len(".state.json")] + ".md")
            owner = Owner.from_json(state.get("owner")) if state else None
            if owner is not None and owner.alive():
                continue
            if not goal_file.exists():
                state_file.unlink(missing_ok=True)  # the claim lost its race, or finished before cleanup
                continue
            found.append(Claim(goal_file, state_file, state or {}))
        for goal_file in self.running.glob("*.md"):
            state_file = goal_file.with_name(goal_file.name[: -len(".md")] + ".state.json")
            if not state_file.exists():  # put there by hand: adopt it so it is reported, not lost
                name, token = _split_token(goal_file)
                state = {"source": f"{name}.md", "token": token, "phase": "unknown", "attempt": 0, "history": []}
                atomic_write_json(state_file, state)
                found.append(Claim(goal_file, state_file, state))
        for claim in found:
            claim.state.setdefault("source", _split_token(claim.goal_file)[0] + ".md")
            claim.state.setdefault("token", _split_token(claim.goal_file)[1])
        return found

    def adopt(self, claim: Claim) -> None:
        """Make this process the owner of an orphaned claim before acting on it."""
        self.update(claim, owner=Owner.current().to_json())

    def finish_pending_step(self, claim: Claim) -> Path | None:
        """Complete a defer/archive the dead owner had begun; None if it had not begun one."""
        step = claim.state.get("next")
        if not isinstance(step, dict):
            return None
        if step.get("action") == "archive" and isinstance(step.get("result"), dict):
            return self._finish_archive(claim, step["result"])
        if step.get("action") == "defer" and isinstance(step.get("wait"), dict):
            return self._finish_defer(claim, step["wait"])
        return None

    def running_claims(self) -> list[Claim]:
        """Every claim in running/, alive or not (for `cellcall status`)."""
        claims = []
        for state_file in sorted(self.running.glob("*.state.json")):
            goal_file = state_file.with_name(state_file.name[: -len(".state.json")] + ".md")
            if goal_file.exists():
                claims.append(Claim(goal_file, state_file, read_json(state_file) or {}))
        return claims


def _parse_time(value: Any) -> datetime | None:
    try:
        when = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


class StabilityTracker:
    """Says when a dropped file has stopped changing, so a half-written goal never dials.

    A file is stable once its size, mtime and inode have stayed the same for `window_s`. The quiet
    time counts from the older of its mtime and when we first saw it in this shape, so a file moved
    in from elsewhere (old mtime) is ready at once while a file being written waits out the window.
    """

    def __init__(self, window_s: float = 0.2, clock: Callable[[], float] = time.time) -> None:
        self.window_s = window_s
        self._clock = clock
        self._seen: dict[Path, tuple[tuple[int, int, int, int], float]] = {}

    def quiet_for(self, path: Path) -> float | None:
        """Seconds `path` has gone unchanged; None when it is gone."""
        try:
            st = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            self._seen.pop(path, None)
            return None
        shape = (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
        now = self._clock()
        previous = self._seen.get(path)
        first_seen = previous[1] if previous and previous[0] == shape else now
        self._seen[path] = (shape, first_seen)
        return now - min(st.st_mtime_ns / 1e9, first_seen)

    def settle_in(self, path: Path) -> float | None:
        """Seconds until `path` counts as stable (0.0: stable now); None when it is gone."""
        quiet = self.quiet_for(path)
        return None if quiet is None else max(0.0, self.window_s - quiet)

    def forget(self, path: Path) -> None:
        self._seen.pop(path, None)
