"""STT decode paths side by side for `cellcall bench engines`: short turns, decode time and word error.

A phone turn is mostly 1-3 s, where Whisper's 30 s padding dominates the cost, so each path is timed
on short phrases spoken by the TTS at the line's rate: tiny.en through faster-whisper's
`transcribe()` (the old default) against base on a 5 s and an 8 s window (the new default), with 1
and 2 threads. Word error here is on synthetic speech (no data files needed), so it only catches a path
that garbles words; the telephone-quality WER on human speech is in tests/test_engines_stt.py.
"""

from __future__ import annotations

import statistics
import time

from cellcall.bench.figure import Figure
from cellcall.bench.wer import word_error_rate
from cellcall.config import Settings
from cellcall.engines import Synthesizer
from cellcall.engines.stt import WhisperTranscriber

PHRASES = [
    "Yes, that works.",
    "Friday at nine thirty.",
    "No, thank you.",
    "Could you repeat that, please?",
    "My name is Sam Taylor.",
    "Is there anything else you need?",
    "Sure, go ahead.",
    "I'm sorry, we're closed on Friday, but Monday is open.",
    "Please call Sam back this afternoon if anything changes.",
]
PATHS = [("tiny.en", 0.0), ("base", 5.0), ("base", 8.0)]  # (model, window_s): 0 = transcribe(), the 30 s path
THREADS = [1, 2]


def _label(model: str, window_s: float, threads: int) -> str:
    path = "transcribe() 30 s" if not window_s else f"window {window_s:g} s"
    return f"{model}, {path}, {threads} thread{'s' if threads > 1 else ''}"


def measure_paths(settings: Settings, tts: Synthesizer, runs: int) -> list[Figure]:
    """Median decode ms over PHRASES (median of `runs` decodes each, after a warm-up) and mean WER per path."""
    clips = [(text, b"".join(tts.synthesize(text))) for text in PHRASES]
    seconds = [len(pcm) / 2 / tts.sample_rate for _, pcm in clips]
    span = f"{min(seconds):.1f}-{max(seconds):.1f} s"
    figures = []
    for model, window_s in PATHS:
        for threads in THREADS:
            stt = WhisperTranscriber(model, threads, settings.stt.beam_size, tts.sample_rate, settings.cache_dir(), window_s)
            stt.transcribe(clips[0][1])  # warm-up: the first decode allocates
            decode_ms, errors = [], []
            for text, pcm in clips:
                timings = []
                for _ in range(runs):
                    started = time.perf_counter()
                    heard = stt.transcribe(pcm).text
                    timings.append((time.perf_counter() - started) * 1000)
                decode_ms.append(statistics.median(timings))
                errors.append(word_error_rate(text, heard))
            label = _label(model, window_s, threads)
            figures.append(Figure(f"STT decode, {label} ({len(clips)} clips of {span})", decode_ms, "ms"))
            fallbacks = f", {stt.fallbacks} fallbacks" if window_s else ""
            figures.append(
                Figure(f"STT word error, {label} (mean of {len(clips)}{fallbacks})", [100 * statistics.mean(errors)], "%")
            )
    return figures
