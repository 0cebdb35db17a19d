"""The call's transcript as the voice loop writes it: turns in order, the caller's words once transcribed.

A caller turn is committed before its words are known (the reply starts on the audio); its words join
the transcript when their transcription lands, whatever became of the reply (a cut or cancelled reply
still heard them). Owned by the voice loop's thread; the listener hears each turn as it is added.
"""

from __future__ import annotations

import time

from cellcall.observe import CallObserver
from cellcall.record import Speaker, Turn
from cellcall.voice.reply import words_only
from cellcall.voice.utterance import Ticket

Words = tuple[Ticket, float]  # a transcription on its way, and when the caller began saying it (monotonic)


class Transcript:
    def __init__(self, listener: CallObserver, t0: float) -> None:
        self.listener = listener
        self.t0 = t0
        self.turns: list[Turn] = []
        self._coming: list[Words] = []  # committed caller turns whose words are on their way

    def add(self, speaker: Speaker, text: str, at: float, barged_in: bool = False, spoken_text: str | None = None) -> None:
        """A turn that began at monotonic time `at`."""
        turn = Turn(len(self.turns) + 1, speaker, text, round(max(0.0, at - self.t0), 2), barged_in, spoken_text)
        self.turns.append(turn)
        self.listener.on_turn(turn)

    def expect(self, words: Words) -> None:
        self._coming.append(words)

    def collect(self, wait_s: float = 0.0) -> None:
        """Add the caller's words whose transcription is done (waiting up to `wait_s` at the call's end)."""
        deadline = time.monotonic() + wait_s
        for ticket, start in list(self._coming):
            if not ticket.done.wait(max(0.0, deadline - time.monotonic())):
                continue
            self._coming.remove((ticket, start))
            heard = ticket.result if ticket.error is None else None
            text = words_only(heard.text) if heard is not None else ""
            if text:
                self.add(Speaker.CALLER, text, start)
