"""Per-turn latency spans: marks on the monotonic clock -> TurnLatency, plus p50/p90/mean.

Every agent reply is timed from the end of the caller's speech (the moment a human starts to wait),
so the figures add up to what the caller feels. Marks are set from several threads; the first mark
of a name wins, so a late duplicate (e.g. a second sentence's audio) never moves a span.
"""

from __future__ import annotations

import math
import statistics
import threading
from collections.abc import Iterable
from dataclasses import dataclass, fields
from typing import Any

from cellcall.record import TurnLatency

# mark name -> TurnLatency field (all measured from the mark "speech_end")
MARKS = {
    "endpoint": "endpoint_ms",
    "stt_done": "stt_ms",
    "llm_first_token": "llm_first_token_ms",
    "first_sentence": "llm_first_sentence_ms",
    "tts_first_audio": "tts_first_audio_ms",
    "first_audio": "first_audio_ms",
}


class TurnTrace:
    """The marks of one agent reply; thread-safe."""

    def __init__(self, turn: int, speech_end: float) -> None:
        self.turn = turn
        self.speech_end = speech_end
        self.marks: dict[str, float] = {}
        self.barge_in_stop_ms: float | None = None
        self._lock = threading.Lock()

    def mark(self, name: str, at: float) -> None:
        """Record `name` at monotonic time `at` unless it is already set."""
        if name not in MARKS:
            raise ValueError(f"unknown trace mark {name!r}; known: {', '.join(MARKS)}")
        with self._lock:
            self.marks.setdefault(name, at)

    def has(self, name: str) -> bool:
        with self._lock:
            return name in self.marks

    def latency(self) -> TurnLatency:
        """The spans in ms from the end of caller speech; unreached marks stay None."""
        with self._lock:
            spans: dict[str, Any] = {
                field: round((self.marks[mark] - self.speech_end) * 1000.0, 1)
                for mark, field in MARKS.items()
                if mark in self.marks
            }
        return TurnLatency(turn=self.turn, barge_in_stop_ms=self.barge_in_stop_ms, **spans)


@dataclass(frozen=True)
class SpanStats:
    n: int
    p50: float
    p90: float
    mean: float


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("percentile of no values")
    pos = (len(ordered) - 1) * q / 100.0
    low, high = math.floor(pos), math.ceil(pos)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def span_stats(values: Iterable[float | None]) -> SpanStats | None:
    """p50/p90/mean over the measured values (None = span not reached), or None if there are none."""
    present = [float(v) for v in values if v is not None]
    if not present:
        return None
    return SpanStats(len(present), percentile(present, 50), percentile(present, 90), statistics.fmean(present))


def summarize(latencies: Iterable[TurnLatency]) -> dict[str, SpanStats]:
    """Stats per TurnLatency span (and barge-in stop), leaving out spans never measured."""
    rows = list(latencies)
    names = [f.name for f in fields(TurnLatency) if f.name not in ("turn", "served_by")]  # the numeric ones
    stats = {name: span_stats(getattr(row, name) for row in rows) for name in names}
    return {name: value for name, value in stats.items() if value is not None}
