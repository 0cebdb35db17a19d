"""Per-turn spans and their statistics."""

from __future__ import annotations

import threading

import pytest

from cellcall.record import TurnLatency
from cellcall.trace import TurnTrace, percentile, span_stats, summarize


def test_marks_become_spans_from_end_of_speech_and_first_mark_wins() -> None:
    trace = TurnTrace(turn=3, speech_end=100.0)
    trace.mark("endpoint", 100.5)
    trace.mark("stt_done", 100.62)
    trace.mark("first_audio", 101.0)
    trace.mark("first_audio", 102.0)  # a later sentence's audio does not move the span
    lat = trace.latency()
    assert lat.turn == 3
    assert (lat.endpoint_ms, lat.stt_ms, lat.first_audio_ms) == (500.0, 620.0, 1000.0)
    assert lat.llm_first_token_ms is None and lat.voice_to_voice_ms is None


def test_unknown_mark_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown trace mark 'sst_done'"):
        TurnTrace(1, 0.0).mark("sst_done", 1.0)


def test_marks_from_many_threads_keep_the_earliest_set() -> None:
    trace = TurnTrace(1, 0.0)
    barrier = threading.Barrier(8)

    def mark(i: int) -> None:
        barrier.wait()
        trace.mark("tts_first_audio", 1.0 + i)

    threads = [threading.Thread(target=mark, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert trace.has("tts_first_audio") and len(trace.marks) == 1


def test_percentiles_interpolate() -> None:
    values = [100.0, 200.0, 300.0, 400.0, 500.0]
    assert percentile(values, 50) == 300.0
    assert percentile(values, 90) == pytest.approx(460.0)
    assert percentile([7.0], 90) == 7.0
    with pytest.raises(ValueError):
        percentile([], 50)


def test_summary_skips_missing_spans() -> None:
    rows = [TurnLatency(turn=i, first_audio_ms=float(v), stt_ms=None) for i, v in enumerate([800, 600, 1000])]
    rows.append(TurnLatency(turn=9, first_audio_ms=None, barge_in_stop_ms=90.0))
    stats = summarize(rows)
    assert set(stats) == {"first_audio_ms", "barge_in_stop_ms"}
    assert stats["first_audio_ms"].n == 3 and stats["first_audio_ms"].p50 == 800.0
    assert stats["first_audio_ms"].mean == pytest.approx(800.0)
    assert span_stats([None, None]) is None
