"""The caller's current utterance, and the one thread that transcribes utterances, latest first.

Every decode costs a whole window (Whisper's 8 s window here, 30 s through faster-whisper's own path:
docs/stt.md), whether it holds one word or a sentence: the number of decodes is what costs, not their
length. Transcribing at each pause as the caller speaks (or re-decoding after every speculative start)
multiplies that cost, and on two shared cores it queues decodes behind each other for seconds. So each turn
is transcribed whole, only when the loop asks (at each speculative pause, and at the endpoint if no pause
was speculated on), by one worker that always takes the newest request: a request overtaken by a newer one
is dropped unstarted, so at most one decode waits behind the one running. A pause that comes while an
earlier pause's decode still runs is still speculated on: its request waits at most that decode's end,
where skipping it left the turn's words to the endpoint (STT final p90 795 ms against 421, docs/benchmarks.md).
"""

from __future__ import annotations

import threading

from cellcall.engines import Transcriber, Transcript
from cellcall.voice.audio import resample


class Utterance:
    """Audio of one caller turn at the line's rate."""

    def __init__(self, start: float, preroll: bytes = b"") -> None:
        self.start = start  # monotonic time the speech began
        self.pcm = bytearray(preroll)
        self.version = 0  # bumped by every feed, so a transcript knows which audio it covers

    def feed(self, frame: bytes) -> None:
        self.pcm += frame
        self.version += 1

    def seconds(self, rate: int) -> float:
        return len(self.pcm) / 2 / rate


class Ticket:
    """One transcription request; `wait` blocks until it is done (None when it was overtaken)."""

    def __init__(self, pcm: bytes) -> None:
        self.pcm = pcm
        self.result: Transcript | None = None
        self.error: Exception | None = None
        self.done = threading.Event()

    def wait(self, timeout: float | None = None) -> Transcript | None:
        self.done.wait(timeout)
        if self.error is not None:
            raise self.error
        return self.result


class TranscriptionWorker:
    """Transcribes requests one at a time on its own thread; only the newest waiting request runs."""

    def __init__(self, stt: Transcriber, line_rate: int, language: str | None) -> None:
        self.stt = stt
        self.line_rate = line_rate
        self.language = language
        self.decodes = 0
        self._pending: Ticket | None = None
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="stt-worker", daemon=True)
        self._thread.start()

    def request(self, utterance: Utterance) -> Ticket:
        """Queue the utterance as it is now; a request still waiting is overtaken (finished with None)."""
        ticket = Ticket(bytes(utterance.pcm))
        with self._cond:
            overtaken, self._pending = self._pending, ticket
            self._cond.notify()
        if overtaken is not None:
            overtaken.done.set()
        return ticket

    def close(self) -> None:
        with self._cond:
            self._closed = True
            pending, self._pending = self._pending, None
            self._cond.notify()
        if pending is not None:
            pending.done.set()

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._pending is None and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                ticket, self._pending = self._pending, None
                assert ticket is not None
            try:
                pcm = resample(ticket.pcm, self.line_rate, self.stt.sample_rate)
                ticket.result = self.stt.transcribe(pcm, self.language)
                self.decodes += 1
            except Exception as exc:  # noqa: BLE001 - handed to the reply that waits for it
                ticket.error = exc
            ticket.done.set()
