"""Speech and language engines behind three small shapes (Pipecat's STT / LLM / TTS split).

The voice loop only sees these protocols, so any backend (local, remote, offloaded) can be swapped.
Audio crossing these shapes is s16le mono PCM at the line's rate (8 kHz unless said otherwise).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


class EngineError(RuntimeError):
    """An engine cannot run: missing model package, unreachable server, bad model file."""


@dataclass(frozen=True)
class Transcript:
    text: str
    audio_s: float  # seconds of audio transcribed
    compute_s: float  # wall time spent


@runtime_checkable
class Transcriber(Protocol):
    sample_rate: int  # rate of the PCM it is given

    def transcribe(self, pcm: bytes, language: str | None = None) -> Transcript: ...


@runtime_checkable
class Synthesizer(Protocol):
    sample_rate: int  # rate of the PCM it yields

    def synthesize(self, text: str, cancel: threading.Event | None = None) -> Iterator[bytes]:
        """PCM chunks as soon as they are ready; stops promptly once `cancel` is set."""


@dataclass(frozen=True)
class ChatMessage:
    role: str  # "system" | "user" | "assistant"
    content: str


@runtime_checkable
class ChatModel(Protocol):
    name: str

    def stream_chat(
        self,
        messages: list[ChatMessage],
        cancel: threading.Event | None = None,
        max_tokens: int = 160,
        temperature: float = 0.4,
    ) -> Iterator[str]:
        """Token texts as they are generated; stops within 50 ms of `cancel` being set."""

    def warm(self, messages: list[ChatMessage]) -> None:
        """Prime the prompt cache with the system prompt (called while the phone rings)."""
