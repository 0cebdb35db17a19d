"""The fleet on a real nats-server (JetStream, loopback, by PID): three workers on emulated lines.

Calls go through the line-only seams of tests/runner_support.py (a real ATD on the emulator's pty,
no models), so exactly-once dialling is counted on the modems' own AT logs.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path

import pytest
from fleet_support import Worker, report_rows
from nats_support import TOKEN, NatsServer
from runner_support import atd_count, goal_text, wait_for

from cellcall.queue import fleet
from cellcall.queue.connection import QueueClient, QueueError
from cellcall.queue.messages import GoalMessage


@pytest.fixture
def server(tmp_path: Path):  # type: ignore[no-untyped-def]
    srv = NatsServer(tmp_path / "jetstream").start()
    try:
        yield srv
    finally:
        srv.stop()


def _goal(i: int, extra: str = "") -> bytes:
    return goal_text(number=f"+1415555{i:04d}", objective=f"Ask about order {i}", extra=extra).encode()


def test_fifty_goals_at_once_each_valid_one_dialled_exactly_once_over_three_lines(server: NatsServer, tmp_path: Path) -> None:
    valid = [GoalMessage(f"order{i:02d}.md", _goal(i), "any") for i in range(40)]
    routed = GoalMessage("for-line-b.md", _goal(99, 'line: "line-b"\n'), "line.line-b")
    duplicates = [valid[i] for i in range(5)]  # pushed twice: same name, same bytes
    invalid = [
        GoalMessage("no-frontmatter.md", b"Call the dentist please\n", "any"),
        GoalMessage("typo.md", goal_text(extra="objectiv: typo\n").encode(), "any"),
        GoalMessage("bad-number.md", goal_text(number="12").encode(), "any"),
        GoalMessage("binary.md", b"\xff\xfe\x00junk", "any"),
    ]
    with (
        Worker(tmp_path / "a", server.settings("line-a", claim_ttl_s=3.0)) as a,
        Worker(tmp_path / "b", server.settings("line-b", claim_ttl_s=3.0)) as b,
        Worker(tmp_path / "c", server.settings("line-c", claim_ttl_s=3.0)) as c,
    ):
        pusher = QueueClient(server.settings("pusher"))
        try:
            fleet.push(pusher, [*valid, routed, *duplicates, *invalid])  # 50 goals
            expected_reports = len(valid) + 1 + len(invalid)
            wait_for(lambda: len(report_rows(pusher)) >= expected_reports, 90, "a report for every distinct goal")
            wait_for(lambda: fleet.status(pusher)["queued"] == 0, 20, "the queue to empty")
            rows = report_rows(pusher)
            status = fleet.status(pusher)
        finally:
            pusher.close()
        workers = (a, b, c)
        dialled = Counter(name for w in workers for name in w.seam.calls)
        atds = [atd_count(w.emulator.at_log) for w in workers]
    assert len(rows) == expected_reports, "no goal reported twice"
    by_source = {str(r["source"]): r for r in rows}
    assert set(dialled) == {Path(m.source).stem for m in [*valid, routed]}
    assert max(dialled.values()) == 1, f"dialled twice: {[n for n, k in dialled.items() if k > 1]}"
    assert sum(atds) == len(valid) + 1, atds
    assert all(n > 0 for n in atds), f"the goals were not spread over the lines: {atds}"
    assert by_source["for-line-b.md"]["line"] == "line-b"
    for message in invalid:
        assert by_source[message.source]["status"] == "invalid"
        assert by_source[message.source]["call"] is None
    done = [r for r in rows if r["status"] == "busy"]
    assert len(done) == len(valid) + 1
    assert all(isinstance(r["call"], dict) and r["report_md"] for r in done), "call.json and report.md are published"
    assert status["claims"] == {"done": len(valid) + 1, "invalid": len(invalid)}
    assert {w["line"] for w in status["workers"]} >= {"line-a", "line-b", "line-c"}


def test_a_worker_with_a_wrong_token_is_refused_clearly(server: NatsServer) -> None:
    with pytest.raises(QueueError) as refused:
        QueueClient(server.settings("line-x", token="not-the-token-5550"))
    text = str(refused.value)
    assert "refused" in text and "CELLCALL_QUEUE_TOKEN" in text
    assert "not-the-token-5550" not in text and TOKEN not in text
    with pytest.raises(QueueError, match="authorization"):
        QueueClient(server.settings("line-x", token=""))


def test_no_server_is_a_clear_error_not_a_hang(tmp_path: Path) -> None:
    from nats_support import free_port

    from cellcall.config import QueueSettings

    with pytest.raises(QueueError, match="cannot reach"):
        QueueClient(QueueSettings(url=f"nats://127.0.0.1:{free_port()}"))
    with pytest.raises(QueueError, match="nats:// or tls://"):
        QueueClient(QueueSettings(url="http://127.0.0.1:4222"))


def _claims(client: QueueClient) -> dict[str, str]:
    from cellcall.queue.claims import ClaimState
    from cellcall.queue.connection import CLAIMS_BUCKET

    values = client.run(fleet._bucket_values(client, CLAIMS_BUCKET))  # noqa: SLF001 - the test reads the raw claims
    return {key: ClaimState.from_bytes(value).phase for key, value in values.items()}


def test_a_worker_killed_mid_call_is_never_redialled_and_its_call_reported_interrupted(
    server: NatsServer, tmp_path: Path
) -> None:
    import signal
    import subprocess
    import sys

    tests = Path(__file__).parent
    env = {**os.environ, "PYTHONPATH": f"{tests}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "CELLCALL_QUEUE_TOKEN": TOKEN}
    proc = subprocess.Popen(
        [sys.executable, str(tests / "fleet_worker_main.py"), str(tmp_path / "doomed"), server.url, "line-doomed", "2"],
        stdout=subprocess.PIPE,
        env=env,
    )
    pusher = QueueClient(server.settings("pusher"))
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"worker-ready"
        message = GoalMessage("long-call.md", _goal(7), "any")
        fleet.push(pusher, [message])
        wait_for(lambda: _claims(pusher).get(message.key) == "dialled", 30, "the doomed worker to dial")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        with Worker(tmp_path / "survivor", server.settings("line-survivor", claim_ttl_s=2.0)) as survivor:
            wait_for(lambda: len(report_rows(pusher)) >= 1, 30, "the interrupted report")
            rows = report_rows(pusher)
            claims = _claims(pusher)
            survivor_atds = atd_count(survivor.emulator.at_log)
            survivor_calls = list(survivor.seam.calls)
    finally:
        pusher.close()
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    assert [r["status"] for r in rows] == ["interrupted"]
    assert rows[0]["line"] == "line-doomed" and "not redialled" in str(rows[0]["note"])
    assert claims[message.key] == "interrupted"
    assert survivor_atds == 0 and survivor_calls == [], "the survivor must not redial a call that may have happened"


def test_the_server_down_for_ten_seconds_loses_and_doubles_nothing(server: NatsServer, tmp_path: Path) -> None:
    import time

    from fleet_support import ANSWERED

    messages = [GoalMessage(f"outage{i}.md", _goal(100 + i), "any") for i in range(8)]
    with (
        Worker(tmp_path / "a", server.settings("line-a", claim_ttl_s=20.0), scenario=ANSWERED, hold_s=1.5) as a,
        Worker(tmp_path / "b", server.settings("line-b", claim_ttl_s=20.0), scenario=ANSWERED, hold_s=1.5) as b,
    ):
        pusher = QueueClient(server.settings("pusher"))
        try:
            fleet.push(pusher, messages)
            wait_for(lambda: len(a.seam.calls) >= 1 and len(b.seam.calls) >= 1, 30, "both lines in a call")
        finally:
            pusher.close()
        server.stop()
        in_call_at_stop = len(a.seam.calls) + len(b.seam.calls)
        time.sleep(10)
        server.start()
        pusher = QueueClient(server.settings("pusher"))
        try:
            wait_for(lambda: len(report_rows(pusher)) >= len(messages), 90, "every goal reported after the outage")
            time.sleep(1.0)  # a late double would show now
            rows = report_rows(pusher)
            claims = _claims(pusher)
            queued = fleet.status(pusher)["queued"]
        finally:
            pusher.close()
        dialled = Counter([*a.seam.calls, *b.seam.calls])
        atds = atd_count(a.emulator.at_log) + atd_count(b.emulator.at_log)
    assert in_call_at_stop >= 2
    assert sorted(str(r["source"]) for r in rows) == sorted(m.source for m in messages), "one report per goal"
    assert {str(r["status"]) for r in rows} == {"completed"}, "the calls in progress went on through the outage"
    assert set(dialled) == {f"outage{i}" for i in range(8)} and max(dialled.values()) == 1
    assert atds == len(messages)
    assert set(claims.values()) == {"done"} and queued == 0


def test_fleet_limits_hold_across_lines_and_a_refusal_on_one_line_is_final_for_all(server: NatsServer, tmp_path: Path) -> None:
    limited = {"claim_ttl_s": 3.0, "fleet_max_calls_per_hour": 3}
    goals = [GoalMessage(f"limit{i}.md", _goal(200 + i), "any") for i in range(5)]
    emergency = GoalMessage("emergency.md", goal_text(number="+1911").encode(), "any")
    premium = GoalMessage("premium.md", goal_text(number="+19005550100").encode(), "any")
    with (
        Worker(tmp_path / "a", server.settings("line-a", **limited)) as a,
        Worker(tmp_path / "b", server.settings("line-b", **limited)) as b,
    ):
        pusher = QueueClient(server.settings("pusher"))
        try:
            fleet.push(pusher, [emergency, premium, *goals])
            wait_for(lambda: len(report_rows(pusher)) >= 5, 30, "three calls and two refusals reported")
            time.sleep(2.0)  # a fourth call would show now
            rows = report_rows(pusher)
            status = fleet.status(pusher)
        finally:
            pusher.close()
        atds = atd_count(a.emulator.at_log) + atd_count(b.emulator.at_log)
    by_source = {str(r["source"]): r for r in rows}
    assert by_source["emergency.md"]["status"] == "refused" and by_source["premium.md"]["status"] == "refused"
    assert atds == 3, "the fleet's three calls an hour, across both lines"
    assert status["queued"] == 2 and status["claims"] == {"done": 3, "refused": 2}


def test_a_busy_goal_with_a_retry_rule_is_called_again_through_the_queue_and_no_more(server: NatsServer, tmp_path: Path) -> None:
    retry = "retry:\n  attempts: 2\n  backoff_s: 1\n  on: [busy]\n"
    message = GoalMessage("retry-me.md", _goal(300, retry), "any")
    with (
        Worker(tmp_path / "a", server.settings("line-a", claim_ttl_s=3.0)) as a,
        Worker(tmp_path / "b", server.settings("line-b", claim_ttl_s=3.0)) as b,
    ):
        pusher = QueueClient(server.settings("pusher"))
        try:
            fleet.push(pusher, [message])
            wait_for(lambda: len(report_rows(pusher)) >= 3, 40, "the first call and two retries reported")
            time.sleep(2.5)  # a fourth call would show now
            rows = report_rows(pusher)
            claims = _claims(pusher)
            queued = fleet.status(pusher)["queued"]
        finally:
            pusher.close()
        calls = [*a.seam.calls, *b.seam.calls]
    assert calls == ["retry-me"] * 3 and [r["status"] for r in rows] == ["busy"] * 3
    assert claims == {message.key: "done"} and queued == 0


def test_tls_with_the_servers_own_ca_connects_and_a_stranger_certificate_is_refused(tmp_path: Path) -> None:
    import shutil

    from nats_support import self_signed

    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make the test certificate")
    cert, key = self_signed(tmp_path)
    tls_server = NatsServer(tmp_path / "jetstream", tls=(cert, key)).start()
    try:
        client = QueueClient(tls_server.settings("tls-line", tls_ca=str(cert)))
        try:
            fleet.push(client, [GoalMessage("over-tls.md", _goal(400), "any")])
            assert fleet.status(client)["queued"] == 1
        finally:
            client.close()
        with pytest.raises(QueueError, match="cannot reach"):
            QueueClient(tls_server.settings("tls-line"))  # the system CAs do not know this certificate
    finally:
        tls_server.stop()


def test_an_undialled_claim_of_a_dead_worker_is_taken_over_and_dialled_once(server: NatsServer, tmp_path: Path) -> None:
    from cellcall.queue import claims
    from cellcall.queue.claims import ClaimState
    from cellcall.queue.connection import CLAIMS_BUCKET

    message = GoalMessage("orphan.md", _goal(500), "any")
    pusher = QueueClient(server.settings("pusher"))
    try:
        dead = ClaimState("claimed", "dead-worker-1", "line-gone", message.source, beat=time.time() - 60)
        assert pusher.run(claims.create(pusher.buckets[CLAIMS_BUCKET], message.key, dead)) is not None
        fleet.push(pusher, [message])  # as redelivered after the dead worker's ack wait
        with Worker(tmp_path / "a", server.settings("line-a", claim_ttl_s=3.0)) as a:
            wait_for(lambda: len(report_rows(pusher)) == 1, 20, "the orphaned goal dialled and reported")
            time.sleep(1.0)
            calls = list(a.seam.calls)
        rows = report_rows(pusher)
        assert _claims(pusher) == {message.key: "done"}
    finally:
        pusher.close()
    assert calls == ["orphan"] and rows[0]["line"] == "line-a" and rows[0]["status"] == "busy"
