"""Relay first, local engines when the relay fails: the same three protocols, with attribution.

A request the relay cannot serve (down, token refused, stalled, died) is served again by the local
engine, so the turn goes on; the relay is then skipped for `RETRY_S` so later turns do not each wait
out a deadline. A stream that already yielded part of its answer from the relay is not repeated:
the LLM's reply ends where the relay stopped, a sentence's audio is cut (the next turn is local).
`last_served` ("relay" or "local") is written by the thread that ran the latest request and read
by the voice loop after a turn; `RelayState` is shared by the three engines (its lock guards it).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar, cast

from cellcall.engines import ChatMessage, ChatModel, EngineError, Synthesizer, Transcriber, Transcript
from cellcall.relay.client import RelayError, RelaySynthesizer, RelayTranscriber

log = logging.getLogger("cellcall.relay")
RETRY_S = 30.0  # after a failure, the relay is tried again this long later
FALLBACKS = ("warm", "lazy", "none")
E = TypeVar("E")


class RelayState:
    """Whether the relay is worth trying now (shared by the three engines of one appliance)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._down_until = 0.0
        self.failures = 0
        self.last_error = ""

    def usable(self) -> bool:
        with self._lock:
            return time.monotonic() >= self._down_until

    def failed(self, exc: Exception) -> None:
        with self._lock:
            self._down_until = time.monotonic() + RETRY_S
            self.failures += 1
            self.last_error = str(exc)
        log.warning("relay failed, local engines take over: %s", exc)


class _Failover(Generic[E]):
    """Shared by the three: which engine to use, and who served the last request."""

    def __init__(self, relay: E, local: Callable[[], E], state: RelayState, fallback: str) -> None:
        self._relay, self._local_engine, self._state, self._fallback = relay, local, state, fallback
        self.last_served = ""
        self.name = str(getattr(relay, "name", "relay"))

    def _local(self, exc: Exception) -> E:
        self._state.failed(exc)
        if self._fallback == "none":
            raise EngineError(f"relay failed and engines.relay_fallback is none: {exc}") from exc
        engine = self._local_engine()
        self.last_served = "local"
        return engine

    def _use_relay(self) -> bool:
        if self._state.usable():
            return True
        if self._fallback == "none":
            raise EngineError(f"relay unavailable and engines.relay_fallback is none: {self._state.last_error}")
        return False


class FailoverTranscriber(_Failover[Transcriber]):
    def __init__(self, relay: RelayTranscriber, local: Callable[[], Transcriber], state: RelayState, fallback: str) -> None:
        super().__init__(relay, local, state, fallback)
        self.sample_rate = relay.sample_rate

    def transcribe(self, pcm: bytes, language: str | None = None) -> Transcript:
        if self._use_relay():
            try:
                result = self._relay.transcribe(pcm, language)
                self.last_served = "relay"
                return result
            except RelayError as exc:
                return self._local(exc).transcribe(pcm, language)
        self.last_served = "local"
        return self._local_engine().transcribe(pcm, language)


class FailoverSynthesizer(_Failover[Synthesizer]):
    def __init__(self, relay: RelaySynthesizer, local: Callable[[], Synthesizer], state: RelayState, fallback: str) -> None:
        super().__init__(relay, local, state, fallback)
        self.sample_rate = relay.sample_rate

    def synthesize(self, text: str, cancel: threading.Event | None = None) -> Iterator[bytes]:
        if not self._use_relay():
            self.last_served = "local"
            yield from self._local_engine().synthesize(text, cancel)
            return
        started = False
        try:
            for pcm in self._relay.synthesize(text, cancel):
                started, self.last_served = True, "relay"
                yield pcm
            self.last_served = "relay"
        except RelayError as exc:
            local = self._local(exc)
            if not started:
                yield from local.synthesize(text, cancel)


class FailoverChatModel(_Failover[ChatModel]):
    def stream_chat(
        self,
        messages: list[ChatMessage],
        cancel: threading.Event | None = None,
        max_tokens: int = 160,
        temperature: float = 0.4,
    ) -> Iterator[str]:
        return self._stream(lambda llm: llm.stream_chat(messages, cancel, max_tokens, temperature))

    def stream_json(
        self, messages: list[ChatMessage], schema: dict[str, Any], cancel: threading.Event | None, max_tokens: int
    ) -> Iterator[str]:
        """The summary's schema-held reply (summary.StructuredChatModel); a local model without a
        grammar answers at temperature 0 and the summary's parser checks it, as without a relay."""

        def ask(llm: ChatModel) -> Iterator[str]:
            structured = getattr(llm, "stream_json", None)
            if structured is not None:
                return cast(Iterator[str], structured(messages, schema, cancel, max_tokens))
            return llm.stream_chat(messages, cancel, max_tokens, 0.0)

        return self._stream(ask)

    def _stream(self, ask: Callable[[ChatModel], Iterator[str]]) -> Iterator[str]:
        if not self._use_relay():
            self.last_served = "local"
            yield from ask(self._local_engine())
            return
        started = False
        try:
            for token in ask(self._relay):
                started, self.last_served = True, "relay"
                yield token
            self.last_served = "relay"
        except RelayError as exc:
            local = self._local(exc)
            if not started:
                yield from ask(local)

    def warm(self, messages: list[ChatMessage]) -> None:
        """Warm the relay's prompt cache; a failure there warms the local model instead (unless lazy)."""
        if self._use_relay():
            try:
                self._relay.warm(messages)
                return
            except RelayError as exc:
                self._local(exc).warm(messages)
                return
        self._local_engine().warm(messages)
