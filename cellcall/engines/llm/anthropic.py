"""Claude over Anthropic's Messages API: the official `anthropic` SDK, streaming server-sent events.

The key comes from ANTHROPIC_API_KEY (or llm.api_key) and goes only into the SDK's x-api-key header:
errors are rebuilt from the status and the API's error type, with the key scrubbed, so it never
reaches a log, report or message. The base URL is llm.base_url, else ANTHROPIC_BASE_URL, else the
SDK's default. Cancelling works as for every backend (`pump_tokens`): the reader returns at once,
and the worker leaves the stream's context at its next token, which closes the HTTP response.
The SDK client is owned by the model; each request's stream is owned by its worker thread.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from cellcall.engines import ChatMessage, EngineError
from cellcall.engines.llm.base import Emit, StreamingChatModel

DEFAULT_MODEL = "claude-haiku-4-5"
KEY_ENV = "ANTHROPIC_API_KEY"
OPENING = "(The call is connected.)"  # the API wants a user turn first; the agent may speak first on a call


def api_key(configured: str = "") -> str:
    """ANTHROPIC_API_KEY, else the configured llm.api_key; "" when neither is set."""
    return os.environ.get(KEY_ENV, "").strip() or configured.strip()


def anthropic_messages(wire: list[dict[str, str]]) -> tuple[str, list[dict[str, str]]]:
    """System prompts joined into Anthropic's `system` parameter; the turns, same roles merged, user first."""
    system = "\n\n".join(m["content"] for m in wire if m["role"] == "system")
    turns: list[dict[str, str]] = []
    for message in wire:
        if message["role"] == "system":
            continue
        if turns and turns[-1]["role"] == message["role"]:
            turns[-1] = {"role": message["role"], "content": turns[-1]["content"] + "\n" + message["content"]}
        else:
            turns.append({"role": message["role"], "content": message["content"]})
    if not turns or turns[0]["role"] != "user":
        turns.insert(0, {"role": "user", "content": OPENING})
    return system, turns


class AnthropicChatModel(StreamingChatModel):
    """Implements `ChatModel` with `client.messages.stream(...)`, yielding each text delta."""

    def __init__(self, model: str, key: str, base_url: str = "", timeout_s: float = 30.0) -> None:
        if not key:
            raise EngineError(f"llm backend 'anthropic' needs an API key: set {KEY_ENV} in the environment")
        if base_url and not base_url.startswith(("http://", "https://")):
            raise EngineError(f"llm.base_url must start with http:// or https://, got {base_url!r}")
        import anthropic

        self._key = key
        self._client = anthropic.Anthropic(
            api_key=key,
            base_url=base_url or None,
            default_headers={"x-api-key": key},  # the documented header; this SDK also sends Authorization: Bearer
            timeout=anthropic.Timeout(timeout_s, connect=2.0),
            max_retries=0,
        )
        self._model = model or DEFAULT_MODEL
        self.name = f"anthropic:{self._model}"

    def _error(self, exc: Exception) -> EngineError:
        """The API's status and error type in words, never the key (scrubbed even if a server echoes it)."""
        import anthropic

        if isinstance(exc, anthropic.AuthenticationError):
            text = f"Anthropic rejected the API key (401): check {KEY_ENV}"
        elif isinstance(exc, anthropic.APIStatusError):
            body: Any = exc.body if isinstance(exc.body, dict) else {}
            error = body.get("error", body) if isinstance(body, dict) else {}
            kind = error.get("type", "error") if isinstance(error, dict) else "error"
            detail = error.get("message", "") if isinstance(error, dict) else ""
            text = f"Anthropic API answered {exc.status_code} ({kind}): {str(detail)[:200]}"
        elif isinstance(exc, anthropic.APIConnectionError):
            text = f"cannot reach the Anthropic API at {self._client.base_url}: {exc.__class__.__name__}"
        else:
            text = f"Anthropic stream failed: {str(exc)[:200]}"
        return EngineError(text.replace(self._key, "[key]"))

    def _producer(self, wire: list[dict[str, str]], max_tokens: int, temperature: float) -> Callable[[Emit], None]:
        import anthropic

        system, turns = anthropic_messages(wire)
        # No temperature: this SDK's Messages API no longer takes one (current Claude models set their own).
        request: dict[str, Any] = {"model": self._model, "max_tokens": max_tokens}
        if system:
            request["system"] = system

        def produce(emit: Emit) -> None:
            try:
                with self._client.messages.stream(messages=turns, **request) as stream:  # type: ignore[arg-type]
                    for text in stream.text_stream:
                        if emit(text):
                            return  # leaving the context closes the response: the server stops generating
            except anthropic.AnthropicError as exc:
                raise self._error(exc) from None

        return produce

    def warm(self, messages: list[ChatMessage]) -> None:
        """Nothing to fill: a hosted model keeps no local prompt cache, and a warm-up request costs money."""
