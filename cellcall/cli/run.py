"""The work behind `cellcall run`: goal file -> line (modem or emulator) -> call with a live view -> exit code.

With `--line emulator` the SIM7600 emulator is started on pseudo-terminals and the real driver talks to
it exactly as to /dev/ttyUSB2 and /dev/ttyUSB4; the far end speaks with the same loaded TTS, so the
models load once. Ctrl-C and SIGTERM set a stop event: the call hangs up cleanly and the reports are
still written.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

from rich.console import Console

from cellcall.call import CallResult, call_settings, exit_code, place_call
from cellcall.cli.view import LiveView
from cellcall.config import Settings
from cellcall.emulator.farend import FarEndMetrics
from cellcall.emulator.line import emulated_line
from cellcall.emulator.scenario import ScenarioError
from cellcall.engines.cache import Engines, shared_engines
from cellcall.goal import Goal, GoalError, load_goal
from cellcall.line import Line, LineError
from cellcall.line.factory import make_line
from cellcall.observe import CallObserver, Fanout
from cellcall.openclaw.notify import PushToOpenClaw
from cellcall.policy import DialLedger, PolicyRefusal, check_dial
from cellcall.trace import span_stats

EXIT_BAD_GOAL = 2  # the goal, the scenario or the line given cannot be used (nothing was dialled)


@contextlib.contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """Ctrl-C / SIGTERM set the returned event instead of killing the process mid-call."""
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def refused(goal: Goal, settings: Settings) -> bool:
    """Would policy refuse this call? Then no line is even opened (place_call writes the refusal)."""
    if goal.number is None:
        return True
    try:
        check_dial(goal.number, settings.policy, DialLedger.in_outbox(settings.paths.outbox))
    except PolicyRefusal:
        return True
    return False


def run_goal(
    goal_path: Path,
    settings: Settings,
    *,
    scenario: str | None = None,
    at_port: str | None = None,
    audio_port: str | None = None,
    as_json: bool = False,
    console: Console | None = None,
) -> int:
    """Place the call in `goal_path`; prints the report path (or the record as JSON); returns the exit code."""
    console = console or Console()
    try:
        goal = load_goal(goal_path, settings.policy.default_country)
    except GoalError as exc:
        console.print(str(exc), style="red", markup=False, highlight=False)
        return EXIT_BAD_GOAL
    engines = shared_engines(call_settings(goal, settings))
    view = LiveView(f"{goal.name} -> {goal.number}", console) if not as_json else CallObserver()
    with stop_on_signals() as stop:
        try:
            result, metrics = _call(goal, settings, engines, view, stop, scenario, at_port, audio_port)
        except (LineError, ScenarioError) as exc:  # no modem at those ports, an unknown scenario...
            console.print(f"error: {exc}", style="red", markup=False, highlight=False)
            return EXIT_BAD_GOAL
    _print_result(console, result, metrics, as_json)
    settle(engines)
    return exit_code(result.record.status)


def settle(engines: Engines) -> None:
    """Let model loads still running finish (a busy line ends the call while they load): native
    loaders abort the interpreter if it shuts down under them."""
    for load in (engines.stt, engines.tts, engines.llm):
        try:
            load()
        except Exception:  # noqa: BLE001 - a model that cannot load no longer matters on the way out
            pass


def end_process(code: int) -> NoReturn:
    """Exit now with `code`, reports written and output flushed: native threads of the speech and
    language libraries (e.g. llama.cpp's server loop) can abort a normal interpreter shutdown."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _call(
    goal: Goal,
    settings: Settings,
    engines: Engines,
    view: CallObserver,
    stop: threading.Event,
    scenario: str | None,
    at_port: str | None,
    audio_port: str | None,
) -> tuple[CallResult, FarEndMetrics | None]:
    """The call on the line the settings name; the emulator's far-end figures when it was emulated."""
    if refused(goal, settings):
        return place_call(goal, settings, _UnopenedLine(), engines=engines, stop=stop, observer=PushToOpenClaw(settings)), None
    if settings.line.kind == "emulator":
        with emulated_line(settings, scenario or settings.line.scenario, engines) as (line, emulator):
            result = _with_view(view, goal, settings, line, engines, stop)
        return result, emulator.metrics
    modem = make_line(settings, at_port, audio_port)
    modem.open()
    try:
        return _with_view(view, goal, settings, modem, engines, stop), None
    finally:
        modem.close()


def _with_view(
    view: CallObserver, goal: Goal, settings: Settings, line: Line, engines: Engines, stop: threading.Event
) -> CallResult:
    with view if isinstance(view, LiveView) else contextlib.nullcontext():
        return place_call(goal, settings, line, engines=engines, stop=stop, observer=Fanout(view, PushToOpenClaw(settings)))


def _print_result(console: Console, result: CallResult, metrics: FarEndMetrics | None, as_json: bool) -> None:
    if as_json:
        data = result.record.to_json() | {"folder": str(result.folder), "report": str(result.report)}
        if metrics is not None:
            data["far_end"] = far_end_summary(metrics)
        console.print_json(json.dumps(data))
        return
    record = result.record
    console.line()  # the live view's last frame may end without a newline
    console.print(f"{record.status.value}: {record.hangup_reason} ({record.duration_s:.0f} s)", markup=False)
    if metrics is not None:
        far = far_end_summary(metrics)
        console.print(
            f"far end measured voice-to-voice p50 {far['voice_to_voice_p50_ms']} ms over "
            f"{far['replies']} replies, uplink underruns {far['uplink_underruns']}",
            markup=False,
        )
    console.print(f"report: {result.report}", markup=False, highlight=False)


def far_end_summary(metrics: FarEndMetrics) -> dict:
    """The emulator's own measurements of the agent, rounded for printing."""
    v2v = span_stats(metrics.voice_to_voice_ms)
    stops = span_stats(t.barge_in_stop_ms for t in metrics.turns)
    return {
        "replies": v2v.n if v2v else 0,
        "voice_to_voice_p50_ms": round(v2v.p50) if v2v else None,
        "voice_to_voice_p90_ms": round(v2v.p90) if v2v else None,
        "barge_in_stop_ms": round(stops.p50) if stops else None,
        "uplink_underruns": metrics.uplink_underruns,
        "agent_utterances": metrics.heard_agent_utterances,
    }


class _UnopenedLine:
    """Stands in for the line of a refused call: place_call never touches it, and this proves it."""

    sample_rate = 8000

    def __getattr__(self, name: str):
        raise AssertionError(f"a refused call touched the line ({name})")
