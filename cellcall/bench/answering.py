"""`cellcall bench answering`: who answered, over every answering scenario, with the real models.

For each scenario the answerer is known (the emulator's script), so the figures are a confusion
table of `answered_by` (the one that matters: no person taken for a machine), how soon after the
beep the mailbox message starts (far end's clock), how soon after a menu prompt ends the key
arrives, and whether the agent ever spoke into a machine that was not waiting for it.
"""

from __future__ import annotations

import copy
import tempfile
import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from cellcall.answering.wording import Heard, heard
from cellcall.bench.calls import DEFAULT_GOAL
from cellcall.bench.load import busy_load, load_text
from cellcall.bench.report import publish
from cellcall.call import place_call
from cellcall.config import Settings
from cellcall.emulator.farend import FarEndMetrics
from cellcall.emulator.line import emulated_line
from cellcall.engines.cache import shared_engines
from cellcall.goal import load_goal
from cellcall.trace import SpanStats, span_stats

EXPECTED = {  # scenario -> who answers it
    "dentist": "human",
    "long-greeting": "human",
    "hold": "human",  # a queue's "please hold" decides nothing; the person after the music does
    "menu": "ivr",
    "menu-no-route": "ivr",
    "voicemail": "voicemail",
    "voicemail-no-beep": "voicemail",
    "mailbox-full": "voicemail",
    "unavailable": "unknown",
}
ANSWERERS = ("human", "voicemail", "ivr", "unknown")


@dataclass
class AnsweringRun:
    scenario: str
    answered_by: str
    status: str
    reason: str
    beep_to_message_ms: float | None  # the beep's end -> the message's first audio (far end's clock)
    key_after_prompt_ms: float | None  # a menu prompt's end -> its key arriving
    words_into_machines: int  # agent utterances that started while a machine prompt or hold music played


def _figures(metrics: FarEndMetrics) -> tuple[float | None, float | None, int]:
    turns, spoken = metrics.turns, metrics.utterances
    beep = next((t for t in turns if t.text.startswith("[tone")), None)
    after_beep = next((u.start for u in spoken if beep is not None and u.start >= beep.ended_at), None)
    beep_ms = (after_beep - beep.ended_at) * 1000 if beep is not None and after_beep is not None else None
    menu = next((t for t in turns if t.dtmf_heard_at is not None), None)
    key_ms = (menu.dtmf_heard_at - menu.ended_at) * 1000 if menu is not None and menu.dtmf_heard_at is not None else None
    # the script's own text says which lines are a machine's (a tone, music, a prompt): none may be talked over
    machine = [t for t in turns if t.text.startswith("[") or heard(t.text) is not Heard.PERSON]
    into = sum(1 for u in spoken for t in machine if t.started_at <= u.start <= t.ended_at)
    return beep_ms, key_ms, into


def run_one(goal_path: Path, settings: Settings, scenario: str) -> AnsweringRun:
    goal = load_goal(goal_path, settings.policy.default_country)
    engines = shared_engines(settings)
    with emulated_line(settings, scenario, engines) as (line, emulator):
        result = place_call(goal, settings, line, engines=engines, stop=threading.Event())
        emulator.done.wait(2.0)
    record = result.record
    beep_ms, key_ms, into = _figures(emulator.metrics)
    return AnsweringRun(scenario, record.answered_by, record.status.value, record.hangup_reason, beep_ms, key_ms, into)


def run_bench(settings: Settings, runs: int, load: int = 0, doc: Path = Path("docs/benchmarks.md")) -> str:
    engines = shared_engines(settings)
    engines.preload()
    engines.stt(), engines.tts(), engines.llm()
    results: list[AnsweringRun] = []
    before = load_text()
    with tempfile.TemporaryDirectory(prefix="cellcall-bench-") as outbox, busy_load(load):
        settings = copy.deepcopy(settings)
        settings.paths.outbox = outbox
        for _ in range(runs):
            results.extend(run_one(DEFAULT_GOAL, settings, name) for name in EXPECTED)
        after = load_text()
    return publish(doc, "answering", render(results), load, before, after)


def render(results: list[AnsweringRun]) -> str:
    confusion = Counter((EXPECTED[r.scenario], r.answered_by or "unknown") for r in results)
    people_as_machines = sum(n for (truth, got), n in confusion.items() if truth == "human" and got != "human")
    machines_as_people = sum(n for (truth, got), n in confusion.items() if truth != "human" and got == "human")
    beep = span_stats(r.beep_to_message_ms for r in results if r.beep_to_message_ms is not None)
    keys = span_stats(r.key_after_prompt_ms for r in results if r.key_after_prompt_ms is not None)
    lines = [
        f"{len(results)} calls over {len(EXPECTED)} answering scenarios (emulated SIM7600, real models, real time).",
        "",
        "| answered by (truth) | " + " | ".join(f"classified {a}" for a in ANSWERERS) + " |",
        "|---|" + "---|" * len(ANSWERERS),
    ]
    for truth in ANSWERERS:
        if any(t == truth for t, _ in confusion):
            lines.append(f"| {truth} | " + " | ".join(str(confusion[(truth, got)]) for got in ANSWERERS) + " |")
    lines += [
        "",
        "| figure | measured | target |",
        "|---|---|---|",
        f"| people classified as machines | {people_as_machines} | 0 |",
        f"| machines classified as people | {machines_as_people} | |",
        f"| beep end -> message first audio, p50 / p90 | {_ms(beep, 'p50')} / {_ms(beep, 'p90')} ms (n={beep.n if beep else 0}) | <= 1000 ms |",
        f"| menu prompt end -> key, p50 / p90 | {_ms(keys, 'p50')} / {_ms(keys, 'p90')} ms (n={keys.n if keys else 0}) | |",
        f"| agent words spoken into a machine's prompt or hold music | {sum(r.words_into_machines for r in results)} | 0 |",
        "",
        "| scenario | answered by | status (reason) |",
        "|---|---|---|",
    ]
    lines += [f"| {r.scenario} | {r.answered_by or '-'} | {r.status} ({r.reason}) |" for r in results]
    return "\n".join(lines)


def _ms(stats: SpanStats | None, key: str) -> str:
    return "-" if stats is None else f"{getattr(stats, key):.0f}"
