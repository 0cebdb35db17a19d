"""One agent reply on its own thread: final transcript -> the agent's move -> (LLM) -> sentences -> TTS -> playback.

The agent (cellcall.agent) decides the move in microseconds; when it asks the model to phrase it, every
sentence passes the agent's guard before it is spoken, and the move's own wording replaces a refused one.
The first sentence is spoken while the model still writes the rest. A speculative reply runs the
same pipeline but holds its audio until the loop commits it at the end of the caller's turn, so the
work of STT, LLM and TTS overlaps the endpointing silence; a cancelled reply never reaches the line.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace

from cellcall.agent.agent import AgentTurn
from cellcall.engines import ChatModel, Synthesizer, Transcript
from cellcall.engines.sentences import Sentence, split_sentences
from cellcall.tags import STOP_TAGS, Tag
from cellcall.trace import TurnTrace
from cellcall.voice.audio import StreamResampler
from cellcall.voice.playback import Playback

MAX_SENTENCES = 2  # a phone reply is one or two sentences; a small model rambles on, costing CPU and the caller's patience
NOT_WORDS = re.compile(r"[\W_]+")


def words_only(text: str) -> str:
    """The text, or "" when it holds no word at all (whisper's "..." or "-" on noise)."""
    text = text.strip()
    return text if NOT_WORDS.sub("", text) else ""


@dataclass(frozen=True)
class ReplyOutput:
    """What a reply has produced so far, as one consistent snapshot (see Reply.output)."""

    user_text: str | None = None  # the caller's words once known ("" = noise)
    sentences: tuple[str, ...] = ()
    tags: frozenset[str] = frozenset()
    keys: str = ""  # DTMF the model asked to press ([DTMF 2]); pressed by the loop if the reply plays out
    error: str | None = None
    agent_turn: AgentTurn | None = None

    def full_text(self) -> str:
        return " ".join(self.sentences)


@dataclass
class OnAir:
    """What became of a reply's audio on the line: written only by the loop thread (TX_STARTED events)."""

    first_audio_at: float | None = None
    started_sentences: set[int] = field(default_factory=set)
    heard_at: float | None = None  # when the caller's words behind this reply began

    def spoken(self, output: ReplyOutput) -> str:
        """The sentences that began to play (a cut sentence counts: the caller heard its start)."""
        return " ".join(text for i, text in enumerate(output.sentences) if i in self.started_sentences)

    def unsaid(self, output: ReplyOutput) -> str:
        """The sentences that never began to play (the cut one is not repeated: its start was heard)."""
        return " ".join(text for i, text in enumerate(output.sentences) if i not in self.started_sentences)


@dataclass(frozen=True)
class ModelParams:
    max_tokens: int
    temperature: float
    warm_prefix: bool = True  # prefill the next request's prompt while the caller speaks (cellcall.voice.prefix)


class Reply:
    """A cancellable, optionally speculative agent reply.

    Ownership: the reply thread alone writes its output (words heard, sentences, tags, error, the agent's
    turn), under `_lock`; the loop thread reads it only through `output()`, a frozen snapshot. The loop
    thread alone writes `on_air` and calls `commit`/`cancel`/`pause`/`resume`."""

    def __init__(
        self,
        turn: int,
        playback: Playback,
        tts: Synthesizer,
        line_rate: int,
        *,
        listen: Callable[[], Transcript | None] | None = None,  # None = the request was overtaken
        think: Callable[[str], AgentTurn] | None = None,  # the agent's move for the caller's words (reply thread)
        llm: ChatModel | None = None,
        params: ModelParams | None = None,
        script: str | None = None,
        script_audio: Callable[[], list[bytes] | None] | None = None,  # pre-synthesised, at the TTS's rate
        screen: Callable[[str], set[str]] | None = None,
        trace: TurnTrace | None = None,
        committed: bool = True,
        tags: frozenset[str] = frozenset(),  # control tags it carries from the start (a voicemail message: HANGUP)
    ) -> None:
        if script is None and (think is None or listen is None):
            raise ValueError("a reply needs either a script or listen + think")
        self.turn = turn
        self.playback = playback
        self.tts = tts
        self.line_rate = line_rate
        self.listen, self.think, self.llm, self.params = listen, think, llm, params
        self.script, self.script_audio, self.screen = script, script_audio, screen
        self.trace = trace
        self.generation = playback.generation
        self.cancelled = threading.Event()
        self.done = threading.Event()
        self.committed = committed
        self.on_air = OnAir()
        self._out = ReplyOutput(tags=tags)  # replaced whole under _lock by the reply thread
        self._held: list[tuple[int, bytes]] = []
        self._paused = False  # the caller spoke over it: audio is held until the loop resumes or cuts it
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=f"reply-{turn}", daemon=True)

    def start(self) -> Reply:
        self._thread.start()
        return self

    def commit(self) -> None:
        """The caller's turn really ended: release held audio to the line, speak the rest as it comes."""
        with self._lock:
            self.committed = True
            held, self._held = self._held, []
            for sentence, pcm in held:
                if not self.playback.write(self.generation, self, sentence, pcm):
                    self.cancelled.set()

    def pause(self) -> None:
        """Hold whatever audio comes from now on (Playback.pause stops what is queued or playing)."""
        with self._lock:
            self._paused = True

    def resume(self, rest: list[tuple[int, bytes]]) -> None:
        """Go on after a backchannel: `rest` (unheard audio from Playback.pause), then what was held."""
        with self._lock:
            self._paused = False
            self.generation = self.playback.generation
            chunks, self._held = [*rest, *self._held], []
            for sentence, pcm in chunks:
                if not self.playback.write(self.generation, self, sentence, pcm):
                    self.cancelled.set()

    def cancel(self) -> None:
        """Stop generating (the LLM and TTS notice within tens of ms); nothing more reaches the line.

        Audio already queued is the loop's to cut (Playback.cut)."""
        with self._lock:
            self.cancelled.set()

    def join(self, timeout: float | None = None) -> None:
        if self._thread.is_alive():
            self._thread.join(timeout)

    def output(self) -> ReplyOutput:
        """What the reply has produced so far (the loop thread's only view of it)."""
        with self._lock:
            return self._out

    def _publish(self, **changes: object) -> None:
        with self._lock:
            self._out = replace(self._out, **changes)  # type: ignore[arg-type]

    def _add_tags(self, tags: Iterable[str]) -> None:
        with self._lock:
            self._out = replace(self._out, tags=self._out.tags | frozenset(tags))

    def _add_sentence(self, text: str) -> int:
        with self._lock:
            self._out = replace(self._out, sentences=(*self._out.sentences, text))
            return len(self._out.sentences) - 1

    def _run(self) -> None:
        try:
            if self.script is not None and self.screen is None:
                self._speak_script()  # the opening after a short hello: speak first, transcribe after
                if self.listen is not None and not self.cancelled.is_set():
                    self._publish(user_text=self._transcribe())
            else:
                self._answer()
        except Exception as exc:  # noqa: BLE001 - a failing engine must end the reply, not the call
            self._publish(error=f"{type(exc).__name__}: {exc}")
        finally:
            self.done.set()

    def _transcribe(self) -> str:
        if self.listen is None:
            return ""
        transcript = self.listen()
        if transcript is None:
            return ""
        self._mark("stt_done")
        return words_only(transcript.text)

    def _answer(self) -> None:
        heard = self._transcribe()
        self._publish(user_text=heard)
        if not heard or self.cancelled.is_set():
            return
        if self.screen is not None:
            screened = self.screen(heard)
            self._add_tags(screened)
            if screened & STOP_TAGS:
                return
        if self.script is not None:
            self._speak_script()
            return
        assert self.think is not None
        turn = self.think(heard)
        self._publish(agent_turn=turn)
        self._add_tags(turn.move.tags)  # acted on by the loop only if the reply plays out uncut
        if turn.messages is not None and self.llm is not None and self.params is not None:
            tokens = self.llm.stream_chat(
                turn.messages, cancel=self.cancelled, max_tokens=self.params.max_tokens, temperature=self.params.temperature
            )
            self._speak_guarded(split_sentences(self._first_token_marked(tokens)), turn)
        else:
            self._speak(split_sentences([turn.plain()]), limit=None)

    def _speak_guarded(self, sentences: Iterable[Sentence], turn: AgentTurn) -> None:
        """The model's sentences that pass the guard; the move's own words if its first one does not."""
        for sentence in sentences:
            if self.cancelled.is_set() or not sentence.text.strip():
                continue
            text = turn.accept(sentence.text)
            if text is None:
                if not self._out.sentences:
                    self._speak(split_sentences([turn.plain()]), limit=None)
                return
            self._speak([Sentence(text, frozenset())], limit=None)
            if len(self._out.sentences) >= MAX_SENTENCES:
                self.cancelled.set()  # stop the model: a phone reply is one or two sentences
                return

    def _speak_script(self) -> None:
        script = self.script or ""
        audio = self.script_audio() if self.script_audio is not None else None
        if audio and not self.cancelled.is_set():
            self._add_sentence(script)
            self._mark("first_sentence")
            convert = StreamResampler(self.tts.sample_rate, self.line_rate)
            for pcm in audio:
                self._mark("tts_first_audio")
                self._emit(0, convert(pcm))
            return
        self._speak(split_sentences([script]))

    def _speak(self, sentences: Iterable[Sentence], limit: int | None = MAX_SENTENCES) -> None:
        for sentence in sentences:
            if self.cancelled.is_set():
                return
            tags = sentence.tags - {Tag.VOICEMAIL}  # who answered is the screen's call, from wording and tones
            self._add_tags(tags)
            if sentence.keys:
                self._publish(keys=self._out.keys + sentence.keys)
            if sentence.text.strip():
                index = self._add_sentence(sentence.text.strip())
                self._mark("first_sentence")
                convert = StreamResampler(self.tts.sample_rate, self.line_rate)
                for pcm in self.tts.synthesize(sentence.text, cancel=self.cancelled):
                    if self.cancelled.is_set():
                        return
                    self._mark("tts_first_audio")
                    self._emit(index, convert(pcm))
            if tags & STOP_TAGS or (limit is not None and len(self._out.sentences) >= limit):
                self.cancelled.set()  # stop the model: nothing is said after a goodbye or a second sentence
                return

    def _first_token_marked(self, tokens: Iterator[str]) -> Iterator[str]:
        for token in tokens:
            self._mark("llm_first_token")
            yield token

    def _emit(self, sentence: int, pcm: bytes) -> None:
        with self._lock:
            if self.cancelled.is_set():
                return
            if not self.committed or self._paused:
                self._held.append((sentence, pcm))
            elif not self.playback.write(self.generation, self, sentence, pcm):
                self.cancelled.set()

    def _mark(self, name: str) -> None:
        if self.trace is not None:
            self.trace.mark(name, time.monotonic())
