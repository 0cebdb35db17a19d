"""Ollama chat backend (the deployment default on the Jetson): the official client, streaming.

The host comes from settings, else OLLAMA_HOST, else http://127.0.0.1:11434, normalised the way
the Ollama client does it. `auto` uses this backend only when the server answers a cheap
/api/version probe within 300 ms, so a missing Ollama never delays the call.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import httpx

from cellcall.engines import EngineError
from cellcall.engines.llm.base import Emit, StreamingChatModel

DEFAULT_HOST = "http://127.0.0.1:11434"
PROBE_TIMEOUT_S = 0.3


def ollama_host(configured: str = "") -> str:
    """Settings, else OLLAMA_HOST, else the default; "0.0.0.0:11434" becomes a loopback URL."""
    from ollama._client import _parse_host

    host = _parse_host(configured or os.environ.get("OLLAMA_HOST") or DEFAULT_HOST)
    return host.replace("://0.0.0.0", "://127.0.0.1")


def ollama_reachable(host: str, timeout_s: float = PROBE_TIMEOUT_S) -> bool:
    try:
        return httpx.get(f"{host}/api/version", timeout=timeout_s).status_code == 200
    except httpx.HTTPError:
        return False


class OllamaChatModel(StreamingChatModel):
    """Implements `ChatModel` over Ollama's /api/chat NDJSON stream; `warm` loads the model."""

    def __init__(self, model: str, host: str) -> None:
        if not model:
            raise EngineError("llm.ollama_model is empty: name an Ollama model, e.g. qwen2.5:0.5b")
        from ollama import Client

        self._client = Client(host=host, timeout=httpx.Timeout(30.0, connect=2.0))
        self._model = model
        self.host = host
        self.name = f"ollama:{model}"

    def _producer(self, wire: list[dict[str, str]], max_tokens: int, temperature: float) -> Callable[[Emit], None]:
        def produce(emit: Emit) -> None:
            from ollama import ResponseError

            try:
                stream = self._client.chat(
                    self._model, wire, stream=True, options={"num_predict": max_tokens, "temperature": temperature}
                )
                for chunk in stream:
                    if emit(chunk.message.content or ""):
                        getattr(stream, "close", lambda: None)()  # a generator: closes the HTTP response, so the server stops
                        return
            except (ResponseError, httpx.HTTPError, ConnectionError) as exc:
                raise EngineError(f"ollama at {self.host}: {exc}") from exc

        return produce
