"""Any OpenAI-compatible chat server (llama.cpp server, vLLM, LM Studio): httpx + SSE streaming.

Closing the response on cancel drops the connection, which these servers take as "stop
generating". The API key is sent only as a header and never appears in errors or logs.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx

from cellcall.engines import EngineError
from cellcall.engines.llm.base import Emit, StreamingChatModel


def sse_delta(line: str) -> str | None:
    """Delta text of one SSE line; "" for keep-alives and role-only chunks, None at [DONE]."""
    if not line.startswith("data:"):
        return ""
    data = line[5:].strip()
    if data == "[DONE]":
        return None
    try:
        chunk: dict[str, Any] = json.loads(data)
    except ValueError:
        raise EngineError(f"OpenAI-compatible server sent a non-JSON event: {data[:80]!r}") from None
    if "error" in chunk:
        raise EngineError(f"OpenAI-compatible server error: {chunk['error']}")
    choices = chunk.get("choices") or [{}]
    return (choices[0].get("delta") or {}).get("content") or ""


class OpenAIChatModel(StreamingChatModel):
    """Implements `ChatModel` over POST {base_url}/chat/completions with stream=true."""

    def __init__(self, base_url: str, model: str, api_key: str = "", timeout_s: float = 30.0) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise EngineError(f"llm.base_url must start with http:// or https://, got {base_url!r}")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=httpx.Timeout(timeout_s, connect=2.0))
        self._model = model
        self.name = f"openai:{model}"

    def _producer(self, wire: list[dict[str, str]], max_tokens: int, temperature: float) -> Callable[[Emit], None]:
        body = {"model": self._model, "messages": wire, "max_tokens": max_tokens, "temperature": temperature, "stream": True}

        def produce(emit: Emit) -> None:
            try:
                with self._client.stream("POST", "/chat/completions", json=body) as response:
                    if response.status_code != 200:
                        response.read()
                        raise EngineError(f"OpenAI-compatible server answered {response.status_code}: {response.text[:200]}")
                    for line in response.iter_lines():
                        text = sse_delta(line)
                        if text is None or emit(text):
                            return
            except httpx.HTTPError as exc:
                raise EngineError(f"OpenAI-compatible server at {self._client.base_url}: {exc}") from exc

        return produce
