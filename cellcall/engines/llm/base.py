"""What every chat backend shares: the token pump that makes any backend cancellable in 10 ms.

Backends produce tokens in a worker thread (a C++ callback, an HTTP stream); the caller's
iterator polls its cancel event between tokens, so a barge-in returns control at once even while
the backend is still busy with a long prompt. The worker is told to stop at its next token.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator

from cellcall.engines import ChatMessage, EngineError

POLL_S = 0.01  # how often a waiting stream looks at its cancel event

Emit = Callable[[str], bool]  # hands one token to the reader; True means "stop producing"
_DONE = object()


def pump_tokens(produce: Callable[[Emit], None], cancel: threading.Event | None = None) -> Iterator[str]:
    """Run `produce(emit)` in a daemon thread and yield its tokens until done or cancelled."""
    tokens: queue.Queue[object] = queue.Queue()
    stopped = threading.Event()

    def emit(token: str) -> bool:
        if stopped.is_set() or (cancel is not None and cancel.is_set()):
            return True
        tokens.put(token)
        return False

    def run() -> None:
        try:
            produce(emit)
        except Exception as exc:  # noqa: BLE001 - surfaced to the reader below, with the backend's message
            tokens.put(exc)
        finally:
            tokens.put(_DONE)

    threading.Thread(target=run, name="llm-stream", daemon=True).start()
    try:
        while not (cancel is not None and cancel.is_set()):
            try:
                item = tokens.get(timeout=POLL_S)
            except queue.Empty:
                continue
            if item is _DONE:
                return
            if isinstance(item, EngineError):
                raise item
            if isinstance(item, Exception):
                raise EngineError(f"LLM stream failed: {item}") from item
            assert isinstance(item, str)
            yield item
    finally:
        stopped.set()


def as_dicts(messages: list[ChatMessage]) -> list[dict[str, str]]:
    """The OpenAI/Ollama wire shape; rejects roles the chat templates do not know."""
    out = []
    for message in messages:
        if message.role not in ("system", "user", "assistant"):
            raise EngineError(f"unknown chat role {message.role!r}: use system, user or assistant")
        out.append({"role": message.role, "content": message.content})
    return out


class StreamingChatModel:
    """What every backend shares: a backend only says how to produce tokens for one request.

    `stream_chat` runs that producer through `pump_tokens` (so every backend cancels the same
    way), and the default `warm` sends the prompt once for a single token.
    """

    name: str

    def _producer(self, wire: list[dict[str, str]], max_tokens: int, temperature: float) -> Callable[[Emit], None]:
        raise NotImplementedError

    def stream_chat(
        self,
        messages: list[ChatMessage],
        cancel: threading.Event | None = None,
        max_tokens: int = 160,
        temperature: float = 0.4,
    ) -> Iterator[str]:
        produce = self._producer(as_dicts(messages), max_tokens, temperature)
        return (token for token in pump_tokens(produce, cancel) if token)

    def warm(self, messages: list[ChatMessage]) -> None:
        for _ in self.stream_chat(messages, max_tokens=1):
            pass
