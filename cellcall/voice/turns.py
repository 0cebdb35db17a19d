"""Turn-taking on the loop thread: when the caller's turn ends, and who has the floor when both talk.

The caller's turn ends at the endpoint, earlier when its words are a finished question, later when
they trail off; the reply prepared at the speculative pause is committed then. Caller speech over
the agent stops it at once and pauses the reply; a backchannel lets it go on, anything else takes
the floor (cellcall.voice.interruption). A mixin of VoiceLoop: the state it reads and writes is the
loop's, owned by the loop thread, and named below; the loop provides the replies.
"""

from __future__ import annotations

import abc
import time
from collections import deque

from cellcall.agent.turn_end import turn_finished
from cellcall.config import VoiceSettings
from cellcall.line import FRAME_MS
from cellcall.trace import TurnTrace
from cellcall.voice.endpoint import Endpointer, EndpointEvent, EndpointKind
from cellcall.voice.interruption import PausedReply, Verdict
from cellcall.voice.loop_types import State
from cellcall.voice.playback import Playback
from cellcall.voice.reply import Reply, words_only
from cellcall.voice.utterance import Ticket, TranscriptionWorker, Utterance
from cellcall.voice.vad import Vad

EARLY_COMMIT_MS = 300  # a turn whose words are finished is answered this long after its last word (or once they are known)
NOISY_FLOOR_DB = -40.0  # a line whose noise floor is above this hides word ends: no early answers there
HOLD_MS = 400  # past the endpoint, a turn whose words trail off ("my number is ...") waits this much longer


