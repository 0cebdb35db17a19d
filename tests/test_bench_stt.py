"""`cellcall bench engines`' STT paths: decode time and word error per path, on the TTS's own speech."""

from __future__ import annotations

import pytest
from speech import piper

from cellcall.bench import stt as bench_stt
from cellcall.config import Settings


@pytest.mark.slow
def test_each_path_reports_decode_ms_and_word_error(monkeypatch) -> None:
    monkeypatch.setattr(bench_stt, "PATHS", [("base", 8.0)])
    monkeypatch.setattr(bench_stt, "THREADS", [1])
    monkeypatch.setattr(bench_stt, "PHRASES", bench_stt.PHRASES[:3])
    decode, error = bench_stt.measure_paths(Settings(), piper(), runs=1)
    assert decode.name.startswith("STT decode, base, window 8 s, 1 thread (3 clips of")
    assert len(decode.values) == 3 and all(0 < ms < 10_000 for ms in decode.values)
    assert error.name.startswith("STT word error, base, window 8 s, 1 thread") and "fallbacks" in error.name
    assert error.values[0] < 30.0  # percent; clear synthetic speech, so a broken path shows at once
