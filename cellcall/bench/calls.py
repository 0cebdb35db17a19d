"""`cellcall bench calls`: whole calls on the emulator (or, `--line sip`, over SIP on loopback), real models, real time.

Voice-to-voice and barge-in stop are the emulator's own figures (its sample clock: end of far-end
speech -> first agent audio played to the network), so they include everything the caller waits
for: endpointing, STT, LLM, TTS, pacing and the modem's buffer. The agent's own spans come from its
trace. A barge-in is false when the far end was not talking at that moment (so it was the agent's
own echo, or noise): both sides run in this process, on the same monotonic clock.
"""

from __future__ import annotations

import copy
import resource
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from cellcall.bench.load import busy_load, load_text
from cellcall.bench.report import write_section
from cellcall.call import place_call
from cellcall.config import PrioritySettings, Settings
from cellcall.emulator.farend import FarEndMetrics
from cellcall.emulator.line import far_end_line
from cellcall.emulator.scenario import load_scenario
from cellcall.engines.cache import shared_engines
from cellcall.goal import load_goal
from cellcall.priority import favour_calls
from cellcall.record import TurnLatency
from cellcall.trace import SpanStats, span_stats

DEFAULT_GOAL = Path(__file__).resolve().parents[2] / "goals" / "examples" / "dentist.md"
SPANS = (
    ("endpoint", "endpoint_ms"),
    ("STT final", "stt_ms"),
    ("LLM first token", "llm_first_token_ms"),
    ("LLM first sentence", "llm_first_sentence_ms"),
    ("TTS first audio", "tts_first_audio_ms"),
    ("first audio on the line", "first_audio_ms"),
)


def false_barge_ins(onsets: list[float], metrics: FarEndMetrics, slack_s: float = 0.3) -> int:
    """Barge-ins whose onset falls outside every stretch of far-end speech (its clock, with `slack_s`)."""
    return sum(
        1 for at in onsets if not any(turn.started_at - slack_s <= at <= turn.ended_at + slack_s for turn in metrics.turns)
    )


@dataclass
class ScenarioRun:
    name: str
    status: str
    reason: str
    voice_to_voice: list[float] = field(default_factory=list)
    barge_in_stop: list[float] = field(default_factory=list)
    barge_ins: int = 0
    false_barge_ins: int = 0
    backchannels: int = 0  # the far end's "mm-hm" lines said over the agent
    went_on: list[float] = field(default_factory=list)  # of those, the agent's audio again (ms after their end)
    resumed: int = 0  # the agent's own count of the backchannels it went on after
    underruns: int = 0
    heard_replies: int = 0
    latencies: list[TurnLatency] = field(default_factory=list)
    wall_s: float = 0.0


def run_scenario(goal_path: Path, settings: Settings, scenario: str, line_kind: str = "emulator") -> ScenarioRun:
    """One call of `scenario` through the real driver on the emulator (or over SIP on loopback, `line_kind`
    "sip"); the far end's figures and ours."""
    goal = load_goal(goal_path, settings.policy.default_country)
    engines = shared_engines(settings)
    started = time.monotonic()
    with far_end_line(line_kind)(settings, scenario, engines) as (line, emulator):
        result = place_call(goal, settings, line, engines=engines, stop=threading.Event())
        emulator.done.wait(2.0)
    metrics = emulator.metrics
    record = result.record
    return ScenarioRun(
        name=scenario,
        status=record.status.value,
        reason=record.hangup_reason,
        voice_to_voice=list(metrics.voice_to_voice_ms),
        barge_in_stop=[t.barge_in_stop_ms for t in metrics.turns if t.barge_in_stop_ms is not None],
        barge_ins=len(result.loop.barge_ins) if result.loop else 0,
        false_barge_ins=false_barge_ins(result.loop.barge_ins, metrics) if result.loop else 0,
        backchannels=sum(1 for t in metrics.turns if t.backchannel),
        went_on=[t.agent_went_on_ms for t in metrics.turns if t.backchannel and t.agent_went_on_ms is not None],
        resumed=len(result.loop.backchannels) if result.loop else 0,
        underruns=metrics.uplink_underruns,
        heard_replies=metrics.heard_agent_utterances,
        latencies=list(record.latency),
        wall_s=time.monotonic() - started,
    )


def run_bench(
    settings: Settings,
    scenarios: list[str],
    repeat: int = 1,
    goal_path: Path = DEFAULT_GOAL,
    doc: Path = Path("docs/benchmarks.md"),
    load: int = 0,
    line_kind: str = "emulator",
) -> str:
    """Run the calls, print-ready markdown back; also written to docs/benchmarks.md (section "calls", or
    "calls-load-N" with N spinning processes beside them; "calls-sip" over SIP)."""
    far_end_line(line_kind)  # a wrong --line fails now, before the models load
    for name in scenarios:
        load_scenario(name)  # a misspelt scenario fails now, not after minutes of calls
    grant = favour_calls(settings.priority.call_nice)  # what each call does first; here for the report
    engines = shared_engines(settings)
    engines.preload()
    engines.stt(), engines.tts(), engines.llm()  # measured calls start with the models loaded, as in `watch`
    usage0, wall0 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
    runs: list[ScenarioRun] = []
    before = load_text()
    with tempfile.TemporaryDirectory(prefix="cellcall-bench-") as outbox, busy_load(load):
        settings = copy.deepcopy(settings)
        settings.paths.outbox = outbox  # bench calls never land in the user's outbox or dial ledger
        for _ in range(repeat):
            runs.extend(run_scenario(goal_path, settings, name, line_kind) for name in scenarios)
        after = load_text()
    usage1, wall = resource.getrusage(resource.RUSAGE_SELF), time.monotonic() - wall0
    cpu = (usage1.ru_utime + usage1.ru_stime - usage0.ru_utime - usage0.ru_stime) / wall
    busy = f"{load} spinning processes at nice 0 beside the calls; " if load else ""
    markdown = render(runs, cpu, usage1.ru_maxrss / 1024.0, settings, line_kind)
    markdown += f"\n\n{busy}{grant.describe()} (priority.call_nice); {before} at the start, {after} at the end."
    section = f"calls-load-{load}" if load else "calls"
    if grant.nice != PrioritySettings().call_nice:
        section += f"-nice-{grant.nice}"  # measured both ways: favoured, and sharing the CPU evenly
    if settings.agent.style != "scripted":
        section += f"-{settings.agent.style}"  # every reply phrased by the model: its first token is on the path
    if not settings.llm.warm_while_listening:
        section += "-cold-prefix"  # measured both ways: the prefix warmed while the caller speaks, and not
    if settings.voice.echo_canceller != "none":
        section += f"-aec-{settings.voice.echo_canceller}"  # measured both ways: the gate alone, and with a canceller
    write_section(doc, section if line_kind == "emulator" else f"{section}-{line_kind}", markdown)
    return markdown


