"""One call end to end: policy, outbox, dial (models load while it rings), the voice loop, hang-up, reports.

`place_call` and `answer_call` are what the CLI, the watch runner and OpenClaw use. Whatever happens
(busy, a vanished modem, Ctrl-C), the outbox folder exists from the start and is finalised at the end,
so a report always says what happened and the transcript keeps what was said.
"""

from __future__ import annotations

import copy
import dataclasses
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

from cellcall.agent.agent import Agent
from cellcall.answering.screen import AnsweringPlan
from cellcall.config import Settings
from cellcall.engines import ChatModel, Synthesizer, Transcriber
from cellcall.engines.cache import Engines, shared_engines
from cellcall.engines.summary import summarize_call
from cellcall.goal import Goal
from cellcall.line import Line, LineError, LineEventKind
from cellcall.observe import CallObserver, Fanout
from cellcall.outbox import CallOutbox
from cellcall.policy import DialLedger, PolicyRefusal, check_dial
from cellcall.priority import favour_calls
from cellcall.record import CallRecord, CallStatus, Direction, Turn, TurnLatency
from cellcall.voice.loop import LoopResult, VoiceLoop
from cellcall.voice.opening import OpeningPrep
from cellcall.voice.recording import Recorder
from cellcall.voice.reply import ModelParams

EXIT_CODES = {
    CallStatus.COMPLETED: 0,
    CallStatus.FAILED: 1,
    CallStatus.NO_ANSWER: 3,
    CallStatus.BUSY: 4,
    CallStatus.REFUSED: 5,
    CallStatus.INTERRUPTED: 130,
    CallStatus.VOICEMAIL: 6,
}
INBOUND_ANSWER_TIMEOUT_S = 10.0
END_BUDGET_S = 2.0  # from the hang-up to the finished reports: OpenClaw and the next call wait for them
WRITE_RESERVE_S = 0.4  # of that budget, kept for writing the reports and letting go of the line
OPENING_JOIN_S = 30.0  # a busy or unanswered call waits this long at most for the opening's models
HANGUP_EVENTS = {
    LineEventKind.BUSY: (CallStatus.BUSY, "busy"),
    LineEventKind.NO_ANSWER: (CallStatus.NO_ANSWER, "no answer"),
    LineEventKind.REMOTE_HANGUP: (CallStatus.NO_ANSWER, "ended before answer"),
}


Models = tuple[Transcriber, Synthesizer, ChatModel]


@dataclass
class CallResult:
    record: CallRecord
    folder: Path
    report: Path
    loop: LoopResult | None = None  # the voice loop's own account (None when the call was never answered)


def exit_code(status: CallStatus) -> int:
    """Process exit code for a call's status: 0 completed, distinct codes for the others."""
    return EXIT_CODES[status]


def call_settings(goal: Goal, settings: Settings) -> Settings:
    """A copy of `settings` with the goal's per-call overrides (never the dialling policy)."""
    out = copy.deepcopy(settings)
    if goal.hangup.max_duration_s:
        out.voice = dataclasses.replace(out.voice, max_duration_s=goal.hangup.max_duration_s)
    if goal.hangup.silence_timeout_s:
        out.voice = dataclasses.replace(out.voice, silence_timeout_s=goal.hangup.silence_timeout_s)
    out.llm = dataclasses.replace(out.llm, **goal.llm)
    out.stt = dataclasses.replace(out.stt, **goal.stt)
    out.tts = dataclasses.replace(out.tts, **goal.tts)
    if goal.voice:
        out.tts = dataclasses.replace(out.tts, voice=goal.voice)
    return out


