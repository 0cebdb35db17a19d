"""`cellcall queue push | status | drain`, `cellcall calls` and `cellcall watch` with [queue], on a real nats-server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fleet_support import Worker, report_rows
from nats_support import TOKEN, NatsServer
from runner_support import goal_text, wait_for
from typer.testing import CliRunner

from cellcall.cli.app import app
from cellcall.queue.connection import QueueClient


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("CELLCALL_QUEUE_TOKEN", TOKEN)
    srv = NatsServer(tmp_path / "jetstream").start()
    try:
        yield srv
    finally:
        srv.stop()


def _config(tmp_path: Path, url: str) -> Path:
    config = tmp_path / "cellcall.toml"
    config.write_text(f'[queue]\nurl = "{url}"\nline_name = "cli-line"\n\n[paths]\noutbox = "{tmp_path / "outbox"}"\n')
    return config


def _cli(config: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["--config", str(config), *args])
    return result.exit_code, result.output


def test_push_validates_first_then_status_and_drain_lose_nothing(server: NatsServer, tmp_path: Path) -> None:
    config = _config(tmp_path, server.url)
    good = [tmp_path / f"g{i}.md" for i in range(2)]
    for i, path in enumerate(good):
        path.write_text(goal_text(objective=f"Ask {i}"))
    bad = tmp_path / "bad.md"
    bad.write_text(goal_text(number="12"))
    code, out = _cli(config, "queue", "push", str(good[0]), str(bad))
    assert code == 1 and "bad.md" in out and "nothing was pushed" in out, out
    code, out = _cli(config, "queue", "status", "--json")
    assert code == 0 and json.loads(out)["queued"] == 0
    code, out = _cli(config, "queue", "push", *map(str, good))
    assert code == 0 and out.count("queued ") == 2
    assert json.loads(_cli(config, "queue", "status", "--json")[1])["queued"] == 2
    code, out = _cli(config, "queue", "drain", "--into", str(tmp_path / "drained"))
    assert code == 0 and "drained 2" in out
    assert sorted(p.read_text() for p in (tmp_path / "drained").iterdir()) == sorted(p.read_text() for p in good)
    assert json.loads(_cli(config, "queue", "status", "--json")[1])["queued"] == 0
    goals = tmp_path / "goals"
    goals.mkdir()
    code, out = _cli(config, "status", str(goals), "--json")
    assert code == 0 and json.loads(out)["fleet"]["queued"] == 0 and json.loads(out)["fleet"]["url"] == server.url


def test_wrong_token_is_one_clear_line_for_every_command(
    server: NatsServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _config(tmp_path, server.url)
    monkeypatch.setenv("CELLCALL_QUEUE_TOKEN", "wrong-token-31337")
    goal = tmp_path / "g.md"
    goal.write_text(goal_text())
    goals = tmp_path / "goals"
    goals.mkdir()
    for args in (["queue", "status"], ["queue", "push", str(goal)], ["calls"], ["watch", str(goals), "--line", "emulator"]):
        code, out = _cli(config, *args)
        assert code in (1, 2), (args, out)
        assert "refused this worker's credentials" in out and "wrong-token-31337" not in out, (args, out)


def test_a_goal_dropped_into_one_appliances_folder_is_dialled_by_the_line_it_asks_for(server: NatsServer, tmp_path: Path) -> None:
    with (
        Worker(tmp_path / "a", server.settings("line-a", claim_ttl_s=3.0)) as a,
        Worker(tmp_path / "b", server.settings("line-b", claim_ttl_s=3.0)) as b,
    ):
        (a.root / "goals" / "for-b.md").write_text(goal_text(extra='line: "line-b"\n'))
        reader = QueueClient(server.settings("reader"))
        try:
            wait_for(lambda: len(report_rows(reader)) == 1, 30, "the report of the forwarded goal")
            row = report_rows(reader)[0]
        finally:
            reader.close()
        assert b.seam.calls == ["for-b"] and a.seam.calls == []
        assert row["line"] == "line-b" and row["status"] == "busy"
        archived = json.loads(next((a.root / "goals" / "done").glob("for-b*.json")).read_text())
        assert archived["status"] == "queued"
        code, out = _cli(_config(tmp_path, server.url), "calls", "--json")
        assert code == 0 and json.loads(out)[0]["source"] == "for-b.md"
