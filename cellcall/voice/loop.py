"""The real-time voice loop: one thread that hears every 20 ms frame and keeps the conversation moving.

Per frame (microseconds): VAD, the echo gate, endpointing, barge-in, timers. Everything slow (STT,
LLM, TTS) runs in a Reply thread; the loop only starts, commits, cancels and reads replies, so no
inference ever stalls the audio. Turns, latencies and states go to a listener as they happen.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from cellcall.agent.agent import Agent
from cellcall.answering.screen import Act, AnsweringPlan, AnswerScreen
from cellcall.config import VoiceSettings
from cellcall.engines import ChatModel, Synthesizer, Transcriber
from cellcall.line import FRAME_MS, Line, LineEvent, LineEventKind
from cellcall.observe import CallObserver
from cellcall.record import CallStatus, Speaker, TurnLatency
from cellcall.relay.engines import served_label
from cellcall.tags import Tag
from cellcall.trace import TurnTrace
from cellcall.voice.aec import make_canceller
from cellcall.voice.audio import dbfs
from cellcall.voice.echo import EchoGate
from cellcall.voice.endpoint import Endpointer, EndpointKind
from cellcall.voice.interruption import PausedReply
from cellcall.voice.keypad import KeyPad
from cellcall.voice.loop_types import LoopResult, Opening, State
from cellcall.voice.playback import Playback
from cellcall.voice.prefix import PrefixWarmer
from cellcall.voice.recording import Recorder
from cellcall.voice.reply import ModelParams, Reply, ReplyOutput
from cellcall.voice.transcript import Transcript
from cellcall.voice.turns import TurnTaking
from cellcall.voice.utterance import Ticket, TranscriptionWorker, Utterance
from cellcall.voice.vad import make_vad

PREROLL_FRAMES = 15  # 300 ms kept before speech onset: the VAD's decision lags the first syllable
APOLOGY = "I'm sorry, I'm having a technical problem and have to end the call. Goodbye."
PREFIX_JOIN_S = 0.5  # at the end of a call, a prefix warm still running gets this long (it is rarely running)
HEARD_WAIT_S = 1.5  # at the end of a call, how long to wait for the last words' transcripts (the report must not wait)


class VoiceLoop(TurnTaking):
    """Runs one answered call until a hang-up condition; `run` returns why it ended."""

    def __init__(
        self,
        line: Line,
        stt: Transcriber,
        tts: Synthesizer,
        llm: ChatModel,
        voice: VoiceSettings,
        agent: Agent,
        params: ModelParams,
        opening: Opening | None,
        *,
        answering: AnsweringPlan | None = None,
        language: str | None = None,
        listener: CallObserver,
        stop: threading.Event | None = None,
        t0: float | None = None,
    ) -> None:
        self.line, self.stt, self.tts, self.llm = line, stt, tts, llm
        self.voice = voice
        self.agent = agent  # written only here, on the loop thread; replies get frozen views
        self.params = params
        self.opening = opening
        self.answering = answering  # outbound: who answered decides what to do (None: inbound, a person called)
        self.language = language
        self.listener = listener
        self.stop = stop or threading.Event()
        self.t0 = time.monotonic() if t0 is None else t0
        self._setup(line.sample_rate)
        self.endpointer = Endpointer(voice.min_speech_ms, voice.speculative_silence_ms, voice.endpoint_silence_ms)
        self.speculate = voice.speculative_silence_ms < voice.endpoint_silence_ms
        self.result: LoopResult | None = None
        self.transcript = Transcript(listener, self.t0)
        self.latencies: list[TurnLatency] = []
        self.tags: set[str] = set()
        self.utterance: Utterance | None = None
        self.reply: Reply | None = None
        self.last_reply: Reply | None = None
        self.replies = 0
        self.barge_ins: list[float] = []
        self.backchannels: list[float] = []  # onsets of caller sounds the agent went on after (mm-hm, a cough)
        self._paused: PausedReply | None = None  # the reply the caller's speech stopped, until the verdict
        self._turn_over = False  # the caller's turn ended while a paused reply awaited its verdict
        self._heard_over: dict[Reply, list[tuple[str, float]]] = {}  # backchannels, written after the reply's turn
        self.opening_used = opening is None
        self.prefix = PrefixWarmer(llm) if params.warm_prefix else None
        self.agent_has_spoken = False
        self.voicemail_reached = False
        self.keypad = KeyPad(line)
        self._message: Reply | None = None  # the mailbox message, synthesised while the greeting plays
        self.hangup_at: float | None = None
        self.hangup_reason = ""
        self.engine_error: str | None = None  # the engines failed mid-call: the apology plays, then the call fails
        self.last_activity = self.t0
        self._barge_run = 0
        self._preroll: deque[bytes] = deque(maxlen=PREROLL_FRAMES)
        self._state: State | None = None
        self._ticket_of: dict[Reply, Ticket] = {}  # the transcription behind each reply
        self._paused_at: float | None = None  # the caller's last word before the current speculative pause
        self._hold_until: float | None = None  # the endpoint, deferred because the words trail off
        self._early: Utterance | None = None  # a turn answered early: the caller may still go on with it
        self._early_words: tuple[Reply, tuple[Ticket, float]] | None = None  # its words, recorded once it stands

    def _setup(self, rate: int) -> None:
        """Rate-dependent parts; redone if the line's measured rate (8 or 16 kHz) differs at the first frame."""
        self.rate = rate
        previous: TranscriptionWorker | None = getattr(self, "transcriber", None)
        if previous is not None:
            previous.close()
        self.transcriber = TranscriptionWorker(self.stt, rate, self.language)
        self.vad = make_vad(self.voice.vad, rate)
        old_gate: EchoGate | None = getattr(self, "echo", None)
        if old_gate is not None and old_gate.canceller is not None:
            old_gate.canceller.close()
        self.echo = EchoGate(rate, margin_db=self.voice.echo_margin_db, canceller=make_canceller(self.voice.echo_canceller, rate))
        self.recorder = Recorder(rate, self.t0)
        self.playback = Playback(self.line, self.echo, self.recorder)
        self.screen = AnswerScreen.for_plan(self.answering, rate, self.t0) if self.answering is not None else None

    # ---- the frame loop -------------------------------------------------------------------------

    def run(self, backlog: list[tuple[bytes, float]] | None = None) -> LoopResult:
        """Hold the conversation; `backlog` = (frame, arrival time) heard before the loop could start."""
        self._set_state(State.LISTENING)
        self.last_activity = time.monotonic()  # the silence timer starts when we can listen
        for early, arrival in backlog or ():
            self._on_frame(early, arrival)
        while self.result is None:
            frame = self.line.read_frame(timeout=FRAME_MS / 1000.0)
            while (event := self.line.next_event(0)) is not None and self.result is None:
                self._on_line_event(event)
            now = time.monotonic()
            if frame is not None and self.result is None:
                self._on_frame(frame, now)
            if self.result is None:
                self.transcript.collect()
                self._poll_reply(now)
                self._check_timers(now)
        self._wind_down()
        assert self.result is not None
        return self.result

    def _on_frame(self, frame: bytes, now: float) -> None:
        if self.line.sample_rate != self.rate and self.last_reply is None:
            self._setup(self.line.sample_rate)
        self.recorder.caller(frame, now)
        slot = self.echo.slot_of(now)
        frame = self.echo.clean(frame, slot)
        self._preroll.append(frame)
        level = dbfs(frame)
        caller = self.echo.judge_slot(level, self.vad.is_speech(frame, level), slot)
        if caller:
            self.last_activity = now
        if self.screen is not None:
            self._on_act(self.screen.feed(frame, now, caller), now)
        self._watch_barge_in(caller, now)
        event = self.endpointer.push(caller, now)
        if event is not None and event.kind is EndpointKind.SPEECH_START:
            self._on_speech_start(event)
            if self.prefix is not None and self.opening_used:
                self.prefix.warm(self.agent.primer())  # the next request's prefix, while they speak
        elif self.utterance is not None:
            self.utterance.feed(frame)
        if event is not None and event.kind is not EndpointKind.SPEECH_START:
            self._on_endpoint(event, now)
        self._turn_end_by_words(now)
        self._judge_pause(caller, now)

    def _reply_to(self, utterance: Utterance, trace: TurnTrace, committed: bool, ticket: Ticket | None = None) -> Reply:
        """The reply to a caller utterance: the opening line after a hello, else the model's answer.

        `ticket`: the utterance's transcription already under way (a reply thought out again)."""
        ticket = ticket or self.transcriber.request(utterance)
        screen = self.screen.words_filter() if self.screen is not None else None  # a machine's words get no answer
        how: dict[str, Any]
        if not self.opening_used and self.opening is not None:
            text, audio = self.opening.line()
            how = {"script": text, "script_audio": audio}
        else:
            how = {"think": self.agent.view().turn, "llm": self.llm, "params": self.params}
        reply = Reply(
            self.replies + 1,
            self.playback,
            self.tts,
            self.rate,
            listen=ticket.wait,
            screen=screen,
            trace=trace,
            committed=committed,
            **how,
        )
        reply.on_air.heard_at = utterance.start
        self._ticket_of[reply] = ticket
        self.last_reply = reply
        return reply

    def _commit(self, reply: Reply, hold_words: bool = False) -> None:
        self.replies += 1
        if reply.script is not None:
            self.opening_used = True
        if reply in self._ticket_of:
            words = (self._ticket_of.pop(reply), reply.on_air.heard_at or time.monotonic())
            if hold_words:
                self._early_words = (reply, words)
            else:
                self.transcript.expect(words)
        reply.commit()
        self._set_state(State.THINKING)

    def _speak(self, text: str, audio: Callable[[], list[bytes] | None] | None = None, tags: set[str] | None = None) -> None:
        """Say a fixed line now (the opening after the post-dial wait, the apology)."""
        self.last_reply = self.reply = self._fixed_line(text, audio, tags)
        self._commit(self.reply)

    def _fixed_line(self, text: str, audio: Callable[[], list[bytes] | None] | None, tags: set[str] | None) -> Reply:
        """A line the agent says as written, synthesising at once (held until committed)."""
        tags_of = frozenset(tags or ())
        return Reply(self.replies + 1, self.playback, self.tts, self.rate, script=text, script_audio=audio, tags=tags_of).start()

    # ---- replies ---------------------------------------------------------------------------------

    def _poll_reply(self, now: float) -> None:
        reply = self.reply
        if reply is None or not reply.committed:
            return
        if not reply.done.is_set():
            return
        error = reply.output().error
        if error is not None:
            apology = self.opening.apology if self.opening is not None else None
            if apology and self.hangup_at is None:  # the engines are gone: say sorry with the audio made while it rang
                self.reply = None
                self.engine_error = error
                self._speak(APOLOGY, audio=lambda: apology, tags={Tag.HANGUP})
                return
            self._finish(f"reply failed: {error}", CallStatus.FAILED, error=error)
            return
        if self.playback.pending_for(reply) or self.playback.busy(now):
            return
        self._close_reply(reply, now, cut=False)

    def _close_reply(self, reply: Reply, now: float, cut: bool, heard_again: bool = False) -> None:
        """The reply is over (played out, or cut): record what was said and act on its tags.

        `heard_again`: the caller's words behind it are still growing and will be answered whole."""
        if self.reply is reply:
            self.reply = None
        self._ticket_of.pop(reply, None)
        if not heard_again:
            self._release_words(reply)
        out = reply.output()
        spoken = reply.on_air.spoken(out)
        if out.sentences and (spoken or not cut):  # a reply dropped before its first word was never said
            self.transcript.add(
                Speaker.AGENT,
                out.full_text(),
                reply.on_air.first_audio_at or now,
                barged_in=cut and bool(spoken),
                spoken_text=spoken if cut else None,
            )
        for words, at in self._heard_over.pop(reply, ()):
            self.transcript.add(Speaker.CALLER, words, at)
        if reply.trace is not None and reply.committed:
            latency = reply.trace.latency()
            served = {name: getattr(engine, "last_served", "") for name, engine in self._engines()}
            if any(served.values()):  # engines behind a relay say who served this reply (cellcall.relay)
                latency = dataclasses.replace(latency, served_by=served_label(served))
            self.latencies.append(latency)
            self.listener.on_latency(latency)
        heard = out.user_text if reply.listen is not None and not heard_again else None
        kind = "opening" if reply.script is not None else None
        unsaid = reply.on_air.unsaid(out) if cut else ""
        self.agent.observe(heard, spoken if cut else out.full_text(), out.agent_turn, kind, unsaid)
        self.tags |= out.tags - {Tag.SCREENED}
        self.last_activity = now
        if not cut:
            self._on_words(reply, out, now)
            self._act_on_tags(out, now)
        if self.result is None and self.hangup_at is None:
            self._set_state(State.LISTENING)

    def _release_words(self, reply: Reply) -> None:
        """An early-ended turn stands (the answer plays, or the reply is over): its words go to the transcript."""
        if self._early_words is not None and self._early_words[0] is reply:
            self.transcript.expect(self._early_words[1])
            self._early_words = None

    def _engines(self) -> tuple[tuple[str, object], ...]:
        return (("stt", self.stt), ("llm", self.llm), ("tts", self.tts))

    def _on_words(self, reply: Reply, out: ReplyOutput, now: float) -> None:
        """A reply played out: a machine's words go to the screen; keys the model asked for are pressed."""
        if self.screen is not None and out.user_text:
            if Tag.SCREENED in out.tags:
                self._on_act(self.screen.heard(out.user_text, now), now)
            elif reply.listen is not None:
                self.screen.person()
        if out.keys:
            self.transcript.add(Speaker.SYSTEM, f"pressed {out.keys}", now)
            self.keypad.press(out.keys)

    def _on_act(self, act: Act | None, now: float) -> None:
        """Do what the answering screen decided (cellcall.answering.screen)."""
        if act is None:
            return
        if act.note:
            self.transcript.add(Speaker.SYSTEM, act.note, now)
        plan = self.answering
        if act.kind == "press":
            self.keypad.press(act.keys)
        elif act.kind == "prepare" and plan is not None and plan.voicemail_message:
            self.tags.add(Tag.VOICEMAIL)
            self._message = self._fixed_line(plan.voicemail_message, None, {Tag.HANGUP})  # ready before the beep
        elif act.kind == "message" and self._message is not None:
            self.voicemail_reached = True
            self.last_reply = self.reply = self._message
            self._message = None
            self._commit(self.reply)
        elif act.kind == "end":
            if act.status is CallStatus.VOICEMAIL:
                self.tags.add(Tag.VOICEMAIL)
            self._finish(act.reason, act.status)

    def _act_on_tags(self, out: ReplyOutput, now: float) -> None:
        if Tag.HANGUP in out.tags:
            self.hangup_at = now + self.voice.goodbye_grace_s
            if self.voicemail_reached:
                self.hangup_reason = "voicemail: message left"
            else:
                ending = out.agent_turn.move.ending if out.agent_turn else None
                self.hangup_reason = f"agent hung up: {ending}" if ending else "agent [HANGUP]"
            if self.engine_error:
                self.hangup_reason = f"engines failed, apologised: {self.engine_error}"
            self._set_state(State.HANGING_UP)

    # ---- line events and timers ------------------------------------------------------------------

    def _on_line_event(self, event: LineEvent) -> None:
        kind = event.kind
        if kind is LineEventKind.TX_STARTED:
            chunk = self.playback.on_started(event)
            if chunk is not None and isinstance(chunk.owner, Reply):
                self._on_audio_started(chunk.owner, chunk.sentence, event.at)
        elif kind is LineEventKind.REMOTE_HANGUP:
            self._finish("remote hang-up", CallStatus.COMPLETED)
        elif kind is LineEventKind.ERROR:
            self._finish(f"line error: {event.detail}", CallStatus.FAILED, error=event.detail or "line error")
        elif kind is LineEventKind.DTMF:
            self.transcript.add(Speaker.SYSTEM, f"DTMF {event.detail}", event.at)
            self.agent.observe(f"(they pressed {event.detail} on their keypad)", None, None, "keys")

    def _on_audio_started(self, reply: Reply, sentence: int, at: float) -> None:
        reply.on_air.started_sentences.add(sentence)
        self._release_words(reply)
        self.last_activity = at
        if reply.on_air.first_audio_at is None:
            reply.on_air.first_audio_at = at
            self.agent_has_spoken = True
            if reply.trace is not None:
                reply.trace.mark("first_audio", at)
            if self.hangup_at is None:
                self._set_state(State.SPEAKING)

    def _check_timers(self, now: float) -> None:
        if self.stop.is_set():
            self._finish("interrupted", CallStatus.INTERRUPTED)
        elif now - self.t0 >= self.voice.max_duration_s:
            self._finish("max duration", CallStatus.COMPLETED)
        elif self.hangup_at is not None:
            if now >= self.hangup_at and not self.playback.busy(now):
                status = CallStatus.VOICEMAIL if self.voicemail_reached else CallStatus.COMPLETED
                self._finish(self.hangup_reason, CallStatus.FAILED if self.engine_error else status, error=self.engine_error)
        elif self.screen is not None and (act := self.screen.due(now, self.utterance is None and self.reply is None)):
            self._on_act(act, now)
        elif self.screen is not None and self.screen.holding():
            return  # a mailbox, a menu or hold: no opening into it, and quiet is not the end
        elif self._idle(now) and not self.opening_used and self.opening is not None:
            if self._opening_due(self.opening, now):
                self._speak(*self.opening.line())  # a silent far end still hears why we call
        elif self._idle(now) and now - self.last_activity >= self.voice.silence_timeout_s:
            self._finish("silence timeout", CallStatus.COMPLETED)

    def _idle(self, now: float) -> bool:
        return self.utterance is None and self.reply is None and self._paused is None and not self.playback.busy(now)

    def _opening_due(self, opening: Opening, now: float) -> bool:
        """Post-dial delay: carrier audio and ring-back are ignored; a silent far end gets our opening."""
        return opening.speak_first or now - self.t0 >= self.voice.post_dial_delay_s

    # ---- bookkeeping -----------------------------------------------------------------------------

    def _keep_last_words(self) -> None:
        """The far end hung up mid-sentence: transcribe what it said so far (the call is over, no rush)."""
        utterance, self.utterance = self.utterance, None
        if utterance is None:
            return
        if utterance.seconds(self.rate) * 1000 >= self.voice.min_speech_ms * 2:
            self.transcript.expect((self.transcriber.request(utterance), utterance.start))

    def _set_state(self, state: State) -> None:
        if state is not self._state:
            self._state = state
            self.listener.on_state(state.value)

    def _finish(self, reason: str, status: CallStatus, error: str | None = None) -> None:
        if self.result is None:
            self.result = LoopResult(reason, status, error, ended_at=time.monotonic())

    def _wind_down(self) -> None:
        """Stop our audio, keep what was said (a reply cut by the hang-up is recorded as cut)."""
        result = self.result
        assert result is not None
        reply, self.reply = self.reply, None
        if reply is not None:
            reply.cancel()
            if reply.committed:
                self._close_reply(reply, time.monotonic(), cut=True)
        paused, self._paused = self._paused, None
        if paused is not None:
            paused.reply.cancel()
            self._close_reply(paused.reply, time.monotonic(), cut=True)
        if result.reason not in ("remote hang-up",) and not result.reason.startswith("line error"):
            self.playback.cut()
        self._keep_last_words()
        self.transcript.collect(HEARD_WAIT_S)
        self.transcriber.close()
        if self.prefix is not None:
            self.prefix.join(PREFIX_JOIN_S)
        self.keypad.close()
        if self.echo.canceller is not None:
            self.echo.canceller.close()
        if self._message is not None:
            self._message.cancel()
        result.answered_by = self.screen.answered_by.value if self.screen is not None else ""
        result.dtmf_sent = list(self.keypad.sent)
        result.tags = set(self.tags)
        result.turns = list(self.transcript.turns)
        result.latencies = list(self.latencies)
        result.barge_ins = list(self.barge_ins)
        result.backchannels = list(self.backchannels)
