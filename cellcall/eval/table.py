"""The eval results as text: one row per run (`cellcall eval`), one row per persona (`bench conversation`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from cellcall.eval.score import RunScore
from cellcall.trace import span_stats


@dataclass(frozen=True)
class Summary:
    """Totals over runs of one persona; the figures the issue's targets are about."""

    runs: int
    succeeded: int
    false_yes: int
    missed_yes: int
    bad_quotes: int
    prompt_text: int  # agent turns that spoke prompt text
    repeats: int  # agent turns that repeated an earlier one verbatim
    voice_to_voice_p50_ms: float | None  # over every timed reply of every run
    replies_timed: int

    @property
    def success_pct(self) -> float:
        return 100.0 * self.succeeded / self.runs if self.runs else 0.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self) | {"success_pct": round(self.success_pct, 1)}


def summarise(runs: list[RunScore]) -> Summary:
    v2v = span_stats(v for run in runs for v in run.voice_to_voice_ms)
    return Summary(
        runs=len(runs),
        succeeded=sum(run.success for run in runs),
        false_yes=sum(run.false_yes for run in runs),
        missed_yes=sum(run.missed_yes for run in runs),
        bad_quotes=sum(len(run.bad_quotes) for run in runs),
        prompt_text=sum(len(run.prompt_text) for run in runs),
        repeats=sum(len(run.repeats) for run in runs),
        voice_to_voice_p50_ms=round(v2v.p50) if v2v else None,
        replies_timed=v2v.n if v2v else 0,
    )


def _report(run: RunScore) -> str:
    if run.false_yes:
        return "FALSE YES"
    problems = (["missed yes"] if run.missed_yes else []) + ([f"{len(run.bad_quotes)} bad quotes"] if run.bad_quotes else [])
    problems += ["wrong outcome"] if run.wrong_outcome is not None else []
    return f"{run.reported}: " + (", ".join(problems) if problems else "true")


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def runs_table(goal: str, persona: str, runs: list[RunScore]) -> str:
    """Markdown: a row per run, why each failure failed, and the totals."""
    lines = [
        f"eval {goal} against {persona}: {len(runs)} run(s)",
        "",
        "| run | success | report (objective_met) | prompt text | repeats | v2v p50 ms | states reached | ended |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for i, run in enumerate(runs, start=1):
        lines.append(
            f"| {i} | {'yes' if run.success else 'NO'} | {_report(run)} | {len(run.prompt_text)} | {len(run.repeats)} | "
            f"{_ms(run.voice_to_voice_p50_ms)} | {' > '.join(run.states) or '-'} | {run.hangup or run.status} |"
        )
    for i, run in enumerate(runs, start=1):
        notes = run.failures + [f"spoke prompt text: {t!r}" for t in run.prompt_text] + [f"repeated: {t!r}" for t in run.repeats]
        notes += [f"quote not in the transcript: {q!r}" for q in run.bad_quotes]
        if run.wrong_outcome is not None:
            notes.append(f"the outcome does not say what was agreed: {run.wrong_outcome!r}")
        if not run.success:  # to tell the agent's failure from the persona mishearing it
            notes += [f"persona heard: {text!r}" for text in run.heard]
        if notes:
            lines += ["", f"run {i} ({run.folder}):"] + [f"- {note}" for note in notes]
    total = summarise(runs)
    lines += [
        "",
        f"success {total.succeeded}/{total.runs} ({total.success_pct:.0f} %), false yes {total.false_yes}, "
        f"missed yes {total.missed_yes}, unquoted evidence {total.bad_quotes}, spoken prompt text {total.prompt_text}, "
        f"verbatim repeats {total.repeats}, voice-to-voice p50 {_ms(total.voice_to_voice_p50_ms)} ms "
        f"(far end's clock, {total.replies_timed} replies)",
    ]
    return "\n".join(lines)


def personas_table(rows: list[tuple[str, str, Summary]]) -> str:
    """Markdown: a row per (persona, goal) with the figures the targets name."""
    lines = [
        "| persona | goal | runs | success % | false yes | missed yes | spoken prompt text | verbatim repeats | v2v p50 ms |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for persona, goal, s in rows:
        lines.append(
            f"| {persona} | {goal} | {s.runs} | {s.success_pct:.0f} | {s.false_yes} | {s.missed_yes} | {s.prompt_text} | "
            f"{s.repeats} | {_ms(s.voice_to_voice_p50_ms)} |"
        )
    return "\n".join(lines)
