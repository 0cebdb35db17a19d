"""The work behind `cellcall eval`: goal + persona -> N emulated calls -> a table (or JSON) -> exit code.

Exit 0 only when every run succeeded, 1 when any failed, 2 when the goal, the persona or the line
cannot be used (nothing was dialled). Ctrl-C stops after the call in progress, which hangs up cleanly.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import typer

from cellcall.cli.run import stop_on_signals
from cellcall.config import Settings
from cellcall.eval.runner import EvalError, prepare, run_eval
from cellcall.eval.score import RunScore
from cellcall.eval.table import runs_table, summarise
from cellcall.line import LineError

EXIT_ALL_SUCCEEDED, EXIT_SOME_FAILED, EXIT_BAD_INPUT = 0, 1, 2


def eval_goal(goal: Path, persona: str, runs: int, as_json: bool, settings: Settings, line_kind: str = "emulator") -> int:
    """Run and print; returns the exit code."""
    try:
        prepare(goal, persona, settings, line_kind)  # bad files or --line fail here, before any model loads
    except EvalError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        return EXIT_BAD_INPUT

    def progress(index: int, score: RunScore) -> None:
        if not as_json:
            verdict = "succeeded" if score.success else "failed: " + "; ".join(score.failures)
            typer.echo(f"run {index + 1}/{runs} {verdict}", err=True)

    with stop_on_signals() as stop:
        try:
            result = run_eval(goal, persona, settings, runs, on_run=progress, stop=stop, line_kind=line_kind)
        except (EvalError, LineError) as exc:
            typer.secho(f"error: {exc}", fg="red", err=True)
            return EXIT_BAD_INPUT
    if as_json:
        data = {
            "goal": result.goal,
            "persona": result.persona,
            "folder": str(result.folder),
            "ok": result.ok,
            "summary": summarise(result.runs).to_json(),
            "runs": [run.to_json() for run in result.runs],
            "load_average": [round(x, 2) for x in os.getloadavg()],
        }
        typer.echo(json.dumps(data, indent=2))
    else:
        typer.echo(runs_table(result.goal, result.persona, result.runs))
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
        typer.echo(f"calls kept in {result.folder}; load average {load}")
    return EXIT_ALL_SUCCEEDED if result.ok else EXIT_SOME_FAILED