def place_call(
    goal: Goal,
    settings: Settings,
    line: Line,
    *,
    engines: Engines | None = None,
    stop: threading.Event | None = None,
    observer: CallObserver | None = None,
) -> CallResult:
    """Dial `goal.number` on an open `line` and hold the conversation; the reports are always written."""
    settings = call_settings(goal, settings)
    record = _new_record(goal, goal.number, Direction.OUTBOUND)
    root = Path(settings.paths.outbox)
    ledger = DialLedger.in_outbox(root)
    try:
        if goal.number is None:
            raise PolicyRefusal("the goal has no number to call", "invalid")
        check_dial(goal.number, settings.policy, ledger)
    except PolicyRefusal as refusal:
        return refuse_call(goal, settings, refusal, record, observer=observer)
    ledger.record(goal.number, datetime.now(UTC))
    return _Session(goal, settings, line, engines, stop, observer, record).outbound()


def refuse_call(
    goal: Goal, settings: Settings, refusal: PolicyRefusal, record: CallRecord | None = None, observer: CallObserver | None = None
) -> CallResult:
    """The reports of a call the dialling policy refused: nothing touches a line (`cellcall serve` answers 403 with it)."""
    record = record or _new_record(goal, goal.number, Direction.OUTBOUND)
    record.status, record.hangup_reason = CallStatus.REFUSED, f"policy: {refusal.reason}"
    no_line = cast(Line, None)  # a refused session only writes its reports
    return _Session(goal, settings, no_line, None, None, observer, record, load_models=False).close()


def answer_call(
    goal: Goal,
    settings: Settings,
    line: Line,
    caller_number: str | None,
    *,
    engines: Engines | None = None,
    stop: threading.Event | None = None,
    observer: CallObserver | None = None,
) -> CallResult:
    """Answer the ringing inbound call on `line` with `goal` (the agent speaks first)."""
    settings = call_settings(goal, settings)
    record = _new_record(goal, caller_number, Direction.INBOUND)
    return _Session(goal, settings, line, engines, stop, observer, record).inbound()


def _new_record(goal: Goal, number: str | None, direction: Direction) -> CallRecord:
    goal_path = str(goal.path) if goal.path else None
    return CallRecord.new(
        goal.name, number, direction, CallStatus.FAILED, goal_path=goal_path, objective=goal.objective, tags=list(goal.tags)
    )


