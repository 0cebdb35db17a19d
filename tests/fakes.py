"""Fake line and fake engines: the voice loop's turn logic in real time without models or a modem.

`FakeLine` plays a scripted far end on the loop's 20 ms clock: each utterance is a harmonic signal
(the energy VAD hears it as speech) whose peak level identifies it, so `FakeStt` can "recognise" it
with no model. The uplink is consumed in real time like a modem's and each tagged chunk raises
TX_STARTED when it begins to play; the far end can barge in after a given time of agent audio and can
hear its own echo. `FakeTts` makes 60 ms of audio per word; `FakeLlm` streams scripted tokens after a
scripted first-token delay. Each test call lasts a few seconds.
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from cellcall.engines import ChatMessage, Transcript
from cellcall.line import FRAME_MS, LineEvent, LineEventKind, LineStatus, frame_bytes

RATE = 8000
FRAME = frame_bytes(RATE)
FRAME_S = FRAME_MS / 1000


def speech_like(seconds: float, peak: int, rate: int = RATE) -> bytes:
    """A harmonic complex around 120 Hz with a 4 Hz syllable envelope: speech to the VAD, a key to FakeStt.

    Its sound changes every 100 ms (a formant moves between vowels) as a voice's does, so the answering
    screen's music detector does not take it for a held note."""
    t = np.arange(int(seconds * rate)) / rate
    formant = np.array([400.0, 900.0, 600.0, 1400.0])[(t / 0.1).astype(int) % 4]
    tone = sum(np.sin(2 * np.pi * 120 * k * t) / k * (1 + 3 * np.exp(-(((120 * k - formant) / 150) ** 2))) for k in range(1, 25))
    envelope = 0.55 + 0.45 * np.sin(2 * np.pi * 4 * t)
    wave = tone * envelope
    wave = wave / np.max(np.abs(wave)) * peak
    return wave.astype("<i2").tobytes()


@dataclass
class Say:
    text: str
    seconds: float = 1.0
    pause_s: float = 0.0  # silence before it
    wait_for_agent: bool = True  # start only after the agent's reply has played (and this much silence)
    barge_in_after_s: float | None = None  # instead: start this long into the agent's next audio


@dataclass
class Script:
    lines: list[Say]
    hangup_when_done: bool = False
    echo_gain: float = 0.0  # the agent's own audio heard back at this gain (0 = no echo)
    echo_delay_s: float = 0.06


@dataclass
class Heard:
    """What the far end received from the agent: chunks with the time they began to play."""

    at: float
    pcm: bytes
    tag: object | None


