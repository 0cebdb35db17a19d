"""The agent's first words, made ready while the phone rings so the hello gets an instant answer.

The goal's `opening` is synthesised in the background as soon as the TTS is loaded, then the LLM's
prompt cache is warmed with the system prompt (anchors.md: a cold first request took 1.2-2.6 s).
A goal without an opening gets one written by the model, also while it rings.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from cellcall.engines import ChatMessage, ChatModel, Synthesizer
from cellcall.engines.sentences import split_sentences
from cellcall.voice.conversation import Conversation
from cellcall.voice.loop import Opening

WRITE_OPENING = "(The call was just answered. Say your opening: greet them and say why you are calling, in one sentence.)"
FALLBACK_OPENING = "Hello, this is an automated assistant."


class OpeningPrep:
    """Fills in an `Opening` in the background: warm the LLM, write the line if needed, synthesise it."""

    def __init__(
        self,
        text: str | None,
        conversation: Conversation,
        tts: Callable[[], Synthesizer],
        llm: Callable[[], ChatModel],
        speak_first: bool,
    ) -> None:
        self.opening = Opening(text, None, speak_first, FALLBACK_OPENING)
        self._conversation = conversation
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
            if not self.opening.text:
                self.opening.text = self._written_by_model(self._llm())
            self.opening.audio = list(self._tts().synthesize(self.opening.text))
        except Exception as exc:  # noqa: BLE001 - the call goes on with a plain-text opening
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            self.opening.prepared.set()
        try:
            self._llm().warm(self._conversation.primer())  # after the opening's audio: that is needed first
        except Exception as exc:  # noqa: BLE001 - a cold cache only makes the first reply slower
            self.error = f"{type(exc).__name__}: {exc}"

    def _written_by_model(self, llm: ChatModel) -> str:
        messages = [self._conversation.system, ChatMessage("user", WRITE_OPENING)]
        sentences = split_sentences(llm.stream_chat(messages, max_tokens=60, temperature=0.3))
        first = next((s.text.strip() for s in sentences if s.text.strip()), "")
        return first or FALLBACK_OPENING