def _fmt(stats: SpanStats | None, key: str = "p50") -> str:
    return "-" if stats is None else f"{getattr(stats, key):.0f}"


ROUTES = {
    "emulator": "on the emulated SIM7600 through the real driver",
    "sip": "over SIP on loopback (SipLine -> the far end's baresip user agent, PCMU RTP)",
}


def render(runs: list[ScenarioRun], cpu_cores: float, peak_mb: float, settings: Settings, line_kind: str = "emulator") -> str:
    """The markdown report: per-scenario rows, overall figures against the targets, agent spans."""
    v2v = span_stats(v for run in runs for v in run.voice_to_voice)
    stops = span_stats(v for run in runs for v in run.barge_in_stop)
    false_barge = sum(run.false_barge_ins for run in runs if run.name.startswith("echo"))
    echo_runs = sum(1 for run in runs if run.name.startswith("echo"))
    false_all = sum(run.false_barge_ins for run in runs)
    underruns = sum(run.underruns for run in runs)
    backchannels = sum(run.backchannels for run in runs)
    went_on = span_stats(v for run in runs for v in run.went_on)
    resumed = sum(run.resumed for run in runs if run.backchannels)
    first_audio = span_stats(lat.first_audio_ms for run in runs for lat in run.latencies)
    voice = settings.voice
    lines = [
        f"Real-time calls {ROUTES[line_kind]}; embedded models "
        f"(STT {settings.stt.model} x{settings.stt.threads} threads, LLM {settings.llm.model} x{settings.llm.threads}, "
        f"TTS {settings.tts.voice}); "
        f"endpoint {voice.endpoint_silence_ms} ms, speculative start {voice.speculative_silence_ms} ms, "
        f"barge-in {voice.barge_in_ms} ms, echo canceller {voice.echo_canceller}; agent style {settings.agent.style}, "
        f"prefix warmed while the caller speaks: {'yes' if settings.llm.warm_while_listening else 'no'}. {len(runs)} calls.",
        "",
        "| scenario | status | replies heard | voice-to-voice p50 / p90 ms | barge-in stop ms | barge-ins (false) | underruns | wall s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        s = span_stats(run.voice_to_voice)
        b = span_stats(run.barge_in_stop)
        lines.append(
            f"| {run.name} | {run.status} ({run.reason}) | {run.heard_replies} | {_fmt(s)} / {_fmt(s, 'p90')} | "
            f"{_fmt(b)} | {run.barge_ins} ({run.false_barge_ins}) | {run.underruns} | {run.wall_s:.0f} |"
        )
    lines += [
        "",
        "| figure | measured | target |",
        "|---|---|---|",
        f"| voice-to-voice p50 (far end's clock) | {_fmt(v2v)} ms (n={v2v.n if v2v else 0}) | <= 900 ms |",
        f"| voice-to-voice p90 | {_fmt(v2v, 'p90')} ms | |",
        f"| time to first audio on the line p50 (agent's clock) | {_fmt(first_audio)} ms | |",
        f"| barge-in stop p50 (far end's clock) | {_fmt(stops)} ms | <= 150 ms |",
        f"| false barge-ins with echo (echo: -18 dB, 60 ms; echo-loud: -12 dB, 120 ms) | {false_barge} in {echo_runs} calls ({false_all} in all calls) | 0 |",
        f"| backchannels the agent went on after (agent's count) / said over it | {resumed} / {backchannels} | all |",
        f"| backchannel end -> the agent's audio again, p50 / p90 (far end's clock) | {_fmt(went_on)} / {_fmt(went_on, 'p90')} ms | |",
        f"| uplink underruns | {underruns} | 0 |",
        f"| CPU (cores busy, whole process incl. far end) | {cpu_cores:.2f} | |",
        f"| peak memory (RSS) | {peak_mb:.0f} MB | <= 2048 MB |",
        "",
        "Agent spans, ms from the end of caller speech (p50 / p90 / mean over all replies):",
        "",
        "| span | p50 | p90 | mean |",
        "|---|---|---|---|",
    ]
    for label, name in SPANS:
        stats = span_stats(getattr(lat, name) for run in runs for lat in run.latencies)
        lines.append(f"| {label} | {_fmt(stats)} | {_fmt(stats, 'p90')} | {_fmt(stats, 'mean')} |")
    return "\n".join(lines)
