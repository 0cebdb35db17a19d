"""Relay test helpers: small deterministic engines and a relay server on a loopback port.

The engines here stand in for models only in the fast tests (protocol, limits, failover logic);
the slow tests run the real relay process with the real models.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

from cellcall.config import Settings
from cellcall.engines import ChatMessage, Transcript
from cellcall.engines.llm.base import Emit, pump_tokens
from cellcall.relay.server import RelayEngines, RelayServer

TOKEN = "relay-test-token-0123456789abcdef"


class CountingStt:
    """Says how many samples it got, so a test can check the audio crossed intact."""

    sample_rate = 16000
    name = "counting-stt"

    def transcribe(self, pcm: bytes, language: str | None = None) -> Transcript:
        return Transcript(f"{len(pcm) // 2} samples {language or '-'}", len(pcm) / 2 / self.sample_rate, 0.0)


class TickingLlm:
    """One token every `tick_s`, `count` of them; records when it saw its cancel event."""

    name = "ticking-llm"

    def __init__(self, count: int = 5, tick_s: float = 0.001) -> None:
        self.count, self.tick_s = count, tick_s
        self.cancelled_at: float | None = None
        self.warmed: list[list[ChatMessage]] = []

    def stream_chat(self, messages, cancel=None, max_tokens: int = 160, temperature: float = 0.4) -> Iterator[str]:
        """Through `pump_tokens`, as every real backend: a producer thread told to stop at its next token."""

        def produce(emit: Emit) -> None:
            for i in range(min(self.count, max_tokens)):
                time.sleep(self.tick_s)
                if emit(f"t{i} "):
                    self.cancelled_at = time.monotonic()
                    return

        return pump_tokens(produce, cancel)

    def warm(self, messages: list[ChatMessage]) -> None:
        self.warmed.append(list(messages))


class ToneTts:
    """Three 100 ms chunks of a constant level per text."""

    sample_rate = 8000
    name = "tone-tts"

    def synthesize(self, text: str, cancel: threading.Event | None = None) -> Iterator[bytes]:
        for _ in range(3):
            if cancel is not None and cancel.is_set():
                return
            yield (1000).to_bytes(2, "little", signed=True) * 800


def relay_settings(token: str = TOKEN, **relay: object) -> Settings:
    settings = Settings()
    settings.relay.listen, settings.relay.token = "127.0.0.1:0", token
    for key, value in relay.items():
        setattr(settings.relay, key, value)
    return settings


@contextlib.contextmanager
def running_relay(settings: Settings, engines: RelayEngines | None = None) -> Iterator[tuple[RelayServer, str]]:
    """A RelayServer in a thread on a free loopback port; yields it and its tcp:// URL."""
    server = RelayServer(settings, engines or RelayEngines(CountingStt(), ToneTts(), TickingLlm()))
    thread = threading.Thread(target=server.serve_forever, name="test-relay", daemon=True)
    thread.start()
    try:
        yield server, f"tcp://127.0.0.1:{server.port}"
    finally:
        server.stop()
        thread.join(2.0)
