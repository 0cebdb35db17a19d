"""What a runner does at start with claims a dead runner left behind, and what `cellcall status` shows."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rich.console import Console
from runner_support import goal_text, never_answer

from cellcall.config import Settings
from cellcall.line import LineError
from cellcall.outbox import read_record
from cellcall.watch.eventlog import EventLog
from cellcall.watch.inbox import Claim, Inbox
from cellcall.watch.runner import Runner
from cellcall.watch.status import collect, render


def _dead_pid() -> int:
    return int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout)


def _orphan(inbox: Inbox, name: str, **state: object) -> Claim:
    (inbox.root / f"{name}.md").write_text(goal_text(objective=f"objective {name}"))
    claim = inbox.claim(inbox.root / f"{name}.md")
    assert claim is not None
    inbox.update(claim, owner={**claim.state["owner"], "pid": _dead_pid()}, **state)
    return claim


def _runner(tmp_path: Path, inbox: Inbox) -> tuple[Runner, io.StringIO]:
    settings = Settings()
    settings.paths.outbox = str(tmp_path / "outbox")
    log = io.StringIO()

    def no_line() -> None:
        raise LineError("no modem in this test")

    runner = Runner(
        settings,
        inbox.root,
        line_factory=no_line,
        place=never_answer,
        answer=never_answer,  # type: ignore[arg-type]
        log=EventLog(log),
    )
    return runner, log


def test_recovery_requeues_undialled_claims_reports_dialled_ones_and_finishes_begun_steps(tmp_path: Path) -> None:
    inbox = Inbox(tmp_path / "goals")
    _orphan(inbox, "never-dialled", phase="claimed")
    _orphan(inbox, "mid-call", phase="calling", number="+14155550132")
    _orphan(inbox, "archiving", phase="calling", next={"action": "archive", "result": {"status": "completed", "outbox": "/o/1"}})
    runner, log = _runner(tmp_path, inbox)
    runner.recover()

    [waiting] = inbox.waiting()
    assert waiting.source == "never-dialled.md" and waiting.due <= datetime.now(UTC)
    mid = json.loads((inbox.done / "mid-call.result.json").read_text())
    assert mid["status"] == "interrupted" and "not redialled" in mid["note"]
    record = read_record(Path(mid["outbox"]) / "call.json")
    assert record.status.value == "interrupted" and record.number == "+14155550132" and record.goal == "mid-call"
    assert json.loads((inbox.done / "archiving.result.json").read_text())["outbox"] == "/o/1"
    assert not list(inbox.running.iterdir())
    events = [line.split()[1] for line in log.getvalue().splitlines()]
    assert sorted(events) == ["recovered-interrupted", "recovered-requeue", "recovered-step"]


def test_a_live_runners_claims_are_left_alone(tmp_path: Path) -> None:
    inbox = Inbox(tmp_path / "goals")
    (inbox.root / "mine.md").write_text(goal_text())
    claim = inbox.claim(inbox.root / "mine.md")
    runner, _ = _runner(tmp_path, inbox)
    runner.recover()
    assert claim is not None and claim.goal_file.exists() and claim.state_file.exists()


def test_status_shows_queue_runner_and_calls(tmp_path: Path) -> None:
    settings = Settings()
    settings.paths.outbox = str(tmp_path / "outbox")
    inbox = Inbox(tmp_path / "goals")
    (inbox.root / "later.md").write_text(goal_text(extra="not_before: 2099-01-01T09:00:00Z\n"))
    (inbox.root / "broken.md").write_text("no frontmatter\n")
    (inbox.root / "inbound.md").write_text("---\ndirection: inbound\nobjective: take a message\n---\n")
    retry = inbox.claim(_write(inbox.root / "retry.md"))
    assert retry is not None
    inbox.defer(retry, datetime.now(UTC) + timedelta(minutes=15), "busy", attempt=1)
    running = inbox.claim(_write(inbox.root / "now.md"))
    runner, _ = _runner(tmp_path, inbox)
    runner.publish(line={"state": "up"}, current={"goal": "now"})

    status = collect(settings, inbox.root)
    assert sorted(row["file"] for row in status["queued"]) == ["broken.md", "later.md"]  # not inbound.md
    later = next(row for row in status["queued"] if row["file"] == "later.md")
    assert later["due"].startswith("2099-01-01")
    assert next(row for row in status["queued"] if row["file"] == "broken.md")["note"].startswith("invalid")
    assert [(w["file"], w["reason"], w["retries_done"]) for w in status["waiting"]] == [("retry.md", "busy", 1)]
    assert running is not None and [(r["file"], r["alive"]) for r in status["running"]] == [("now.md", True)]
    assert status["runners"][0]["line"]["state"] == "up" and status["inbound_goal"].endswith("inbound.md")
    console = Console(file=io.StringIO(), width=160)
    console.print(render(status))
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert "retry.md" in text and "later.md" in text and "answering with" in text and "up" in text


def _write(path: Path) -> Path:
    path.write_text(goal_text(objective=path.stem))
    return path
