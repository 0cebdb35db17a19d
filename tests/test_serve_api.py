"""`cellcall serve`'s API on a real uvicorn server (loopback port) with a real httpx client.

The runner behind it dials for real on the emulated modem (the SIM7600 driver on ptys); the calls
themselves are model-free (serve_support.TalkingCalls / LineOnlyCalls) because routing, auth and the
inbox are the point here. One call through the real voice loop is in test_serve_events.py.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import httpx
import pytest
from runner_support import LineOnlyCalls, atd_count, goal_text, wait_for
from serve_support import BUSY, SCRIPT, TOKEN, TalkingCalls, serve_settings, served

ROUTES = ["/v1/status", "/v1/calls", "/v1/calls/x-0123456789ab", "/v1/calls/x-0123456789ab/transcript", "/v1/events"]


def wait_final(api, call_id: str, timeout: float = 20) -> dict:
    found: dict = {}

    def final() -> bool:
        found.update(api.call(call_id))
        return found["final"]

    wait_for(final, timeout, f"call {call_id} to end")
    return found


def test_a_posted_goal_is_queued_dialled_once_and_readable_on_every_route(tmp_path: Path) -> None:
    settings = serve_settings(tmp_path)
    seam = TalkingCalls(tmp_path / "outbox")
    with served(settings, tmp_path / "goals", seam) as (api, emulator):
        posted = api.post_goal(goal_text(extra="id: Dentist_Friday\n"))
        assert posted.status_code == 202, posted.text
        body = posted.json()
        call_id = body["call_id"]
        assert body["status"] == "queued" and body["goal"] == "dentist-friday" and call_id.startswith("dentist-friday-")
        assert posted.headers["location"] == f"/v1/calls/{call_id}"
        done = wait_final(api, call_id)
        assert done["status"] == "completed" and done["record"]["status"] == "completed"
        assert done["record"]["goal"] == "dentist-friday" and len(done["attempts"]) == 1

        transcript = api.client.get(f"/v1/calls/{call_id}/transcript")
        assert transcript.headers["content-type"].startswith("text/markdown")
        assert all(text in transcript.text for _, text in SCRIPT)
        report = api.client.get(f"/v1/calls/{call_id}/report")
        assert report.status_code == 200 and report.text.startswith("---") and "status: completed" in report.text
        metrics = api.client.get(f"/v1/calls/{call_id}/metrics").json()
        assert [row["first_audio_ms"] for row in metrics["rows"]] == [640.0, 840.0]
        assert metrics["summary"]["first_audio_ms"]["p50"] == 740.0 and metrics["summary"]["first_audio_ms"]["n"] == 2
        audio = api.client.get(f"/v1/calls/{call_id}/audio")
        assert audio.status_code == 404 and "no audio" in audio.json()["error"]  # the test seam records no audio
        listed = api.client.get("/v1/calls", params={"limit": 5}).json()["calls"]
        assert listed[0]["call_id"] == call_id and listed[0]["status"] == "completed"
        status = api.client.get("/v1/status").json()
        assert status["runners"][0]["line"]["state"] == "up" and status["done"] == 1
        assert atd_count(emulator.at_log) == 1 and seam.calls == ["dentist-friday"]
        assert (tmp_path / "goals" / "done" / f"{call_id}.md").read_text() == goal_text(extra="id: Dentist_Friday\n")


def test_token_is_required_on_every_api_route_and_never_logged(tmp_path: Path) -> None:
    settings = serve_settings(tmp_path)
    with served(settings, tmp_path / "goals", LineOnlyCalls(tmp_path / "outbox")) as (api, _):
        for headers in (
            {},
            {"Authorization": "Bearer wrong-" + TOKEN},
            {"Authorization": TOKEN},
            {"Authorization": "Basic " + TOKEN},
        ):
            for path in ROUTES:
                response = httpx.get(api.url + path, headers=headers, timeout=5)
                assert response.status_code == 401, (path, headers, response.text)
                assert response.headers["www-authenticate"] == "Bearer" and "token" in response.json()["error"]
            posted = httpx.post(api.url + "/v1/calls", content=goal_text(), headers=headers, timeout=5)
            assert posted.status_code == 401
        page = httpx.get(api.url + "/", timeout=5)  # the page holds no data: it asks for the token itself
        assert page.status_code == 200 and "script-src 'sha256-" in page.headers["content-security-policy"]
        assert api.client.get("/v1/status").status_code == 200
        assert not list((tmp_path / "goals").glob("*.md"))
        log = api.run.log_stream.getvalue()
    assert TOKEN not in log and "api" not in [p.name for p in (tmp_path / "goals").iterdir() if p.suffix == ".md"]


def test_bad_requests_get_clear_errors_and_leave_nothing_behind(tmp_path: Path) -> None:
    settings = serve_settings(tmp_path)
    goals = tmp_path / "goals"
    with served(settings, goals, LineOnlyCalls(tmp_path / "outbox")) as (api, emulator):
        typo = api.post_goal(goal_text(extra="objectiv: typo\n"))
        assert typo.status_code == 422
        [problem] = typo.json()["errors"]
        assert problem["line"] == 4 and 'did you mean "objective"' in problem["message"]
        bad_number = api.post_goal(goal_text(number="12")).json()["errors"]
        assert bad_number[0]["line"] == 2 and "number" in bad_number[0]["message"]
        assert api.post_goal("no frontmatter at all\n").status_code == 422
        control = api.post_goal("---\nobjective: a\x81b\n---\n")  # found by the fuzz: YAML's own reader error
        assert control.status_code == 422 and "YAML error" in control.json()["errors"][0]["message"]
        not_utf8 = api.client.post("/v1/calls", content=b"---\nnumber: 1\n\xff\xfe\n", headers={"Content-Type": "text/markdown"})
        assert not_utf8.status_code == 422 and not_utf8.json()["errors"] == [{"line": 3, "message": "not UTF-8 text"}]
        expired = api.post_goal(goal_text(extra="not_after: 2020-01-01T00:00:00Z\n"))
        assert expired.status_code == 422 and "expired" in expired.json()["errors"][0]["message"]
        inbound = api.post_goal(goal_text(extra="direction: inbound\n"))
        assert inbound.status_code == 422 and "inbound.md" in inbound.json()["errors"][0]["message"]
        huge = api.post_goal(goal_text() + "x" * (64 * 1024))
        assert huge.status_code == 413 and "64 KiB" in huge.json()["error"]
        chunked = api.client.post(
            "/v1/calls", content=iter([b"---\n"] + [b"x" * 8192] * 9), headers={"Content-Type": "text/markdown"}
        )  # no Content-Length: cut off while streaming
        assert chunked.status_code == 413
        as_json = api.client.post("/v1/calls", json={"goal": "x"})
        assert as_json.status_code == 415 and "text/markdown" in as_json.json()["error"]
        bad_key = api.post_goal(goal_text(), key="has spaces in it")
        assert bad_key.status_code == 422 and "Idempotency-Key" in bad_key.json()["errors"][0]["message"]
        for path in ("/v1/calls/nope-0123456789ab", "/v1/calls/..%2Fetc", "/v1/calls/nope/report", "/v1/calls/nope/audio"):
            missing = api.client.get(path)
            assert missing.status_code == 404 and "error" in missing.json(), path
        assert api.client.post("/v1/calls/nope/hangup").status_code == 404
        assert api.client.get("/v1/calls", params={"limit": "0"}).status_code == 422
        assert api.client.get("/v1/nothing-here").status_code == 404
        assert api.client.delete("/v1/calls").status_code == 405
        time.sleep(0.5)
        assert not [p for p in goals.rglob("*.md")] and atd_count(emulator.at_log) == 0


def test_a_number_the_policy_refuses_gets_403_and_a_refused_report_never_a_dial(tmp_path: Path) -> None:
    settings = serve_settings(tmp_path)
    settings.policy.denylist = ["+1415555"]
    with served(settings, tmp_path / "goals", LineOnlyCalls(tmp_path / "outbox")) as (api, emulator):
        refused = api.post_goal(goal_text(), key="refuse-me")
        assert refused.status_code == 403
        body = refused.json()
        assert body["status"] == "refused" and "denylist" in body["reason"]
        again = api.post_goal(goal_text(), key="refuse-me")  # replayed: no second report
        assert again.status_code == 403 and again.json() == body and again.headers["idempotent-replayed"] == "true"
        view = api.call(body["call_id"])
        assert view["status"] == "refused" and view["record"]["status"] == "refused"
        report = api.client.get(f"/v1/calls/{body['call_id']}/report").text
        assert "status: refused" in report and "denylist" in report
        assert len(list((tmp_path / "outbox").glob("*/*/report.md"))) == 1
        time.sleep(0.5)
        assert atd_count(emulator.at_log) == 0 and not list((tmp_path / "goals").rglob("*.md"))


def test_quiet_hours_queue_the_goal_instead_of_refusing_it(tmp_path: Path) -> None:
    settings = serve_settings(tmp_path)
    settings.policy.quiet_hours, settings.policy.timezone = "00:00-23:59", "UTC"
    with served(settings, tmp_path / "goals", LineOnlyCalls(tmp_path / "outbox")) as (api, emulator):
        posted = api.post_goal(goal_text())
        assert posted.status_code == 202
        time.sleep(0.6)
        assert api.call(posted.json()["call_id"])["status"] == "queued" and atd_count(emulator.at_log) == 0


def test_the_same_idempotency_key_places_one_call_even_from_concurrent_requests(tmp_path: Path) -> None:
    settings = serve_settings(tmp_path)
    seam = LineOnlyCalls(tmp_path / "outbox")
    with served(settings, tmp_path / "goals", seam, scenario=BUSY) as (api, emulator):
        answers: list[httpx.Response] = []
        threads = [threading.Thread(target=lambda: answers.append(api.post_goal(goal_text(), key="order-42"))) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(r.status_code for r in answers) == [202] * 8
        assert len({r.json()["call_id"] for r in answers}) == 1
        assert sum(r.headers.get("idempotent-replayed") == "true" for r in answers) == 7
        call_id = answers[0].json()["call_id"]
        conflict = api.post_goal(goal_text(objective="Something else"), key="order-42")
        assert conflict.status_code == 409 and "different goal" in conflict.json()["errors"][0]["message"]
        assert wait_final(api, call_id)["status"] == "busy"
        time.sleep(0.5)
        assert atd_count(emulator.at_log) == 1 and len(seam.calls) == 1


def test_concurrent_posts_of_different_goals_are_each_called_exactly_once(tmp_path: Path) -> None:
    settings = serve_settings(tmp_path)
    seam = LineOnlyCalls(tmp_path / "outbox")
    with served(settings, tmp_path / "goals", seam, scenario=BUSY) as (api, emulator):
        answers: dict[int, httpx.Response] = {}
        threads = [
            threading.Thread(target=lambda i=i: answers.__setitem__(i, api.post_goal(goal_text(objective=f"Order {i}"))))
            for i in range(10)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert all(r.status_code == 202 for r in answers.values())
        ids = {r.json()["call_id"] for r in answers.values()}
        assert len(ids) == 10
        for call_id in ids:
            assert wait_final(api, call_id, 60)["status"] == "busy"
        time.sleep(0.5)
        assert atd_count(emulator.at_log) == 10 and len(seam.calls) == 10


def test_too_many_requests_get_429_with_retry_after(tmp_path: Path) -> None:
    settings = serve_settings(tmp_path, rate=5)
    with served(settings, tmp_path / "goals", LineOnlyCalls(tmp_path / "outbox")) as (api, _):
        codes = [api.client.get("/v1/calls").status_code for _ in range(7)]
        assert codes[:5] == [200] * 5 and codes[5:] == [429, 429]
        limited = api.client.get("/v1/status")
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
        assert "5 requests per minute" in limited.json()["error"]


def test_hang_up_through_the_api_ends_only_that_call_and_the_runner_goes_on(tmp_path: Path) -> None:
    settings = serve_settings(tmp_path)
    seam = TalkingCalls(tmp_path / "outbox", hold_s=60)
    with served(settings, tmp_path / "goals", seam) as (api, emulator):
        call_id = api.post_goal(goal_text()).json()["call_id"]
        wait_for(lambda: api.call(call_id)["status"] == "running" and seam.spoken.is_set(), 20, "the call to be talking")
        hung = api.client.post(f"/v1/calls/{call_id}/hangup")
        assert hung.status_code == 202 and hung.json() == {"call_id": call_id, "status": "hanging-up"}
        done = wait_final(api, call_id, 10)
        assert done["status"] == "interrupted" and done["record"]["hangup_reason"] == "stopped"
        again = api.client.post(f"/v1/calls/{call_id}/hangup")
        assert again.status_code == 409 and "not in progress" in again.json()["error"]
        seam.hold_s = 0.2
        second = api.post_goal(goal_text(objective="The next one")).json()["call_id"]
        assert wait_final(api, second)["status"] == "completed"
        assert atd_count(emulator.at_log) == 2
        assert any("AT+CHUP" in line for _, way, line in emulator.at_log if way == "rx")


def test_restart_with_calls_queued_loses_nothing_and_redials_nothing(tmp_path: Path) -> None:
    from cellcall.line import LineError

    def no_modem():  # the modem is unplugged: goals queue up, nothing dials
        raise LineError("no modem on /dev/ttyUSB2")

    settings = serve_settings(tmp_path)
    goals = tmp_path / "goals"
    seam = TalkingCalls(tmp_path / "outbox", hold_s=60)
    with served(settings, goals, seam, line_factory=no_modem) as (api, _):
        queued = [api.post_goal(goal_text(objective=f"Queued {i}"), key=f"k{i}").json()["call_id"] for i in range(3)]
        assert [api.call(c)["status"] for c in queued] == ["queued"] * 3
    with served(settings, goals, seam) as (api, emulator):  # restarted, modem back
        wait_for(lambda: api.call(queued[0])["status"] == "running" and seam.spoken.is_set(), 20, "the first call to talk")
    # stopped during the first call: it is interrupted, never redialled; the others wait their turn
    seam.hold_s = 0.2
    with served(settings, goals, seam, scenario=BUSY) as (api, emulator):
        replay = api.post_goal(goal_text(objective="Queued 1"), key="k1")
        assert replay.json()["call_id"] == queued[1] and replay.headers["idempotent-replayed"] == "true"
        finals = {c: wait_final(api, c, 30)["status"] for c in queued}
        assert finals == {queued[0]: "interrupted", queued[1]: "busy", queued[2]: "busy"}
        time.sleep(0.5)
        assert atd_count(emulator.at_log) == 2  # only the two that never dialled
    assert sorted(seam.calls) == sorted(f"{c}" for c in [queued[0], queued[1], queued[2]])
    results = [json.loads(p.read_text()) for p in (goals / "done").glob("*.result.json")]
    assert sorted(r["status"] for r in results) == ["busy", "busy", "interrupted"]


@pytest.mark.parametrize("bad", ["localhost:abc", "nohost", ":80", "[::1]:70000"])
def test_listen_addresses_are_checked(bad: str) -> None:
    from cellcall.serve.auth import ServeError, parse_listen

    with pytest.raises(ServeError, match="must look like 127.0.0.1:8765"):
        parse_listen(bad)
