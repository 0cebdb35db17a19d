"""The agent's side of the line: what was queued, what is playing, and stopping it at once.

Every chunk goes to the line with a tag, so the line's TX_STARTED event says when it really began
to play; that feeds the echo gate, the recording and the first-audio span. A generation number makes
cancellation race-free: a worker writing a chunk of a cancelled reply is refused under the same lock
that `cut` holds while it clears the line, so nothing stale slips onto the uplink after a barge-in.
"""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass, field

from cellcall.line import Line, LineEvent
from cellcall.voice.audio import duration_ms
from cellcall.voice.echo import EchoGate
from cellcall.voice.interruption import resume_offset
from cellcall.voice.recording import Recorder


@dataclass
class Chunk:
    """One queued piece of agent audio and whose it is."""

    generation: int
    owner: object  # the reply (or announcement) that produced it
    sentence: int  # index of the sentence inside its reply
    pcm: bytes
    started: float | None = None
    seq: int = field(default_factory=itertools.count().__next__)


class Playback:
    """Queues agent audio on the line and tracks it until it has played."""

    def __init__(self, line: Line, echo: EchoGate, recorder: Recorder) -> None:
        self.line = line
        self.echo = echo
        self.recorder = recorder
        self.generation = 0
        self._pending: dict[int, Chunk] = {}
        self._on_air: list[Chunk] = []  # started chunks still (or lately) playing, for pause
        self._playing_until = 0.0
        self._lock = threading.Lock()

    def write(self, generation: int, owner: object, sentence: int, pcm: bytes) -> bool:
        """Queue `pcm` unless its generation was cancelled; returns whether it was queued."""
        if not pcm:
            return True
        with self._lock:
            if generation != self.generation:
                return False
            chunk = Chunk(generation, owner, sentence, pcm)
            self._pending[chunk.seq] = chunk
            self.line.write(pcm, tag=chunk.seq)
        return True

    def on_started(self, event: LineEvent) -> Chunk | None:
        """A TX_STARTED event: the chunk is on air from event.at; None for tags that are not ours/stale."""
        with self._lock:
            chunk = self._pending.pop(event.tag, None) if isinstance(event.tag, int) else None
            if chunk is None or chunk.generation != self.generation:
                return None
            chunk.started = event.at
            self._on_air = [c for c in self._on_air if c.started is not None and c.started + self._seconds(c) > event.at]
            self._on_air.append(chunk)
            self._playing_until = max(self._playing_until, event.at + self._seconds(chunk))
        self.echo.played(event.at, chunk.pcm)
        self.recorder.agent(event.at, chunk.pcm)
        return chunk

    def cut(self, at: float | None = None) -> int:
        """Stop everything now: new generation, queue dropped, port flushed. Returns the new generation."""
        at = time.monotonic() if at is None else at
        with self._lock:
            self._cut_locked(at)
        self.echo.stop(at)
        self.recorder.cut(at)
        return self.generation

    def pause(self, at: float, owner: object) -> list[tuple[int, bytes]]:
        """Stop everything now, like `cut`, and return `owner`'s audio that had not been heard yet as
        (sentence, pcm): from a word gap shortly before `at` in the chunk on air, then the queued chunks."""
        rate = self.echo.sample_rate
        with self._lock:
            rest: list[tuple[int, bytes]] = []
            for chunk in sorted(self._on_air, key=lambda c: c.seq):
                if chunk.owner is not owner or chunk.started is None:
                    continue
                played = round((at - chunk.started) * rate) * 2
                if played < len(chunk.pcm):
                    rest.append((chunk.sentence, chunk.pcm[resume_offset(chunk.pcm, max(0, played), rate) :]))
            queued = sorted((c for c in self._pending.values() if c.owner is owner), key=lambda c: c.seq)
            rest += [(chunk.sentence, chunk.pcm) for chunk in queued]
            self._cut_locked(at)
        self.echo.stop(at)
        self.recorder.cut(at)
        return rest

    def _cut_locked(self, at: float) -> None:
        self.generation += 1
        self._pending.clear()
        self._on_air.clear()
        self.line.clear_tx()
        self._playing_until = min(self._playing_until, at)

    def _seconds(self, chunk: Chunk) -> float:
        return duration_ms(chunk.pcm, self.echo.sample_rate) / 1000

    def busy(self, now: float) -> bool:
        """Agent audio is queued or still in the air."""
        with self._lock:
            return bool(self._pending) or now < self._playing_until or self.line.tx_queued_ms() > 0

    def pending_for(self, owner: object) -> int:
        """Chunks of `owner` written but not yet started."""
        with self._lock:
            return sum(1 for chunk in self._pending.values() if chunk.owner is owner)
