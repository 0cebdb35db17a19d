"""The agent's first words, made ready while the phone rings so the hello gets an instant answer.

The opening is the goal's `opening` line or one written by code from the persona and objective
(cellcall.agent.brief.default_opening), never by the model: a model asked to "say your opening" read
that instruction aloud. It is synthesised in the background as soon as the TTS is loaded, then the LLM's
prompt cache is warmed with the shared prefix (anchors.md: a cold first request took 1.2-2.6 s).
Thread ownership: the "opening" thread writes `opening.audio` once, then sets `opening.prepared`;
readers wait on that event.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from cellcall.agent.agent import Agent
from cellcall.engines import ChatModel, Synthesizer
from cellcall.voice.loop import APOLOGY, Opening

FALLBACK_OPENING = "Hello, this is an automated assistant."


class OpeningPrep:
    """Fills in an `Opening` in the background: synthesise the line, then warm the LLM."""

    def __init__(
        self,
        agent: Agent,
        tts: Callable[[], Synthesizer],
        llm: Callable[[], ChatModel],
        speak_first: bool,
    ) -> None:
        self.opening = Opening(agent.opening, None, speak_first, FALLBACK_OPENING)
        self._primer = agent.primer()
        self._tts, self._llm = tts, llm
        self.error: str | None = None
        self._thread = threading.Thread(target=self._run, name="opening", daemon=True)

    def start(self) -> OpeningPrep:
        self._thread.start()
        return self

    def join(self, timeout_s: float) -> None:
        """Wait for the background work (if it was started) so no native inference outlives the call."""
        if self._thread.ident is not None:
            self._thread.join(timeout_s)

    def _run(self) -> None:
        try:
            assert self.opening.text is not None
            self.opening.audio = list(self._tts().synthesize(self.opening.text))
            self.opening.apology = list(self._tts().synthesize(APOLOGY))  # in case the engines fail mid-call
        except Exception as exc:  # noqa: BLE001 - the call goes on with a plain-text opening
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            self.opening.prepared.set()
        try:
            self._llm().warm(self._primer)  # after the opening's audio: that is needed first
        except Exception as exc:  # noqa: BLE001 - a cold cache only makes the first reply slower
            self.error = f"{type(exc).__name__}: {exc}"
