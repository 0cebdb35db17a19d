"""The appliance's relay engines: one pool, the three failover engines, and who served what.

Built by `Engines` when `engines.relay` is set; the local engines are passed in as loaders so that
`relay_fallback = "lazy"` loads no model until the relay actually fails.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from cellcall.config import Settings
from cellcall.engines import ChatModel, EngineError, Synthesizer, Transcriber
from cellcall.relay.client import RelayChatModel, RelayError, RelayPool, RelaySynthesizer, RelayTranscriber
from cellcall.relay.failover import FALLBACKS, FailoverChatModel, FailoverSynthesizer, FailoverTranscriber, RelayState

log = logging.getLogger("cellcall.relay")
STT_RATE = 16000  # what the local WhisperTranscriber is built for; the relay resamples if it differs
TTS_RATE = 8000  # what the local PiperSynthesizer renders at


@dataclass
class RelayEngineSet:
    pool: RelayPool
    state: RelayState
    stt: FailoverTranscriber
    tts: FailoverSynthesizer
    llm: FailoverChatModel
    warm_local: bool  # relay_fallback "warm": local engines load while the phone rings too

    def connect(self) -> None:
        """Open the first connection (HELLO) now; a failure marks the relay down, never raises."""
        try:
            self.pool.connect()
        except RelayError as exc:
            self.state.failed(exc)

    def served_by(self) -> dict[str, str]:
        return {"stt": self.stt.last_served, "llm": self.llm.last_served, "tts": self.tts.last_served}


def relay_engine_set(
    settings: Settings,
    local_stt: Callable[[], Transcriber],
    local_tts: Callable[[], Synthesizer],
    local_llm: Callable[[], ChatModel],
) -> RelayEngineSet:
    """The relay engines for `engines.relay`; EngineError for a bad URL or fallback mode."""
    config = settings.engines
    if config.relay_fallback not in FALLBACKS:
        raise EngineError(f"engines.relay_fallback {config.relay_fallback!r}: use one of {', '.join(FALLBACKS)}")
    if config.relay_timeout_s < 1.0:  # the relay's heartbeat comes every 0.5 s
        raise EngineError(f"engines.relay_timeout_s must be at least 1 second, got {config.relay_timeout_s}")
    pool = RelayPool(config.relay, settings.relay.token, config.relay_timeout_s, config.relay_ca)
    state, fallback = RelayState(), config.relay_fallback
    return RelayEngineSet(
        pool,
        state,
        FailoverTranscriber(RelayTranscriber(pool, STT_RATE), local_stt, state, fallback),
        FailoverSynthesizer(RelaySynthesizer(pool, TTS_RATE), local_tts, state, fallback),
        FailoverChatModel(RelayChatModel(pool), local_llm, state, fallback),
        warm_local=fallback == "warm",
    )


def served_label(served: dict[str, str]) -> str:
    """One word when every engine agrees ("relay" / "local"), else each engine's, for the reports."""
    kinds = {kind for kind in served.values() if kind}
    if len(kinds) == 1 and all(served.values()):
        return kinds.pop()
    return " ".join(f"{engine}={kind or '-'}" for engine, kind in served.items())