class TurnTaking(abc.ABC):
    """The caller's turns and barge-in; VoiceLoop holds the state and makes the replies."""

    voice: VoiceSettings
    endpointer: Endpointer
    playback: Playback
    transcriber: TranscriptionWorker
    vad: Vad
    speculate: bool
    replies: int
    reply: Reply | None
    last_reply: Reply | None
    utterance: Utterance | None
    hangup_at: float | None
    barge_ins: list[float]
    backchannels: list[float]
    _paused: PausedReply | None
    _turn_over: bool
    _heard_over: dict[Reply, list[tuple[str, float]]]
    _barge_run: int
    _preroll: deque[bytes]
    _ticket_of: dict[Reply, Ticket]
    _paused_at: float | None
    _hold_until: float | None
    _early: Utterance | None
    _early_words: tuple[Reply, tuple[Ticket, float]] | None

    @abc.abstractmethod
    def _reply_to(self, utterance: Utterance, trace: TurnTrace, committed: bool, ticket: Ticket | None = None) -> Reply:
        """The reply to a caller utterance (started by the caller of this method)."""

    @abc.abstractmethod
    def _commit(self, reply: Reply, hold_words: bool = False) -> None:
        """The caller's turn is over: the reply plays as soon as it has audio."""

    @abc.abstractmethod
    def _close_reply(self, reply: Reply, now: float, cut: bool, heard_again: bool = False) -> None:
        """The reply is over: record what was said and act on it."""

    @abc.abstractmethod
    def _set_state(self, state: State) -> None:
        """Tell the listener what the agent is doing."""

    def _turn_end_by_words(self, now: float) -> None:
        """Answer a finished question at ~300 ms; end a held turn when its extra wait is over."""
        reply, utterance = self.reply, self.utterance
        if reply is None or reply.committed or utterance is None or self._paused is not None:
            return
        if self._hold_until is not None:
            if now >= self._hold_until:
                self._end_turn(utterance, reply, now)
            return
        paused = self._paused_at
        quiet_line = getattr(self.vad, "floor_db", NOISY_FLOOR_DB) < NOISY_FLOOR_DB
        if (
            paused is not None
            and quiet_line
            and (now - paused) * 1000 >= EARLY_COMMIT_MS
            and turn_finished(reply.output().user_text)
        ):
            self.endpointer.reset()
            self._early = utterance
            self._end_turn(utterance, reply, now, early=True)

    def _watch_barge_in(self, caller: bool, now: float) -> None:
        """N ms of caller speech (echo excluded) over our own audio stops it at once."""
        if not caller or self.hangup_at is not None or not self.playback.busy(now):
            self._barge_run = 0
            return
        self._barge_run += 1
        if self._barge_run * FRAME_MS >= self.voice.barge_in_ms:
            onset = now - self._barge_run * FRAME_MS / 1000.0
            self._barge_in(now, onset)

    def _barge_in(self, now: float, onset: float) -> None:
        """Our audio stops at once; a reply on air is paused until the caller's sound is judged."""
        reply = self.reply
        self._barge_run = 0
        self.barge_ins.append(onset)
        if reply is not None and reply.committed:
            reply.pause()
            self._paused = PausedReply(reply, now, onset, self.playback.pause(now, reply))
            self.reply = None
        else:
            self.playback.cut(now)
        if reply is not None and reply.trace is not None:
            reply.trace.barge_in_stop_ms = round((time.monotonic() - onset) * 1000.0, 1)
        self._set_state(State.LISTENING)

    def _judge_pause(self, caller: bool, now: float) -> None:
        """Each frame while a reply is paused: go on after a backchannel, or give the caller the floor."""
        paused = self._paused
        if paused is None:
            return
        paused.hear(caller)
        words = self._words_heard()
        verdict = paused.verdict(now, words, in_turn=self.utterance is not None)
        if verdict is Verdict.RESUME:
            self._go_on(paused, words or "")
        elif verdict is Verdict.YIELD:
            self._give_way(paused, now)

    def _words_heard(self) -> str | None:
        """The caller's words in the turn being answered, once recognised (None: not yet, or unusable)."""
        ticket = self._ticket_of.get(self.reply) if self.reply is not None else None
        if ticket is None or not ticket.done.is_set() or ticket.error is not None or ticket.result is None:
            return None
        return words_only(ticket.result.text)

    def _go_on(self, paused: PausedReply, words: str) -> None:
        """A backchannel or a cough: drop the turn it started, play the paused reply from where it stopped."""
        self._drop_turn()
        self._paused = None
        reply = paused.reply
        self.backchannels.append(paused.onset)
        if words:
            self._heard_over.setdefault(reply, []).append((words, paused.onset))
        reply.resume(paused.rest)
        self.reply = self.last_reply = reply
        self._set_state(State.SPEAKING)

    def _drop_turn(self) -> None:
        """Forget the caller's current turn and the reply being prepared for it."""
        reply, self.reply = self.reply, None
        if reply is not None:
            reply.cancel()
            self._ticket_of.pop(reply, None)
        self.utterance = self._early = None
        self._paused_at = self._hold_until = None
        self._turn_over = False
        self.endpointer.reset()

    def _give_way(self, paused: PausedReply, now: float) -> None:
        """A real interruption: the paused reply ends as cut; the caller's turn is answered with it known."""
        self._paused = None
        cut = paused.reply
        cut.cancel()
        self._close_reply(cut, now, cut=True)
        ahead, utterance = self.reply, self.utterance
        if ahead is not None and utterance is not None:  # it was thought out before the cut was known: again
            ahead.cancel()
            trace = ahead.trace or TurnTrace(self.replies + 1, utterance.start)
            self.reply = self._reply_to(utterance, trace, committed=False, ticket=self._ticket_of.pop(ahead, None)).start()
        if self._turn_over and utterance is not None:
            self._turn_over = False
            if self.reply is None:
                self.reply = self._reply_to(utterance, TurnTrace(self.replies + 1, now), committed=False).start()
            self._end_turn(utterance, self.reply, now)

    def _on_speech_start(self, event: EndpointEvent) -> None:
        reply = self.reply
        preroll = b"".join(self._preroll)
        if self._hold_until is not None and self.utterance is not None:
            # the words trailed off and the caller went on: one turn, answered once it really ends
            self._hold_until = None
            if reply is not None and not reply.committed:
                reply.cancel()
                self.reply = None
            return
        if reply is not None and reply.committed and reply.on_air.first_audio_at is None:
            # the caller went on before we said a word: drop the answer; an early answered turn goes on
            reply.cancel()
            if self._early is not None:
                self._early_words = None  # the turn goes on: its words are recorded whole when it ends
            self._close_reply(reply, event.at, cut=True, heard_again=self._early is not None)
            if self._early is not None:
                self.utterance, self._early = self._early, None
                self.utterance.feed(preroll)
                return
        self._early = None
        self._paused_at = None
        self.utterance = Utterance(event.at, preroll=preroll)
        if self.reply is None:
            self._set_state(State.LISTENING)

    def _on_endpoint(self, event: EndpointEvent, now: float) -> None:
        utterance = self.utterance
        if utterance is None:
            return
        if event.kind is EndpointKind.SPECULATIVE:
            self._paused_at = event.at
            if self.speculate and self.reply is None:
                trace = TurnTrace(self.replies + 1, speech_end=event.at)
                self.reply = self._reply_to(utterance, trace, committed=False).start()
        elif event.kind is EndpointKind.RESUMED:
            self._paused_at = None
            if self.reply is not None and not self.reply.committed:
                self.reply.cancel()
                self.reply = None
        elif event.kind is EndpointKind.END_OF_TURN:
            if self._paused is not None:  # is it a turn or a backchannel? the verdict says (_judge_pause)
                if self.reply is None:
                    self.reply = self._reply_to(utterance, TurnTrace(self.replies + 1, event.at), committed=False).start()
                self._turn_over = True
                return
            if self.reply is not None and self.reply.committed:
                self.utterance = None
                return  # a backchannel while we speak ("mhm"): not a turn
            if self.reply is None:
                self.reply = self._reply_to(utterance, TurnTrace(self.replies + 1, event.at), committed=False).start()
            elif turn_finished(self.reply.output().user_text) is False and self._hold_until is None:
                self._hold_until = now + HOLD_MS / 1000  # "my number is four one five ...": give them a moment
                return
            self._end_turn(utterance, self.reply, now)

    def _end_turn(self, utterance: Utterance, reply: Reply, now: float, early: bool = False) -> None:
        """The caller's turn is over: the reply to it plays as soon as it has audio.

        `early`: ended by its words, before the endpoint; its words go to the transcript once the agent's
        answer starts to play (the caller may still go on, and then the turn is heard whole)."""
        if self.utterance is utterance:
            self.utterance = None
        self._paused_at = self._hold_until = None
        if reply.trace is not None:
            reply.trace.mark("endpoint", now)
        self._commit(reply, hold_words=early)
