"""The goals folder as a queue: atomic claims, crash-safe state files, dedupe, stability."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cellcall.watch.inbox import Inbox, Owner, StabilityTracker, is_goal_file_name


def _goal(folder: Path, name: str, text: str = "---\nnumber: '+14155550132'\nobjective: test\n---\n") -> Path:
    path = folder / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("dentist.md", True),
        (".dentist.md", False),
        ("dentist.md.swp", False),
        (".dentist.md.swp", False),
        ("dentist.md~", False),
        ("dentist.md.tmp", False),
        ("dentist.txt", False),
        ("#dentist.md#", False),
        ("notes.tmp.md", True),
    ],
)
def test_goal_file_names(name: str, ok: bool) -> None:
    assert is_goal_file_name(name) is ok


def test_claim_moves_the_file_and_writes_the_owner(tmp_path: Path) -> None:
    inbox = Inbox(tmp_path)
    source = _goal(tmp_path, "dentist.md")
    claim = inbox.claim(source)
    assert claim is not None and not source.exists()
    assert claim.goal_file.parent == inbox.running and claim.goal_file.name.startswith("dentist.")
    state = json.loads(claim.state_file.read_text())
    assert state["owner"]["pid"] == os.getpid() and state["source"] == "dentist.md" and state["phase"] == "claimed"
    assert inbox.claim(source) is None  # already gone: the loser sees no claim
    assert list(inbox.running.glob("*.state.json")) == [claim.state_file]  # the loser left nothing behind


def _claim_all(root: str, names: list[str], start: float, out: multiprocessing.Queue) -> None:
    inbox = Inbox(Path(root))
    while time.time() < start:
        pass
    out.put([name for name in names if inbox.claim(Path(root) / name) is not None])


@pytest.mark.slow
def test_four_processes_racing_for_the_same_files_claim_each_once(tmp_path: Path) -> None:
    names = [f"race{i:02d}.md" for i in range(40)]
    for name in names:
        _goal(tmp_path, name)
    ctx = multiprocessing.get_context("spawn")
    out: multiprocessing.Queue = ctx.Queue()
    start = time.time() + 3.0  # every process imported and spinning before the first claim
    procs = [ctx.Process(target=_claim_all, args=(str(tmp_path), names, start, out)) for _ in range(4)]
    for proc in procs:
        proc.start()
    won = [out.get(timeout=60) for _ in procs]
    for proc in procs:
        proc.join()
    claimed = [name for names_won in won for name in names_won]
    assert sorted(claimed) == names  # every file claimed exactly once across all processes
    assert len(list((tmp_path / "running").glob("*.md"))) == 40
    assert len(list((tmp_path / "running").glob("*.state.json"))) == 40


def test_archive_records_the_result_and_never_overwrites(tmp_path: Path) -> None:
    inbox = Inbox(tmp_path)
    first = inbox.claim(_goal(tmp_path, "remind.md"))
    done1 = inbox.archive(first, {"status": "completed", "outbox": "/o/1"})
    second = inbox.claim(_goal(tmp_path, "remind.md", "---\nnumber: '+14155550132'\nobjective: again\n---\n"))
    done2 = inbox.archive(second, {"status": "busy", "outbox": "/o/2"})
    assert done1 == inbox.done / "remind.md" and done2 == inbox.done / "remind-2.md"
    assert "again" in done2.read_text() and "again" not in done1.read_text()
    assert json.loads((inbox.done / "remind-2.result.json").read_text())["outbox"] == "/o/2"
    assert not list(inbox.running.iterdir())


def test_fail_writes_the_errors_beside_the_goal(tmp_path: Path) -> None:
    inbox = Inbox(tmp_path)
    source = _goal(tmp_path, "bad.md", "no frontmatter")
    target = inbox.fail(source, ["bad.md:1: must start with a '---' line"])
    assert target == inbox.failed / "bad.md" and not source.exists()
    assert "must start with" in (inbox.failed / "bad.error.md").read_text()
    assert inbox.fail(source, ["again"]) is None  # a rival already moved it: no stray error file
    assert sorted(p.name for p in inbox.failed.iterdir()) == ["bad.error.md", "bad.md"]


def test_defer_then_claim_waiting_keeps_attempts(tmp_path: Path) -> None:
    inbox = Inbox(tmp_path)
    claim = inbox.claim(_goal(tmp_path, "dentist.md"))
    due = datetime.now(UTC) + timedelta(seconds=30)
    inbox.defer(claim, due, "busy", attempt=1, history=[{"status": "busy"}])
    [waiting] = inbox.waiting()
    assert waiting.due == due and waiting.attempt == 1 and waiting.reason == "busy" and waiting.source == "dentist.md"
    again = inbox.claim_waiting(waiting)
    assert again is not None and again.attempt == 1 and again.history == [{"status": "busy"}]
    assert again.source_name == "dentist.md" and again.goal_file.name == claim.goal_file.name
    assert not list(inbox.waiting_dir.iterdir())


def test_dedupe_by_content_within_the_window(tmp_path: Path) -> None:
    now = [datetime(2026, 11, 26, 10, 0, tzinfo=UTC)]
    inbox = Inbox(tmp_path, clock=lambda: now[0])
    a = inbox.claim(_goal(tmp_path, "a.md"))
    b = inbox.claim(_goal(tmp_path, "b.md"))
    assert inbox.first_claim_of("h1", a, timedelta(hours=12)) is None
    earlier = inbox.first_claim_of("h1", b, timedelta(hours=12))
    assert earlier is not None and earlier["source"] == "a.md"
    now[0] += timedelta(hours=13)
    assert inbox.first_claim_of("h1", b, timedelta(hours=12)) is None  # the old marker expired


def test_orphans_are_claims_whose_owner_died(tmp_path: Path) -> None:
    inbox = Inbox(tmp_path)
    mine = inbox.claim(_goal(tmp_path, "mine.md"))
    theirs = inbox.claim(_goal(tmp_path, "theirs.md"))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    inbox.update(theirs, owner={**theirs.state["owner"], "pid": int(dead.stdout)}, phase="calling")
    stale = inbox.running / "lost.abcd1234.state.json"  # a claim that lost its race before cleanup
    stale.write_text(json.dumps({"owner": {**theirs.state["owner"], "pid": int(dead.stdout)}}))
    orphans = inbox.orphans()
    assert [o.source_name for o in orphans] == ["theirs.md"]
    assert not stale.exists() and mine.state_file.exists()


def test_owner_with_a_recycled_pid_is_dead() -> None:
    me = Owner.current()
    assert me.alive()
    assert not Owner(me.host, me.pid, "1").alive()  # same pid, another process start time
    assert Owner("another-host", 1, None).alive()  # never steal claims of another machine


def test_pending_archive_is_finished_after_a_crash(tmp_path: Path) -> None:
    inbox = Inbox(tmp_path)
    claim = inbox.claim(_goal(tmp_path, "dentist.md"))
    inbox.update(claim, next={"action": "archive", "result": {"status": "completed", "outbox": "/o"}})
    target = inbox.finish_pending_step(claim)
    assert target == inbox.done / "dentist.md"
    assert json.loads((inbox.done / "dentist.result.json").read_text())["status"] == "completed"
    assert not claim.state_file.exists()


def test_stability_needs_a_quiet_window(tmp_path: Path) -> None:
    clock = [1000.0]
    tracker = StabilityTracker(0.2, clock=lambda: clock[0])
    path = tmp_path / "slow.md"
    path.write_text("---\n")
    os.utime(path, (clock[0], clock[0]))
    assert tracker.settle_in(path) == pytest.approx(0.2)
    clock[0] += 0.1
    assert tracker.settle_in(path) == pytest.approx(0.1)
    with path.open("a") as fh:
        fh.write("number: 1\n")
    os.utime(path, (clock[0], clock[0]))
    assert tracker.settle_in(path) == pytest.approx(0.2)  # it changed: the window starts again
    clock[0] += 0.25
    assert tracker.settle_in(path) == 0.0
    old = tmp_path / "moved-in.md"
    old.write_text("x")
    os.utime(old, (clock[0] - 3600, clock[0] - 3600))
    assert tracker.settle_in(old) == 0.0  # moved in from elsewhere, long finished
    assert tracker.settle_in(tmp_path / "gone.md") is None
