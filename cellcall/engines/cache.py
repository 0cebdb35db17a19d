"""One lazy, process-wide set of engines, loaded concurrently while the phone rings.

Loading takes seconds (whisper ~1 s, piper ~0.5 s, the GGUF ~1-3 s); `preload()` starts all
three in background threads the moment a call is placed, and each accessor only blocks on its
own engine. `watch` runs many calls in one process, so engines are shared per settings.
The STT is built for 16 kHz (Whisper's rate), so each call converts its line audio once, whatever
the route's rate (8 kHz: one resample; 16 kHz VoLTE: none).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import TYPE_CHECKING, Generic, TypeVar

from cellcall.config import Settings
from cellcall.engines import ChatModel, EngineError, Synthesizer, Transcriber

if TYPE_CHECKING:
    from cellcall.relay.engines import RelayEngineSet

T = TypeVar("T")


class _Lazy(Generic[T]):
    """A value built once, in a background thread on `start()` or inline on first `get()`."""

    def __init__(self, name: str, build: Callable[[], T]) -> None:
        self._name = name
        self._build = build
        self._future: Future[T] | None = None
        self._lock = threading.Lock()

    def start(self) -> Future[T]:
        with self._lock:
            if self._future is None:
                self._future = Future()
                threading.Thread(target=self._run, args=(self._future,), name=f"load-{self._name}", daemon=True).start()
            return self._future

    def _run(self, future: Future[T]) -> None:
        try:
            future.set_result(self._build())
        except Exception as exc:  # noqa: BLE001 - kept for the caller of get(), re-raised there with the engine's name
            future.set_exception(exc)

    def get(self) -> T:
        try:
            return self.start().result()
        except EngineError:
            raise
        except Exception as exc:
            raise EngineError(f"{self._name} engine failed to load: {exc}") from exc


class Engines:
    """STT, TTS and LLM for the settings given; each loaded once, on demand or by `preload()`."""

    def __init__(self, settings: Settings) -> None:
        from cellcall.engines.llm import make_chat_model
        from cellcall.engines.stt import WHISPER_RATE, WhisperTranscriber
        from cellcall.engines.tts import PiperSynthesizer

        cache = settings.cache_dir()
        stt, tts, llm = settings.stt, settings.tts, settings.llm
        for section, backend, supported in (("stt", stt.backend, "faster-whisper"), ("tts", tts.backend, "piper")):
            if backend not in (supported, "wyoming"):
                raise EngineError(f"unknown {section}.backend {backend!r}: use {supported} or wyoming")

        def build_stt() -> Transcriber:
            if stt.backend == "wyoming":  # a wyoming-faster-whisper server at stt.wyoming
                from cellcall.engines.wyoming import WyomingTranscriber

                return WyomingTranscriber(stt.wyoming, WHISPER_RATE)
            return WhisperTranscriber(stt.model, stt.threads, stt.beam_size, WHISPER_RATE, cache, stt.window_s)

        def build_tts() -> Synthesizer:
            if tts.backend == "wyoming":  # a wyoming-piper server at tts.wyoming
                from cellcall.engines.wyoming import WyomingSynthesizer

                return WyomingSynthesizer(tts.wyoming, 8000)
            return PiperSynthesizer(tts.voice, 8000, tts.length_scale)

        self._stt: _Lazy[Transcriber] = _Lazy("stt", build_stt)
        self._tts: _Lazy[Synthesizer] = _Lazy("tts", build_tts)
        self._llm: _Lazy[ChatModel] = _Lazy("llm", lambda: make_chat_model(llm, cache))
        self.relay: RelayEngineSet | None = None  # engines.relay set: the loop's engines go there first
        if settings.engines.relay:
            from cellcall.relay.engines import relay_engine_set

            self.relay = relay_engine_set(settings, self._stt.get, self._tts.get, self._llm.get)

    def preload(self) -> None:
        """Start loading all three in background threads; returns at once.

        One starter thread launches the three loaders, so the caller pays for one thread start
        only (under CPU load each start waits for the scheduler, measured ~100 ms apiece).
        """
        threading.Thread(target=self._start_all, name="load-engines", daemon=True).start()

    def _start_all(self) -> None:
        if self.relay is None or self.relay.warm_local:  # relay_fallback lazy / none: only if the relay fails
            for lazy in (self._stt, self._tts, self._llm):
                lazy.start()
        if self.relay is not None:
            self.relay.connect()  # HELLO while it rings; a relay that is down is found out now

    def stt(self) -> Transcriber:
        return self.relay.stt if self.relay is not None else self._stt.get()

    def tts(self) -> Synthesizer:
        return self.relay.tts if self.relay is not None else self._tts.get()

    def llm(self) -> ChatModel:
        return self.relay.llm if self.relay is not None else self._llm.get()

    def served_by(self) -> dict[str, str]:
        """Who served the latest STT, LLM and TTS request: "relay", "local" or "" (none yet).

        With no relay configured every engine is local. The voice loop reads this after each turn.
        """
        if self.relay is None:
            return {"stt": "local", "llm": "local", "tts": "local"}
        return self.relay.served_by()


_shared: dict[str, Engines] = {}
_shared_lock = threading.Lock()


def _engine_key(settings: Settings) -> str:
    return repr((settings.stt, settings.tts, settings.llm, settings.engines, settings.cache_dir()))


def shared_engines(settings: Settings) -> Engines:
    """The process-wide Engines for these engine settings (watch loads models once)."""
    key = _engine_key(settings)
    with _shared_lock:
        if key not in _shared:
            _shared[key] = Engines(settings)
        return _shared[key]
