"""`cellcall serve`'s event stream (SSE) and the POST fuzz, on a real uvicorn server with real HTTP clients.

A whole emulated call is followed from queued to ended; a reader that stops reading (tiny socket
buffer, never recv) is dropped while the runner and a normal reader go on; a vanished reader is
forgotten; the client limit and Last-Event-ID replay hold. The fuzz posts arbitrary bodies and
content types: every answer is a clear 4xx JSON error or a placed call, never a 500.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from pathlib import Path

import httpx
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from runner_support import LineOnlyCalls, goal_text, wait_for
from serve_support import BUSY, SCRIPT, TOKEN, TalkingCalls, serve_settings, served


class EventReader(threading.Thread):
    """Reads /v1/events in a thread; `events` holds (name, data) in arrival order."""

    def __init__(self, url: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.headers = {"Authorization": f"Bearer {TOKEN}", **(headers or {})}
        self.events: list[tuple[str, dict]] = []
        self.status: int | None = None
        self.connected = threading.Event()
        self._response: httpx.Response | None = None
        self.start()

    def run(self) -> None:
        try:
            with httpx.stream("GET", self.url + "/v1/events", headers=self.headers, timeout=httpx.Timeout(10, read=60)) as r:
                self._response, self.status = r, r.status_code
                self.connected.set()
                name = "message"
                for line in r.iter_lines():
                    if line.startswith("event: "):
                        name = line[7:]
                    elif line.startswith("data: "):
                        self.events.append((name, json.loads(line[6:])))
        except (httpx.HTTPError, RuntimeError):
            pass  # closed by close() or by the server
        finally:
            self.connected.set()

    def named(self, name: str, call_id: str | None = None) -> list[dict]:
        return [d for n, d in list(self.events) if n == name and (call_id is None or d.get("call_id") == call_id)]

    def close(self) -> None:
        """Hang up the connection under the blocked reader (closing the response from here would not)."""
        if self._response is not None:
            sock = self._response.extensions["network_stream"].get_extra_info("socket")
            sock.shutdown(socket.SHUT_RDWR)
        self.join(timeout=5)
        assert not self.is_alive()


def test_the_event_stream_follows_a_whole_call_in_order(tmp_path: Path) -> None:
    settings = serve_settings(tmp_path)
    with served(settings, tmp_path / "goals", TalkingCalls(tmp_path / "outbox")) as (api, _):
        reader = EventReader(api.url)
        assert reader.connected.wait(5) and reader.status == 200
        call_id = api.post_goal(goal_text()).json()["call_id"]
        wait_for(lambda: reader.named("ended", call_id), 20, "the ended event")
        reader.close()
    mine = [(n, d) for n, d in reader.events if d.get("call_id") == call_id]
    names = [n for n, _ in mine]
    for earlier, later in (("queued", "dialling"), ("dialling", "answered"), ("answered", "turn"), ("turn", "ended")):
        assert names.index(earlier) < names.index(later), names
    turns = [d for n, d in mine if n == "turn"]
    assert [(t["index"], t["speaker"], t["text"]) for t in turns] == [(i, s.value, text) for i, (s, text) in enumerate(SCRIPT, 1)]
    assert [d["first_audio_ms"] for n, d in mine if n == "latency"] == [640.0, 840.0]
    [ended] = [d for n, d in mine if n == "ended"]
    assert ended["status"] == "completed" and ended["final"] is True and Path(ended["report"]).is_file()
    dialling = next(d for n, d in mine if n == "dialling")
    assert dialling["number"] == "+14155550132" and dialling["attempt"] == 1
    seqs = [d["seq"] for _, d in reader.events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


def test_a_reader_that_stops_reading_is_dropped_and_holds_up_nobody(tmp_path: Path) -> None:
    settings = serve_settings(tmp_path)
    with served(settings, tmp_path / "goals", LineOnlyCalls(tmp_path / "outbox"), scenario=BUSY) as (api, _):
        stuck = socket.socket()
        stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stuck.connect(("127.0.0.1", int(api.url.rsplit(":", 1)[1])))
        stuck.sendall(f"GET /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\r\n".encode())
        good = EventReader(api.url)
        wait_for(lambda: api.client.get("/v1/status").json()["api"]["event_clients"] == 2, 5, "both readers connected")
        filler = "x" * 4000
        started = time.monotonic()
        for i in range(3000):  # ~12 MB the stuck reader never takes
            api.runner.log.emit("noise", i=i, filler=filler)
        emit_s = time.monotonic() - started
        call_id = api.post_goal(goal_text()).json()["call_id"]  # the runner still dials meanwhile
        wait_for(lambda: api.call(call_id)["status"] == "busy", 30, "a call during the flood")
        wait_for(lambda: any(d.get("i") == 2999 for d in good.named("log")), 30, "the good reader to get the last event")
        status = api.client.get("/v1/status").json()["api"]
        print(f"3000 events emitted in {emit_s * 1000:.0f} ms (load {os.getloadavg()[0]:.2f})")
        assert status["dropped_event_clients"] == 1 and status["event_clients"] == 1
        assert [d["i"] for d in good.named("log") if d.get("event") == "noise"] == list(range(3000))
        good.close()
        stuck.close()


def test_a_vanished_reader_is_forgotten_and_the_client_limit_holds(tmp_path: Path) -> None:
    settings = serve_settings(tmp_path)
    settings.api.sse_clients = 2
    with served(settings, tmp_path / "goals", LineOnlyCalls(tmp_path / "outbox")) as (api, _):
        first, second = EventReader(api.url), EventReader(api.url)
        wait_for(lambda: api.client.get("/v1/status").json()["api"]["event_clients"] == 2, 5, "two readers")
        third = httpx.get(api.url + "/v1/events", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5)
        assert third.status_code == 503 and "api.sse_clients" in third.json()["error"]
        raw = socket.create_connection(("127.0.0.1", int(api.url.rsplit(":", 1)[1])))
        first.close()
        wait_for(lambda: api.client.get("/v1/status").json()["api"]["event_clients"] == 1, 5, "the closed reader forgotten")
        raw.sendall(f"GET /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\r\n".encode())
        wait_for(lambda: api.client.get("/v1/status").json()["api"]["event_clients"] == 2, 5, "the raw reader")
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        raw.close()  # vanishes with a reset, mid-stream
        api.runner.log.emit("noise", i=1)
        wait_for(lambda: api.client.get("/v1/status").json()["api"]["event_clients"] == 1, 5, "the vanished reader forgotten")
        second.close()


def test_last_event_id_replays_only_what_was_missed(tmp_path: Path) -> None:
    settings = serve_settings(tmp_path)
    with served(settings, tmp_path / "goals", LineOnlyCalls(tmp_path / "outbox")) as (api, _):
        for i in range(5):
            api.runner.log.emit("noise", i=i)
        reader = EventReader(api.url)
        wait_for(lambda: len([d for d in reader.named("log") if d.get("event") == "noise"]) == 5, 5, "history")
        third = next(d for d in reader.named("log") if d.get("i") == 2)
        reader.close()
        resumed = EventReader(api.url, {"Last-Event-ID": str(third["seq"])})
        wait_for(lambda: len(resumed.named("log")) >= 2, 5, "the replay")
        time.sleep(0.2)
        assert [d["i"] for d in resumed.named("log") if d.get("event") == "noise"] == [3, 4]
        resumed.close()


GOAL_TYPES = st.sampled_from(["text/markdown", "text/plain; charset=utf-8", "application/json", "", "text/markdown; x=1"])
FRONT_KEYS = st.sampled_from(
    ["number", "objective", "persona", "retry", "hangup", "not_before", "voicemail", "tags", "id", "llm"]
)
VALUES = st.one_of(
    st.text(max_size=30), st.integers(), st.just('"+14155550132"'), st.just("[1, 2"), st.just("{a: b}"), st.just("-1e999")
)


@st.composite
def goal_like(draw: st.DrawFn) -> bytes:
    lines = [f"{draw(FRONT_KEYS)}: {draw(VALUES)}" for _ in range(draw(st.integers(0, 6)))]
    body = draw(st.text(max_size=200))
    return ("---\n" + "\n".join(lines) + "\n---\n" + body).encode("utf-8", "surrogatepass")


def test_fuzzed_posts_never_get_a_500_and_every_error_says_what_is_wrong(tmp_path: Path) -> None:
    from cellcall.line import LineError

    def no_modem():
        raise LineError("no modem in this test: nothing may dial")

    settings = serve_settings(tmp_path)
    with served(settings, tmp_path / "goals", LineOnlyCalls(tmp_path / "outbox"), line_factory=no_modem) as (api, _):

        @hsettings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
        @given(
            body=st.one_of(st.binary(max_size=300), goal_like()), kind=GOAL_TYPES, key=st.one_of(st.none(), st.text(max_size=8))
        )
        def check(body: bytes, kind: str, key: str | None) -> None:
            headers = {"Content-Type": kind} if kind else {}
            if key is not None:
                headers["Idempotency-Key"] = key.encode("utf-8", "ignore").decode("latin-1")
            try:
                response = api.client.post("/v1/calls", content=body, headers=headers)
            except (UnicodeEncodeError, httpx.LocalProtocolError):
                return  # httpx itself refuses such a header: nothing was sent
            assert response.status_code in (202, 403, 409, 415, 422), (response.status_code, response.text)
            data = response.json()
            if response.status_code == 202:
                assert data["status"] == "queued" and (tmp_path / "goals" / f"{data['call_id']}.md").is_file()
            elif response.status_code == 403:
                assert data["status"] == "refused" and data["reason"]
            elif "errors" in data:
                assert data["errors"] and all(e["message"] and set(e) == {"line", "message"} for e in data["errors"])
            else:
                assert data["error"]

        check()