class FakeLine:
    """A Line whose far end is a script; real time, in process. Threads: 'fake-line' owns the clock."""

    sample_rate = RATE

    def __init__(self, script: Script) -> None:
        self.script = script
        self.stt_texts: dict[int, str] = {}
        self._events: queue.Queue[LineEvent] = queue.Queue()
        self._frames: queue.Queue[bytes] = queue.Queue()
        self._tx: list[tuple[bytes, object | None]] = []  # (pcm, tag) queued, not yet played
        self._tx_lock = threading.Lock()
        self._stop = threading.Event()
        self.heard: list[Heard] = []
        self.hung_up_by: str | None = None
        self.cleared = 0
        self.dtmf_sent: list[str] = []
        self._playing: bytes = b""
        self._thread: threading.Thread | None = None
        peaks = itertools.count(4000, 1400)
        self._pcm = []
        for line in script.lines:
            peak = next(peaks)
            self.stt_texts[peak] = line.text
            self._pcm.append(speech_like(line.seconds, peak))

    # ---- the far end ------------------------------------------------------------------------------

    def start(self) -> FakeLine:
        """The call is answered now: the far end's clock starts."""
        self._events.put(LineEvent(LineEventKind.ANSWERED))
        self._thread = threading.Thread(target=self._run, name="fake-line", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        start = time.monotonic()
        tick = 0
        pending = list(zip(self.script.lines, self._pcm, strict=True))
        speaking: bytes = b""
        waiting_since: float | None = None
        agent_audio_since: float | None = None
        agent_spoke_since = False  # the agent's audio played since our last line
        echo: list[bytes] = []  # our frames on their way back, one per 20 ms
        while not self._stop.is_set():
            tick += 1
            now = time.monotonic()
            agent = self._play_one_frame(now)
            if agent is not None and not speaking:
                agent_spoke_since = True
            if self.script.echo_gain:  # a delay line of whole frames: one frame out per frame in
                echo.append(agent if agent is not None else b"")
            agent_audio_since = (agent_audio_since or now) if agent is not None else (agent_audio_since if speaking else None)
            if not speaking and pending:
                line, pcm = pending[0]
                if line.barge_in_after_s is not None:
                    if agent_audio_since is not None and now - agent_audio_since >= line.barge_in_after_s:
                        speaking, pending = pcm, pending[1:]
                        agent_spoke_since = False
                else:
                    answered = agent_spoke_since and agent is None and not self._tx  # the agent replied, and is done
                    waiting_since = (waiting_since or now) if (answered or not line.wait_for_agent) else None
                    if waiting_since is not None and now - waiting_since >= line.pause_s + (0.3 if line.wait_for_agent else 0):
                        speaking, pending, waiting_since = pcm, pending[1:], None
                        agent_spoke_since = False
            frame = np.zeros(FRAME // 2, dtype=np.int16)
            if speaking:
                chunk, speaking = speaking[:FRAME], speaking[FRAME:]
                frame[: len(chunk) // 2] += np.frombuffer(chunk, "<i2")
            if len(echo) > round(self.script.echo_delay_s / FRAME_S):
                pcm = echo.pop(0)
                if pcm:
                    mixed = frame + np.frombuffer(pcm, "<i2").astype(np.float64) * self.script.echo_gain
                    frame = np.clip(mixed, -32768, 32767).astype(np.int16)
            self._frames.put(frame.astype("<i2").tobytes())
            if not speaking and not pending and self.script.hangup_when_done and agent is None and not self._tx:
                self.hung_up_by = "far end"
                self._events.put(LineEvent(LineEventKind.REMOTE_HANGUP))
                return
            time.sleep(max(0.0, start + tick * FRAME_S - time.monotonic()))

    def _play_one_frame(self, now: float) -> bytes | None:
        """Consume 20 ms of uplink like a modem; a new tagged chunk raises TX_STARTED."""
        with self._tx_lock:
            if not self._playing and self._tx:
                pcm, tag = self._tx.pop(0)
                self._playing = pcm
                self.heard.append(Heard(now, pcm, tag))
                if tag is not None:
                    self._events.put(LineEvent(LineEventKind.TX_STARTED, tag=tag, at=now))
            if not self._playing:
                return None
            frame, self._playing = self._playing[:FRAME], self._playing[FRAME:]
        return frame.ljust(FRAME, b"\0")

    # ---- the Line protocol --------------------------------------------------------------------------

    def open(self) -> None: ...

    def close(self) -> None:
        self._stop.set()

    def status(self) -> LineStatus:
        return LineStatus(ready=True, detail="fake")

    def dial(self, number: str) -> None: ...

    def answer(self) -> None: ...

    def hangup(self) -> None:
        self.hung_up_by = self.hung_up_by or "agent"
        self._stop.set()

    def send_dtmf(self, digits: str) -> None:
        self.dtmf_sent.append(digits)

    def next_event(self, timeout: float) -> LineEvent | None:
        try:
            return self._events.get(timeout=timeout) if timeout > 0 else self._events.get_nowait()
        except queue.Empty:
            return None

    def read_frame(self, timeout: float) -> bytes | None:
        try:
            return self._frames.get(timeout=timeout)
        except queue.Empty:
            return None

    def write(self, pcm: bytes, tag: object | None = None) -> None:
        with self._tx_lock:
            self._tx.append((pcm, tag))

    def clear_tx(self) -> None:
        with self._tx_lock:
            self._tx.clear()
            self._playing = b""
            self.cleared += 1

    def tx_queued_ms(self) -> float:
        with self._tx_lock:
            queued = sum(len(pcm) for pcm, _ in self._tx) + len(self._playing)
        return queued / 2 / RATE * 1000

    def agent_seconds(self) -> float:
        return sum(len(h.pcm) for h in self.heard) / 2 / RATE


class FakeStt:
    """Recognises a FakeLine utterance by its peak level; `delay_s` stands in for decode time."""

    sample_rate = RATE

    def __init__(self, line: FakeLine, delay_s: float = 0.05) -> None:
        self.texts = line.stt_texts
        self.delay_s = delay_s
        self.calls = 0

    def transcribe(self, pcm: bytes, language: str | None = None) -> Transcript:
        self.calls += 1
        time.sleep(self.delay_s)
        data = np.frombuffer(pcm, "<i2")
        peak = int(np.max(np.abs(data))) if data.size else 0
        key = min(self.texts, key=lambda p: abs(p - peak)) if peak > 1000 else None
        text = self.texts[key] if key is not None and abs(key - peak) < 600 else ""
        return Transcript(text, data.size / RATE, self.delay_s)


class FakeTts:
    """60 ms of a quiet harmonic signal per word, in one chunk per sentence."""

    sample_rate = RATE

    def __init__(self, delay_s: float = 0.02) -> None:
        self.delay_s = delay_s
        self.spoken: list[str] = []

    def synthesize(self, text: str, cancel: threading.Event | None = None) -> Iterator[bytes]:
        time.sleep(self.delay_s)
        if cancel is not None and cancel.is_set():
            return
        self.spoken.append(text)
        yield speech_like(0.06 * max(1, len(text.split())), 2500)


@dataclass
class FakeLlm:
    """Streams a scripted reply after `ttft_s`; every prompt it got is kept, and every prefix warmed."""

    replies: list[str] = field(default_factory=list)
    ttft_s: float = 0.05
    prompts: list[list[ChatMessage]] = field(default_factory=list)
    warmed: list[list[ChatMessage]] = field(default_factory=list)

    def stream_chat(self, messages, cancel=None, max_tokens: int = 160, temperature: float = 0.4) -> Iterator[str]:
        self.prompts.append(list(messages))
        time.sleep(self.ttft_s)
        text = self.replies.pop(0) if self.replies else "I see."
        for word in text.split(" "):
            if cancel is not None and cancel.is_set():
                return
            yield word + " "

    def warm(self, messages: list[ChatMessage]) -> None:
        self.warmed.append(list(messages))
