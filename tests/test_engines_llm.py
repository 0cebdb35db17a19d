"""Chat backends: the embedded Qwen2.5 0.5B (real), OpenAI HTTP (against the embedded server's own
/v1 endpoint), and Ollama (protocol-level: no Ollama server can be installed on this machine)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from speech import embedded_llm

from cellcall.config import LlmSettings
from cellcall.engines import ChatMessage, ChatModel, EngineError
from cellcall.engines.llm import make_chat_model
from cellcall.engines.llm.ollama import OllamaChatModel, ollama_host
from cellcall.engines.llm.openai import OpenAIChatModel
from cellcall.engines.sentences import split_sentences

CANCEL_BOUND_S = 0.05
SYSTEM = ChatMessage("system", "You are Alex, calling a dental office for Sam Taylor. Answer in one short sentence.")
GREETING = ChatMessage("user", "Hello, Bright Smile Dental, how can I help you?")


def _time_to_stop(stream: Iterator[str], cancel: threading.Event, after_tokens: int) -> tuple[float, int]:
    """Set `cancel` after some tokens; seconds until the iterator is exhausted, tokens seen."""
    seen = 0
    cancelled_at = None
    for _ in stream:
        seen += 1
        if seen == after_tokens:
            cancel.set()
            cancelled_at = time.perf_counter()
    assert cancelled_at is not None, "the stream ended before it could be cancelled"
    return time.perf_counter() - cancelled_at, seen


@pytest.mark.slow
def test_embedded_streams_tokens_and_reports_speed() -> None:
    llm = embedded_llm()
    assert isinstance(llm, ChatModel)
    llm.warm([SYSTEM])
    started = time.perf_counter()
    stamps, tokens = [], []
    for token in llm.stream_chat([SYSTEM, GREETING], max_tokens=24):
        stamps.append(time.perf_counter() - started)
        tokens.append(token)
    reply = "".join(tokens)
    print(f"first token {stamps[0] * 1000:.0f} ms, {len(tokens) / stamps[-1]:.1f} tokens/s: {reply!r}")
    assert len(tokens) >= 3 and reply.strip()


@pytest.mark.slow
def test_embedded_cancel_stops_within_50_ms_mid_reply_and_the_model_stays_usable() -> None:
    llm = embedded_llm()
    cancel = threading.Event()
    long_ask = ChatMessage("user", "Please tell me a long story about your day, with many details.")
    stop_s, seen = _time_to_stop(llm.stream_chat([SYSTEM, long_ask], cancel=cancel, max_tokens=200), cancel, 3)
    print(f"mid-reply cancel returned in {stop_s * 1000:.2f} ms after {seen} tokens")
    assert stop_s < CANCEL_BOUND_S and seen == 3
    assert "".join(llm.stream_chat([SYSTEM, GREETING], max_tokens=8)).strip()


@pytest.mark.slow
def test_embedded_cancel_during_prompt_processing_returns_within_50_ms() -> None:
    llm = embedded_llm()
    cancel = threading.Event()
    padding = ChatMessage("user", "Here are my notes: " + "the patient prefers mornings; " * 120)
    stream = llm.stream_chat([SYSTEM, padding], cancel=cancel, max_tokens=50)
    timer = threading.Timer(0.02, cancel.set)
    timer.start()
    timer.join()
    started = time.perf_counter()
    list(stream)
    stop_s = time.perf_counter() - started
    print(f"cancel while the prompt was still being read returned in {stop_s * 1000:.2f} ms")
    assert stop_s < CANCEL_BOUND_S


@pytest.mark.slow
def test_embedded_reply_tags_are_lifted_out_of_the_spoken_text() -> None:
    llm = embedded_llm()
    messages = [
        ChatMessage("system", "When the caller says goodbye, reply exactly: Goodbye, have a nice day! [HANGUP]"),
        ChatMessage("user", "Thanks, that is all. Goodbye!"),
    ]
    sentences = list(split_sentences(llm.stream_chat(messages, max_tokens=16, temperature=0.0)))
    print(sentences)
    assert any("HANGUP" in s.tags for s in sentences)
    assert all("[" not in s.text and "HANGUP" not in s.text.upper() for s in sentences)
    assert any(s.text for s in sentences)


@pytest.mark.slow
def test_openai_backend_streams_and_cancels_against_the_embedded_llama_cpp_http_server() -> None:
    llm = embedded_llm()
    client = OpenAIChatModel(llm.base_url, "qwen2.5-0.5b", api_key="sk-test-not-logged")
    reply = "".join(client.stream_chat([SYSTEM, GREETING], max_tokens=8))
    assert reply.strip()
    cancel = threading.Event()
    stop_s, _ = _time_to_stop(client.stream_chat([SYSTEM, GREETING], cancel=cancel, max_tokens=100), cancel, 2)
    assert stop_s < CANCEL_BOUND_S


def test_openai_backend_reports_http_errors_without_the_api_key() -> None:
    client = OpenAIChatModel("http://127.0.0.1:9/v1", "m", api_key="sk-secret-value")
    with pytest.raises(EngineError) as info:
        list(client.stream_chat([GREETING]))
    assert "sk-secret-value" not in str(info.value)
    with pytest.raises(EngineError, match="http"):
        OpenAIChatModel("127.0.0.1:8080", "m")


class _OllamaProtocolServer(ThreadingHTTPServer):
    """Speaks Ollama's documented API: GET /api/version, POST /api/chat streaming NDJSON."""

    def __init__(self, words: list[str], delay_s: float) -> None:
        self.words, self.delay_s = words, delay_s
        self.requests: list[dict] = []
        self.disconnected = threading.Event()
        super().__init__(("127.0.0.1", 0), _OllamaHandler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _OllamaHandler(BaseHTTPRequestHandler):
    server: _OllamaProtocolServer

    def log_message(self, *args: object) -> None:
        pass

    def _json(self, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path == "/api/version":
            self._json({"version": "0.12.6"})
        else:
            self.send_error(404)

    def do_POST(self) -> None:
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append(request)
        if request["model"] != "qwen2.5:0.5b":
            self.send_response(404)
            self.end_headers()
            self.wfile.write(json.dumps({"error": f"model '{request['model']}' not found"}).encode())
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.end_headers()
        try:
            for word in self.server.words:
                chunk = {
                    "model": request["model"],
                    "created_at": "2026-11-26T10:00:00Z",
                    "message": {"role": "assistant", "content": word},
                    "done": False,
                }
                self.wfile.write((json.dumps(chunk) + "\n").encode())
                self.wfile.flush()
                time.sleep(self.server.delay_s)
            final = {
                "model": request["model"],
                "message": {"role": "assistant", "content": ""},
                "done": True,
                "done_reason": "stop",
            }
            self.wfile.write((json.dumps(final) + "\n").encode())
        except (BrokenPipeError, ConnectionResetError):
            self.server.disconnected.set()


@pytest.fixture
def ollama_server() -> Iterator[_OllamaProtocolServer]:
    server = _OllamaProtocolServer(["Sure", ",", " Friday", " works", ".", " [HANG", "UP]"] + [" more"] * 40, delay_s=0.03)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_ollama_backend_streams_the_documented_ndjson_protocol_no_server_installable(ollama_server) -> None:
    """No Ollama server can be installed here: a local server speaks /api/chat NDJSON instead."""
    model = make_chat_model(LlmSettings(backend="auto", ollama_host=ollama_server.url), Path("/nonexistent"))
    assert isinstance(model, OllamaChatModel) and model.name == "ollama:qwen2.5:0.5b"
    sentences = list(split_sentences(model.stream_chat([SYSTEM, GREETING], max_tokens=7, temperature=0.2)))
    assert sentences[0].text == "Sure, Friday works." and "HANGUP" in sentences[1].tags
    sent = ollama_server.requests[0]
    assert sent["stream"] is True and sent["options"] == {"num_predict": 7, "temperature": 0.2}
    assert sent["messages"][0] == {"role": "system", "content": SYSTEM.content}


def test_ollama_cancel_returns_within_50_ms_and_drops_the_connection(ollama_server) -> None:
    """Protocol-level (no Ollama server installable): cancelling closes the HTTP stream."""
    model = OllamaChatModel("qwen2.5:0.5b", ollama_server.url)
    cancel = threading.Event()
    stop_s, _ = _time_to_stop(model.stream_chat([GREETING], cancel=cancel), cancel, 3)
    assert stop_s < CANCEL_BOUND_S
    assert ollama_server.disconnected.wait(2.0)


def test_ollama_missing_model_is_a_clear_error(ollama_server) -> None:
    with pytest.raises(EngineError, match="not found"):
        list(OllamaChatModel("llama9:70b", ollama_server.url).stream_chat([GREETING]))


def test_auto_falls_back_to_embedded_when_ollama_does_not_answer(monkeypatch) -> None:
    monkeypatch.delenv("OLLAMA_HOST", raising=False)
    settings = LlmSettings(backend="auto", ollama_host="http://127.0.0.1:9", model="/nonexistent/model.gguf")
    started = time.perf_counter()
    with pytest.raises(EngineError, match="GGUF model file not found"):
        make_chat_model(settings, Path("/nonexistent"))
    assert time.perf_counter() - started < 1.0


def test_settings_mistakes_are_clear_errors(monkeypatch) -> None:
    with pytest.raises(EngineError, match="unknown llm backend"):
        make_chat_model(LlmSettings(backend="gpt"), Path("/tmp"))
    with pytest.raises(EngineError, match="base_url"):
        make_chat_model(LlmSettings(backend="openai"), Path("/tmp"))
    with pytest.raises(EngineError, match="unknown LLM model"):
        make_chat_model(LlmSettings(backend="embedded", model="gpt-4"), Path("/tmp"))
    with pytest.raises(EngineError, match="unknown chat role"):
        list(OpenAIChatModel("http://127.0.0.1:9/v1", "m").stream_chat([ChatMessage("tool", "x")]))
    monkeypatch.setenv("OLLAMA_HOST", "0.0.0.0:11500")
    assert ollama_host() == "http://127.0.0.1:11500"
    assert ollama_host("http://gpu-box:11434") == "http://gpu-box:11434"
