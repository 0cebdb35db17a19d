"""The next request's prompt prefix, prefilled while the caller speaks.

The model's history only grows (cellcall.agent.prompt), so each request starts with everything the last
one held plus the exchanges since. Prefilling that prefix when the caller starts to speak takes its cost
off the time the caller waits: the request made at the end of their turn only adds their words. One warm
at a time, on a thread of its own; the loop thread starts it and never waits for it.
"""

from __future__ import annotations

import logging
import threading

from cellcall.engines import ChatMessage, ChatModel

log = logging.getLogger(__name__)


class PrefixWarmer:
    """Owned by the loop thread (`warm`, `join`); the warm itself runs on the "llm-prefix" thread."""

    def __init__(self, llm: ChatModel) -> None:
        self._llm = llm
        self._warmed: tuple[ChatMessage, ...] = ()  # the prefix last sent
        self._thread: threading.Thread | None = None
        self.started = 0  # warms started in this call

    def warm(self, prefix: list[ChatMessage]) -> None:
        """Prefill `prefix` unless it is the one already warmed or a warm is still running."""
        key = tuple(prefix)  # messages are frozen dataclasses: equal when role and text are
        if key == self._warmed or (self._thread is not None and self._thread.is_alive()):
            return
        self._warmed = key
        self._thread = threading.Thread(target=self._run, args=(prefix,), name="llm-prefix", daemon=True)
        self._thread.start()
        self.started += 1

    def _run(self, prefix: list[ChatMessage]) -> None:
        try:
            self._llm.warm(prefix)
        except Exception as exc:  # noqa: BLE001 - a cold cache only makes the next reply prefill it itself
            log.debug("prefix warm failed: %s", exc)

    def join(self, timeout_s: float) -> None:
        """Wait for a running warm: native inference must not outlive the call."""
        if self._thread is not None:
            self._thread.join(timeout_s)
