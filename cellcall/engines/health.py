"""`cellcall doctor` engine checks: load each engine, run a short smoke test, time both.

TTS runs first so STT can be checked on real speech (its own output) rather than on silence,
which any model "transcribes" as nothing. A failure is reported with its message, never raised.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from cellcall.config import Settings
from cellcall.engines import ChatMessage, ChatModel, EngineError, Synthesizer, Transcriber
from cellcall.engines.cache import Engines
from cellcall.voice.audio import resample

SMOKE_TEXT = "Hello, this is a test."
T = TypeVar("T")


@dataclass
class EngineCheck:
    name: str
    ok: bool
    detail: str
    load_s: float | None
    run_s: float | None


def _timed(step: Callable[[], T]) -> tuple[T, float]:
    started = time.perf_counter()
    return step(), time.perf_counter() - started


def _check(name: str, load: Callable[[], T], run: Callable[[T], str]) -> EngineCheck:
    try:
        engine, load_s = _timed(load)
    except EngineError as exc:
        return EngineCheck(name, False, str(exc), None, None)
    try:
        detail, run_s = _timed(lambda: run(engine))
    except EngineError as exc:
        return EngineCheck(name, False, f"{getattr(engine, 'name', name)}: {exc}", load_s, None)
    return EngineCheck(name, True, f"{getattr(engine, 'name', name)}: {detail}", load_s, run_s)


def check_engines(settings: Settings, engines: Engines | None = None) -> list[EngineCheck]:
    """Load TTS, STT and LLM with these settings (or use `engines`) and run a short request through each."""
    try:
        engines = engines or Engines(settings)
    except EngineError as exc:
        return [EngineCheck("engines", False, str(exc), None, None)]
    speech: list[bytes] = []  # the TTS's output, at rate[0]
    rate: list[int] = []

    def run_tts(tts: Synthesizer) -> str:
        speech.append(b"".join(tts.synthesize(SMOKE_TEXT)))
        rate.append(tts.sample_rate)
        if not speech[0]:
            raise EngineError("synthesized no audio")
        return f"{len(speech[0]) / 2 / tts.sample_rate:.2f} s of audio"

    def run_stt(stt: Transcriber) -> str:
        pcm = resample(speech[0], rate[0], stt.sample_rate) if speech else b"\0\0" * stt.sample_rate
        heard = stt.transcribe(pcm).text
        return f"heard {heard!r}"

    def run_llm(llm: ChatModel) -> str:
        reply = "".join(llm.stream_chat([ChatMessage("user", "Say OK.")], max_tokens=8, temperature=0.0))
        if not reply.strip():
            raise EngineError("the model returned no text")
        return f"replied {reply.strip()[:40]!r}"

    return [
        _check("tts", engines.tts, run_tts),
        _check("stt", engines.stt, run_stt),
        _check("llm", engines.llm, run_llm),
    ]