class _Session:
    """The state of one call between its outbox being created and its reports being final."""

    def __init__(
        self,
        goal: Goal,
        settings: Settings,
        line: Line,
        engines: Engines | None,
        stop: threading.Event | None,
        observer: CallObserver | None,
        record: CallRecord,
        load_models: bool = True,
    ) -> None:
        self.goal, self.settings, self.line, self.record = goal, settings, line, record
        self.stop = stop or threading.Event()
        self.observer = observer or CallObserver()
        self.outbox = CallOutbox.create(Path(settings.paths.outbox), record)
        self.observer.on_outbox(self.outbox.path)
        self.started = time.monotonic()
        self.recorder: Recorder | None = None
        self.loop_result: LoopResult | None = None
        self.engines = engines
        self.agent = Agent(goal, settings.agent.style, settings.llm.context)
        self.opening: OpeningPrep | None = None
        if load_models:
            grant = favour_calls(settings.priority.call_nice)  # before the models' threads start: they inherit it
            record.extra["cpu_nice"] = grant.nice
            if not grant.granted:
                record.extra["cpu_nice_refused"] = grant.describe()
            self.engines = engines or shared_engines(settings)
            self.engines.preload()
            self.opening = OpeningPrep(
                self.agent,
                self.engines.tts,
                self.engines.llm,
                speak_first=record.direction is Direction.INBOUND,
            )

    # ---- outbound / inbound ----------------------------------------------------------------------

    def _prep(self) -> OpeningPrep:
        """The opening in preparation (every session that talks has one; only a refused one does not)."""
        assert self.opening is not None
        return self.opening

    def outbound(self) -> CallResult:
        self.observer.on_state("dialing")
        assert self.goal.number is not None  # place_call refused numberless goals already
        try:
            self.line.dial(self.goal.number)
        except LineError as exc:
            return self._end(CallStatus.FAILED, f"dial failed: {exc}", error=str(exc))
        self._prep().start()  # after ATD: the dial itself waits on nothing
        return self._await_answer(self.settings.line.answer_timeout_s)

    def inbound(self) -> CallResult:
        self._prep().start()
        try:
            self.line.answer()
        except LineError as exc:
            return self._end(CallStatus.FAILED, f"answer failed: {exc}", error=str(exc))
        return self._await_answer(INBOUND_ANSWER_TIMEOUT_S)

    def _await_answer(self, timeout_s: float) -> CallResult:
        deadline = time.monotonic() + timeout_s
        while True:
            if self.stop.is_set():
                self._hangup()
                return self._end(CallStatus.INTERRUPTED, "interrupted before answer")
            left = deadline - time.monotonic()
            if left <= 0:
                self._hangup()
                return self._end(CallStatus.NO_ANSWER, f"no answer within {timeout_s:g} s")
            event = self.line.next_event(min(left, 0.1))
            if event is None:
                continue
            if event.kind is LineEventKind.RINGING:
                self.observer.on_state("ringing")
            elif event.kind is LineEventKind.ANSWERED:
                return self._converse(event.at)
            elif event.kind in HANGUP_EVENTS:
                status, reason = HANGUP_EVENTS[event.kind]
                return self._end(status, reason)
            elif event.kind is LineEventKind.ERROR:
                return self._end(CallStatus.FAILED, f"line error: {event.detail}", error=event.detail)

    def _converse(self, answered_at: float) -> CallResult:
        self.observer.on_state("answered")
        models, backlog, ended = self._models_while_listening()
        if ended is not None:
            return ended
        assert models is not None
        stt, tts, llm = models
        loop = VoiceLoop(
            self.line,
            stt,
            tts,
            llm,
            self.settings.voice,
            self.agent,
            ModelParams(self.settings.llm.max_tokens, self.settings.llm.temperature, self.settings.llm.warm_while_listening),
            self._prep().opening,
            answering=self._answering_plan(),
            language=self.goal.language,
            listener=Fanout(_OutboxWriter(self), self.observer),
            stop=self.stop,
            t0=answered_at,
        )
        try:
            result = loop.run(backlog)
        except Exception as exc:  # noqa: BLE001 - a bug in the loop still ends in a hang-up and reports
            result = LoopResult(
                f"internal error: {exc}",
                CallStatus.FAILED,
                f"{type(exc).__name__}: {exc}",
                set(loop.tags),
                list(loop.transcript.turns),
                list(loop.latencies),
                list(loop.barge_ins),
            )
            self._hangup()
        self.loop_result, self.recorder = result, loop.recorder
        if result.reason != "remote hang-up" and result.status is not CallStatus.FAILED:
            self.observer.on_state("hanging-up")
            self._hangup()
        self.record.duration_s = round(time.monotonic() - answered_at, 1)
        return self._end(result.status, result.reason, error=result.error)

    def _answering_plan(self) -> AnsweringPlan | None:
        """Outbound: what to do when a mailbox, a menu or hold answers (inbound: a person called us)."""
        goal = self.goal
        if self.record.direction is not Direction.OUTBOUND:
            return None
        rule = goal.voicemail
        message = rule.message if rule is not None and rule.action == "leave_message" else None
        return AnsweringPlan(message, tuple(goal.keys), goal.menu, goal.objective, goal.hangup.hold_max_s)

    def _models_while_listening(self) -> tuple[Models | None, list[tuple[bytes, float]], CallResult | None]:
        """Wait for the models (normally loaded while it rang), keeping the caller's first words meanwhile.

        Returns (stt, tts, llm), the frames heard while waiting, and a CallResult if the call ended.
        """
        loaded: dict[str, object] = {}
        done = threading.Event()

        engines = self.engines
        assert engines is not None

        def load() -> None:
            try:
                loaded["models"] = (engines.stt(), engines.tts(), engines.llm())
            except Exception as exc:  # noqa: BLE001 - reported as the call's failure below
                loaded["error"] = exc
            done.set()

        threading.Thread(target=load, name="models", daemon=True).start()
        backlog: list[tuple[bytes, float]] = []
        while not done.is_set():
            frame = self.line.read_frame(0.05)
            if frame is not None:
                backlog.append((frame, time.monotonic()))
            event = self.line.next_event(0)
            if self.stop.is_set() or (event is not None and event.kind in (LineEventKind.REMOTE_HANGUP, LineEventKind.ERROR)):
                if event is None or event.kind is not LineEventKind.REMOTE_HANGUP:
                    self._hangup()
                return None, backlog, self._early_end(event)
        if "error" in loaded:
            self._hangup()
            return (
                None,
                backlog,
                self._end(CallStatus.FAILED, f"models failed to load: {loaded['error']}", error=str(loaded["error"])),
            )
        return cast(Models, loaded["models"]), backlog, None

    def _early_end(self, event) -> CallResult:
        if event is None:
            return self._end(CallStatus.INTERRUPTED, "interrupted")
        if event.kind is LineEventKind.REMOTE_HANGUP:
            return self._end(CallStatus.COMPLETED, "remote hang-up")
        return self._end(CallStatus.FAILED, f"line error: {event.detail}", error=event.detail)

    # ---- the end ---------------------------------------------------------------------------------

    def _hangup(self) -> None:
        try:
            self.line.hangup()
        except LineError:
            pass  # the call is already gone (port vanished): nothing left to hang up

    def _end(self, status: CallStatus, reason: str, error: str | None = None) -> CallResult:
        self.record.status, self.record.hangup_reason, self.record.error = status, reason, error
        return self.close()

    def close(self) -> CallResult:
        """Summarise, write audio and the final reports; returns where they are."""
        record, result = self.record, self.loop_result
        if result is not None:
            record.turns, record.latency = result.turns, result.latencies
            record.extra["barge_ins"] = len(result.barge_ins)
            record.extra["backchannels"] = len(result.backchannels)  # of those, the agent went on after
            record.answered_by, record.dtmf_sent = result.answered_by, list(result.dtmf_sent)
            self._summarise(result.tags)
        if self.recorder is not None and self.settings.outbox.audio:
            caller, agent = self.recorder.tracks()
            self.outbox.write_audio(caller, agent, self.recorder.sample_rate)
        report = self.outbox.finalize(record)
        if self.opening is not None:
            self.opening.join(OPENING_JOIN_S)  # native TTS/LLM work must not outlive the call (aborts at exit)
        self.observer.on_finished(record, self.outbox.path)
        self.observer.on_state("done")
        return CallResult(record, self.outbox.path, report, result)

    def _summarise(self, tags: set[str]) -> None:
        record = self.record
        llm = None
        try:
            llm = self.engines.llm() if self.engines is not None else None
        except Exception:  # noqa: BLE001 - the summary falls back to the transcript and tags
            llm = None
        budget = self.settings.llm.summary_timeout_s
        ended = self.loop_result.ended_at if self.loop_result is not None else None
        if ended is not None:  # the model's proposal gets what the end-of-call budget leaves, then the fallback
            budget = min(budget, max(0.0, END_BUDGET_S - WRITE_RESERVE_S - (time.monotonic() - ended)))
        summary = summarize_call(llm if budget > 0 else None, record.objective, record.turns, tags, timeout_s=budget)
        record.summary, record.outcome = summary.summary, summary.outcome
        record.objective_met, record.objective_evidence = summary.objective_met, summary.evidence
        record.facts, record.next_steps = summary.facts, summary.next_steps


class _OutboxWriter(CallObserver):
    """Turns and latencies go to the outbox as they happen, so a crash keeps them."""

    def __init__(self, session: _Session) -> None:
        self.session = session

    def on_turn(self, turn: Turn) -> None:
        self.session.outbox.append_turn(turn)

    def on_latency(self, latency: TurnLatency) -> None:
        self.session.outbox.append_latency(latency)
