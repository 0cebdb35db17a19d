"""`cellcall bench engines`: load time, STT real-time factor, TTS time to first chunk, LLM time to
first token and tokens/s, peak memory; medians over several runs, with the configured settings.
Then the STT decode paths side by side on short turns (bench/stt.py).

STT is fed the TTS's own 8 kHz speech so the benchmark needs no data files; the LLM runs after
`warm()` with a phone-call system prompt, as in a call. CPU load is printed because on a shared
machine it moves every figure.
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Callable
from pathlib import Path

from cellcall.bench.figure import Figure
from cellcall.bench.report import write_section
from cellcall.bench.stt import measure_paths
from cellcall.config import Settings
from cellcall.engines import ChatMessage
from cellcall.engines.cache import Engines
from cellcall.voice.audio import resample

SENTENCES = [
    "Hello, this is Alex calling for Sam Taylor about an appointment.",
    "Could we move the cleaning from Tuesday to Friday morning instead?",
    "Nine thirty on Friday works well, thank you.",
    "Please call Sam back at 555 0100 if anything changes.",
    "Thank you very much for your help, have a nice day.",
]
SYSTEM = ChatMessage(
    "system",
    "You are Alex, a friendly assistant calling a dental office for Sam Taylor. Objective: move Sam's cleaning "
    "from Tuesday 3 pm to a Friday morning. Speak in one or two short sentences.",
)
QUESTIONS = [
    "Hello, Bright Smile Dental, how can I help you?",
    "Sure, what is the patient's name?",
    "We have Friday at nine or eleven, which one?",
    "Anything else I can help you with?",
    "Can you spell the last name for me?",
]


def _timed(step: Callable[[], object]) -> float:
    started = time.perf_counter()
    step()
    return time.perf_counter() - started


def measure(settings: Settings, runs: int) -> list[Figure]:
    """Load the engines once, then measure each over `runs` rounds."""
    if runs < 1:
        raise ValueError("runs must be at least 1")
    engines = Engines(settings)
    tts_load = _timed(engines.tts)
    stt_load = _timed(engines.stt)
    llm_load = _timed(engines.llm)
    tts, stt, llm = engines.tts(), engines.stt(), engines.llm()
    first_chunk, tts_rtf, stt_rtf, ttft, rate = [], [], [], [], []
    for i in range(runs):
        text = SENTENCES[i % len(SENTENCES)]
        started = time.perf_counter()
        stream = tts.synthesize(text)
        first = next(stream)
        first_chunk.append((time.perf_counter() - started) * 1000)
        pcm = first + b"".join(stream)
        audio_s = len(pcm) / 2 / tts.sample_rate
        tts_rtf.append((time.perf_counter() - started) / audio_s)
        heard = stt.transcribe(resample(pcm, tts.sample_rate, stt.sample_rate))
        stt_rtf.append(heard.compute_s / heard.audio_s)
    llm.warm([SYSTEM])
    for i in range(runs):
        messages = [SYSTEM, ChatMessage("user", QUESTIONS[i % len(QUESTIONS)])]
        started = time.perf_counter()
        stamps = [time.perf_counter() - started for _ in llm.stream_chat(messages, max_tokens=48, temperature=0.0)]
        if stamps:
            ttft.append(stamps[0] * 1000)
        if len(stamps) > 1:
            rate.append((len(stamps) - 1) / (stamps[-1] - stamps[0]))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return [
        Figure(f"STT load ({getattr(stt, 'name', 'stt')})", [stt_load], "s"),
        Figure("STT real-time factor (8 kHz speech, one sentence)", stt_rtf, ""),
        Figure(f"TTS load ({getattr(tts, 'name', 'tts')})", [tts_load], "s"),
        Figure("TTS time to first chunk", first_chunk, "ms"),
        Figure("TTS real-time factor", tts_rtf, ""),
        Figure(f"LLM load ({llm.name})", [llm_load], "s"),
        Figure("LLM time to first token (warm prompt)", ttft, "ms"),
        Figure("LLM tokens per second", rate, "tok/s"),
        Figure("peak memory (RSS, all three loaded)", [peak_mb], "MB"),
        *measure_paths(settings, tts, runs),
    ]


def table(figures: list[Figure], settings: Settings) -> str:
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    lines = [
        f"Engines on {os.cpu_count()} CPU cores (load average {load}); stt {settings.stt.model} beam "
        f"{settings.stt.beam_size} threads {settings.stt.threads}, tts {settings.tts.voice}, llm {settings.llm.backend} "
        f"{settings.llm.model} threads {settings.llm.threads}. Medians over the runs shown; on a shared machine "
        "every figure moves with the load average, so compare runs made at similar load.",
        "",
        "| figure | median | runs |",
        "|---|---|---|",
    ]
    return "\n".join(lines + [f.row() for f in figures if f.values])


def run_bench(settings: Settings, runs: int = 5, out: Path = Path("docs/benchmarks.md")) -> str:
    """Measure, write the `engines` section of docs/benchmarks.md, return the markdown."""
    markdown = table(measure(settings, runs), settings)
    write_section(out, "engines", markdown)
    return markdown
