"""`cellcall bench conversation`: `cellcall eval` over the personas, one table into docs/benchmarks.md.

Each persona names the goal it is written for; every run is a real-time call on the emulator with the
real models, so the figures depend on the machine's load, which is printed with them.
"""

from __future__ import annotations

import collections
import copy
import os
import re
from pathlib import Path

from cellcall.bench.report import write_section
from cellcall.config import Settings
from cellcall.eval.persona import PersonaError, builtin_personas, load_persona
from cellcall.eval.runner import EvalError, prepare, run_eval
from cellcall.eval.score import RunScore
from cellcall.eval.table import personas_table, summarise

TOP_FAILURES = 3  # most frequent failure reasons listed per persona


def plan(names: list[str], settings: Settings) -> list[tuple[Path, str]]:
    """(goal, persona) pairs, all checked before the first call."""
    plans = []
    for name in names or builtin_personas():
        try:
            persona = load_persona(name)
        except PersonaError as exc:
            raise EvalError(str(exc)) from None
        if persona.goal is None:
            raise EvalError(f'persona {name!r} names no goal: add goal = "path/to/goal.md" to it')
        prepare(persona.goal, name, settings)
        plans.append((persona.goal, name))
    return plans


def _load() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def _why(runs: list[RunScore]) -> list[str]:
    """The most frequent failure reasons, with quoted words cut off so similar failures group."""
    counts = collections.Counter(re.split(r"[:(]", failure, maxsplit=1)[0].strip() for run in runs for failure in run.failures)
    return [f"{reason} ({count}x)" for reason, count in counts.most_common(TOP_FAILURES)]


def run_bench(settings: Settings, personas: list[str], runs: int, doc: Path = Path("docs/benchmarks.md")) -> str:
    """Run every persona `runs` times; the markdown is written to the "conversation" section and returned."""
    plans = plan(personas, settings)
    settings = copy.deepcopy(settings)
    load_before = _load()
    rows, notes = [], []
    for goal, name in plans:
        result = run_eval(goal, name, settings, runs)
        rows.append((name, result.goal, summarise(result.runs)))
        why = _why(result.runs)
        if why:
            notes.append(f"- {name}: " + "; ".join(why))
    llm, stt = settings.llm, settings.stt
    lines = [
        f"`cellcall eval` against every persona, {runs} run(s) each: real-time calls on the emulated SIM7600 through "
        f"the real driver, far end listening with the same Whisper. LLM {llm.backend} {llm.model} x{llm.threads} threads, "
        f"STT {stt.model} x{stt.threads}. Load average before {load_before}, after {_load()}.",
        "",
        personas_table(rows),
    ]
    if notes:
        lines += ["", "What failed, most frequent first:", "", *notes]
    markdown = "\n".join(lines)
    write_section(doc, "conversation", markdown)
    return markdown
