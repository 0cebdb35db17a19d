"""The calls benchmark's arithmetic: which barge-ins are false, and the report it writes."""

from __future__ import annotations

from pathlib import Path

from cellcall.bench.calls import ScenarioRun, false_barge_ins, render
from cellcall.bench.report import write_section
from cellcall.config import Settings
from cellcall.emulator.farend import FarEndMetrics, FarEndTurn
from cellcall.record import TurnLatency


def test_a_barge_in_is_false_only_when_the_far_end_was_silent() -> None:
    metrics = FarEndMetrics(turns=[FarEndTurn(0, "hello", 10.0, 12.0), FarEndTurn(1, "sorry", 20.0, 22.5)])
    assert false_barge_ins([10.5, 20.1, 22.7], metrics) == 0  # inside, or within the 0.3 s slack
    assert false_barge_ins([5.0, 15.0, 23.0], metrics) == 3


def test_report_has_every_figure_against_its_target(tmp_path: Path) -> None:
    runs = [
        ScenarioRun(
            "dentist",
            "completed",
            "remote hang-up",
            voice_to_voice=[800.0, 1000.0, 1200.0],
            latencies=[TurnLatency(1, stt_ms=300.0, first_audio_ms=700.0)],
            underruns=1,
        ),
        ScenarioRun("barge-in", "completed", "agent said goodbye", voice_to_voice=[900.0], barge_in_stop=[140.0], barge_ins=1),
        ScenarioRun("echo", "completed", "remote hang-up", voice_to_voice=[950.0], barge_ins=2, false_barge_ins=1),
    ]
    markdown = render(runs, cpu_cores=1.4, peak_mb=1500.0, settings=Settings())
    assert "| voice-to-voice p50 (far end's clock) | 950 ms (n=5) | <= 900 ms |" in markdown
    assert "| barge-in stop p50 (far end's clock) | 140 ms | <= 150 ms |" in markdown
    assert "1 in 1 calls (1 in all calls)" in markdown
    assert "| uplink underruns | 1 | 0 |" in markdown and "1500 MB" in markdown
    assert "| STT final | 300 | 300 | 300 |" in markdown
    doc = tmp_path / "benchmarks.md"
    write_section(doc, "calls", markdown)
    assert "<!-- bench:calls -->" in doc.read_text()
