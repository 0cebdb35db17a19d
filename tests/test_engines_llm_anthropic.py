"""The Anthropic backend against a local server speaking the documented Messages streaming protocol.

No network here, so no real Claude: each test starts a loopback HTTP server that implements POST
/v1/messages as Anthropic documents it (SSE events message_start, content_block_start, ping,
content_block_delta with text_delta, content_block_stop, message_delta, message_stop; an `error`
event; 401 with an authentication_error body) and stops it in the fixture's teardown.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from cellcall.config import LlmSettings
from cellcall.engines import ChatMessage, EngineError
from cellcall.engines.llm import make_chat_model
from cellcall.engines.llm.anthropic import AnthropicChatModel, anthropic_messages

KEY = "sk-ant-test-0123456789-secret"
SYSTEM = ChatMessage("system", "You are Alex, calling a dental office for Sam Taylor. Answer in one short sentence.")
GREETING = ChatMessage("user", "Hello, Bright Smile Dental, how can I help you?")
WORDS = ["Hi", ",", " this", " is", " Alex", " calling", " for", " Sam", "."]
CANCEL_BOUND_S = 0.05


class MessagesServer(ThreadingHTTPServer):
    """POST /v1/messages as documented; `mode` is "ok", "slow" (one delta per 100 ms) or "overloaded"."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.requests: list[tuple[dict[str, str], dict[str, Any]]] = []
        self.disconnected = threading.Event()
        super().__init__(("127.0.0.1", 0), MessagesHandler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class MessagesHandler(BaseHTTPRequestHandler):
    server: MessagesServer

    def log_message(self, *args: object) -> None:
        pass

    def _event(self, name: str, data: dict[str, Any]) -> None:
        self.wfile.write(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())
        self.wfile.flush()

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
        if self.path != "/v1/messages":
            self.send_error(404)
            return
        if self.headers.get("x-api-key") != KEY:
            data = json.dumps({"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}})
            self.send_response(401)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data.encode())
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        try:
            self._stream(body)
        except (BrokenPipeError, ConnectionResetError):
            self.server.disconnected.set()

    def _stream(self, body: dict[str, Any]) -> None:
        message = {"id": "msg_01", "type": "message", "role": "assistant", "content": [], "model": body["model"]}
        message |= {"stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 25, "output_tokens": 1}}
        self._event("message_start", {"type": "message_start", "message": message})
        self._event(
            "content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
        )
        self._event("ping", {"type": "ping"})
        if self.server.mode == "overloaded":
            self._event("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
            return
        words = WORDS * (30 if self.server.mode == "slow" else 1)
        for word in words:
            delta = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": word}}
            self._event("content_block_delta", delta)
            time.sleep(0.1 if self.server.mode == "slow" else 0.002)
        self._event("content_block_stop", {"type": "content_block_stop", "index": 0})
        end = {"stop_reason": "end_turn", "stop_sequence": None}
        self._event("message_delta", {"type": "message_delta", "delta": end, "usage": {"output_tokens": len(words)}})
        self._event("message_stop", {"type": "message_stop"})


@pytest.fixture
def server() -> Iterator[MessagesServer]:
    server = MessagesServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_anthropic_stream_against_local_server_speaking_the_documented_sse_protocol(
    server: MessagesServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Local server, documented SSE protocol (no network): tokens in order, key in x-api-key, system in `system`."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    settings = LlmSettings(backend="anthropic", base_url=server.url, anthropic_model="claude-test-model")
    model = make_chat_model(settings, Path("/nonexistent"))
    assert isinstance(model, AnthropicChatModel) and model.name == "anthropic:claude-test-model"
    tokens = list(model.stream_chat([SYSTEM, GREETING], max_tokens=40, temperature=0.2))
    assert tokens == WORDS
    headers, body = server.requests[0]
    assert headers["x-api-key"] == KEY and "anthropic-version" in headers
    assert headers.get("authorization", f"Bearer {KEY}") == f"Bearer {KEY}"  # the SDK's own header, if sent, is the key
    assert body["system"] == SYSTEM.content and body["stream"] is True
    assert body["messages"] == [{"role": "user", "content": GREETING.content}]
    assert (body["model"], body["max_tokens"]) == ("claude-test-model", 40) and "temperature" not in body


def test_anthropic_cancel_mid_stream_against_local_sse_server_returns_within_50_ms_and_drops_the_connection(
    server: MessagesServer,
) -> None:
    """Local server, documented SSE protocol (no network): a barge-in stops the reply at once."""
    server.mode = "slow"
    model = AnthropicChatModel("claude-test-model", KEY, server.url)
    cancel = threading.Event()
    seen = 0
    cancelled_at = 0.0
    for _ in model.stream_chat([SYSTEM, GREETING], cancel=cancel):
        seen += 1
        if seen == 3:
            cancel.set()
            cancelled_at = time.perf_counter()
    assert seen == 3 and time.perf_counter() - cancelled_at < CANCEL_BOUND_S
    assert server.disconnected.wait(3.0)  # the worker closed the response at its next token


def test_anthropic_401_from_local_sse_server_is_a_clear_error_without_the_key(
    server: MessagesServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Local server (no network) answering 401 with the documented authentication_error body."""
    wrong = "sk-ant-wrong-key-987654321"
    caplog.set_level(logging.DEBUG)
    with pytest.raises(EngineError) as failure:
        list(AnthropicChatModel("claude-test-model", wrong, server.url).stream_chat([GREETING]))
    message = str(failure.value)
    assert "401" in message and "ANTHROPIC_API_KEY" in message
    assert wrong not in message and wrong not in repr(failure.value) and failure.value.__cause__ is None
    assert wrong not in caplog.text and KEY not in caplog.text


def test_anthropic_error_event_mid_stream_from_local_sse_server_is_an_engine_error(server: MessagesServer) -> None:
    """Local server (no network) sending the documented `error` event (overloaded_error) after message_start."""
    server.mode = "overloaded"
    with pytest.raises(EngineError, match="overloaded") as failure:
        list(AnthropicChatModel("claude-test-model", KEY, server.url).stream_chat([GREETING]))
    assert KEY not in str(failure.value)


def test_anthropic_base_url_and_key_come_from_the_environment(server: MessagesServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """ANTHROPIC_BASE_URL points the SDK at the local server (no network); ANTHROPIC_API_KEY wins over llm.api_key."""
    monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    model = make_chat_model(LlmSettings(backend="anthropic", api_key="sk-from-config"), Path("/nonexistent"))
    assert "".join(model.stream_chat([GREETING])) == "".join(WORDS)
    assert server.requests[0][0]["x-api-key"] == KEY and server.requests[0][1]["model"] == "claude-haiku-4-5"


def test_anthropic_without_a_key_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(EngineError, match="ANTHROPIC_API_KEY"):
        make_chat_model(LlmSettings(backend="anthropic"), Path("/nonexistent"))
    with pytest.raises(EngineError, match="must start with http"):
        AnthropicChatModel("m", KEY, "ftp://x")


def test_messages_are_shaped_for_the_messages_api() -> None:
    wire = [
        {"role": "system", "content": "Be brief."},
        {"role": "assistant", "content": "Hello, this is Alex."},
        {"role": "user", "content": "Hi."},
        {"role": "user", "content": "Who is this?"},
        {"role": "system", "content": "Facts: Sam Taylor."},
    ]
    system, turns = anthropic_messages(wire)
    assert system == "Be brief.\n\nFacts: Sam Taylor."
    assert [t["role"] for t in turns] == ["user", "assistant", "user"]
    assert turns[2]["content"] == "Hi.\nWho is this?"
