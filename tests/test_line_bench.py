"""`cellcall bench line` measures real figures on the emulator and writes its section."""

from __future__ import annotations

from pathlib import Path

import pytest

from cellcall.bench.line import measure_call, run_line_bench


@pytest.mark.slow
def test_one_call_figures_are_measured_and_plausible() -> None:
    run = measure_call(1.5)
    print(f"\n{run}")
    if run.max_gap_ms < 40:  # the OS let the writer run: real time and no underrun
        assert run.uplink_bps == pytest.approx(16000, rel=0.02) and run.underruns == 0
    assert 0 < run.answer_ms < 5000 and 0 <= run.stop_ms < 300 and 0 <= run.error_ms < 1000


@pytest.mark.slow
def test_bench_writes_its_section(tmp_path: Path) -> None:
    out = tmp_path / "benchmarks.md"
    text = run_line_bench(calls=1, seconds=1.0, out=out)
    written = out.read_text()
    assert "<!-- bench:line -->" in written and "| uplink_bps |" in text and text.strip() in written
    with pytest.raises(ValueError, match="at least one call"):
        run_line_bench(calls=0, out=out)
