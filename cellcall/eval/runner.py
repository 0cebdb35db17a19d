"""Run a goal against a persona on the emulated line (or over SIP on loopback), N times, with the real models, and score each call.

Each run is a whole real-time call through the real driver: the persona's far end listens on the
uplink with the loaded Whisper and speaks with the loaded Piper, so models load once. Every run gets
its own outbox folder under one eval folder (kept for reading afterwards); its dial ledger is its own,
so repeated eval calls to the emulator do not use up the dialling rate limit meant for real numbers.
"""

from __future__ import annotations

import copy
import json
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cellcall.agent.agent import Agent
from cellcall.call import CallResult, answer_call, call_settings, place_call
from cellcall.config import Settings
from cellcall.emulator.line import far_end_line
from cellcall.emulator.listening import ListeningFarEnd, listening_far_end
from cellcall.emulator.modem import ModemEmulator
from cellcall.emulator.scenario import Noise, Scenario
from cellcall.engines.cache import Engines, shared_engines
from cellcall.eval.persona import Persona, PersonaError, load_persona
from cellcall.eval.score import RunScore, prompt_sentences, score_run
from cellcall.eval.script import PersonaScript
from cellcall.goal import NEVER_SECTION, Goal, GoalError, load_goal
from cellcall.line import Line, LineError, LineEventKind

RING_TIMEOUT_S = 15.0  # inbound: the driver must report the ringing call (with +CLIP) by then
SCRIPT_JOIN_S = 15.0  # a transcription may still run when the call ends


class EvalError(ValueError):
    """The goal or persona cannot be evaluated (bad file, wrong direction); nothing was dialled."""


@dataclass
class EvalResult:
    goal: str
    persona: str
    folder: Path
    runs: list[RunScore] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.runs) and all(run.success for run in self.runs)


def prepare(goal_path: Path, persona_ref: str, settings: Settings, line_kind: str = "emulator") -> tuple[Goal, Persona]:
    """Load and check the goal, the persona and the line before any model loads or anything dials."""
    try:
        goal = load_goal(goal_path, settings.policy.default_country)
        persona = load_persona(persona_ref)
        far_end_line(line_kind)
    except (GoalError, PersonaError, LineError) as exc:
        raise EvalError(str(exc)) from None
    if line_kind == "sip" and persona.direction == "inbound":
        raise EvalError(f"persona {persona.name!r} rings the agent: inbound personas run on the emulator only, not --line sip")
    if goal.direction != persona.direction:
        raise EvalError(
            f"persona {persona.name!r} is for {persona.direction} calls but goal {goal.name!r} is {goal.direction}: "
            f"{'the persona rings the agent' if persona.direction == 'inbound' else 'the agent calls the persona'}"
        )
    return goal, persona


def agent_prompt(goal: Goal) -> list[str]:
    """The instruction sentences of the system prompt a call gives the agent (call.py's `Agent`)."""
    own = [goal.persona, goal.objective, goal.opening or ""]
    own += [text for heading, text in goal.sections.items() if heading != NEVER_SECTION]
    return prompt_sentences(Agent(goal).system.content, own)


def persona_scenario(persona: Persona) -> Scenario:
    """The emulator's view of a persona: how it answers, when it hangs up, its line noise, its pauses."""
    return Scenario(
        name=persona.name,
        description=persona.description,
        answer_delay_s=persona.answer_delay_s,
        noise=Noise(persona.noise_snr_db) if persona.noise_snr_db is not None else None,
        hangup_after_s=persona.hangup_after_s,
        max_wait_s=persona.max_wait_s,
        quiet_ms=persona.silence_ms,
        source=persona.source,
    )


def run_eval(
    goal_path: Path,
    persona_ref: str,
    settings: Settings,
    runs: int = 1,
    on_run: Callable[[int, RunScore], None] | None = None,
    stop: threading.Event | None = None,
    root: Path | None = None,
    line_kind: str = "emulator",
) -> EvalResult:
    """`runs` calls of the goal against the persona (on the emulator, or over SIP on loopback), their
    outboxes in a new folder (under `root`, else the system's temporary folder); raises EvalError on
    bad input, before any call."""
    goal, persona = prepare(goal_path, persona_ref, settings, line_kind)
    engines = shared_engines(call_settings(goal, settings))
    engines.preload()
    engines.stt(), engines.tts(), engines.llm()  # every run starts warm, as calls in `watch` do
    folder = Path(tempfile.mkdtemp(prefix=f"cellcall-eval-{persona.name}-", dir=root))
    result = EvalResult(goal.name, persona.name, folder)
    for index in range(runs):
        if stop is not None and stop.is_set():
            break
        run_settings = copy.deepcopy(settings)
        run_settings.paths.outbox = str(folder / f"run-{index + 1:02d}")
        score = run_once(goal, persona, run_settings, engines, stop, line_kind)
        result.runs.append(score)
        if on_run is not None:
            on_run(index, score)
    return result


def run_once(
    goal: Goal,
    persona: Persona,
    settings: Settings,
    engines: Engines,
    stop: threading.Event | None = None,
    line_kind: str = "emulator",
) -> RunScore:
    """One call against a fresh copy of the persona's script, scored from its call.json."""
    script = PersonaScript(persona)
    stt = engines.stt()

    def transcribe(pcm: bytes, rate: int) -> str:
        from cellcall.voice.audio import resample

        return stt.transcribe(resample(pcm, rate, stt.sample_rate), goal.language).text

    factory, built = listening_far_end(lambda: script, transcribe, persona.texts(), persona.speaks_first, persona.answer_pause_s)
    with far_end_line(line_kind)(settings, persona_scenario(persona), engines, farend=factory) as (line, emulator):
        if persona.direction == "inbound":
            result = _answer(goal, persona, settings, line, emulator, engines, stop)
        else:
            result = place_call(goal, settings, line, engines=engines, stop=stop or threading.Event())
        emulator.done.wait(2.0)
    far_end: ListeningFarEnd | None = built[0] if built else None
    if far_end is not None:
        far_end.wait_finished(SCRIPT_JOIN_S)
    call = json.loads((result.folder / "call.json").read_text(encoding="utf-8"))
    v2v = far_end.metrics.voice_to_voice_ms if far_end is not None else []
    score = score_run(persona, script, call, agent_prompt(goal), v2v, str(result.folder))
    errors = far_end.metrics.errors if far_end is not None else ["the persona never answered"]
    if errors:  # a far end that broke measured nothing: never count the run as a success
        score.failures += [f"far end: {error}" for error in errors]
        score.success = False
    (result.folder / "eval.json").write_text(json.dumps(score.to_json(), indent=2) + "\n", encoding="utf-8")
    return score


def _answer(
    goal: Goal,
    persona: Persona,
    settings: Settings,
    line: Line,
    emulator: ModemEmulator,
    engines: Engines,
    stop: threading.Event | None,
) -> CallResult:
    """The persona rings the agent; the agent answers once the driver reports the caller's number."""
    emulator.incoming_call(persona.caller_number)
    deadline = time.monotonic() + RING_TIMEOUT_S
    while time.monotonic() < deadline:
        event = line.next_event(0.5)
        if event is not None and event.kind is LineEventKind.INCOMING and event.number:
            return answer_call(goal, settings, line, event.number, engines=engines, stop=stop)
    raise LineError(f"the driver never reported the persona's incoming call within {RING_TIMEOUT_S:g} s")
