"""docs/benchmarks.md sections are rewritten in place, one benchmark at a time."""

from pathlib import Path

from cellcall.bench.report import write_section


def test_sections_are_replaced_independently(tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    write_section(doc, "engines", "| a | 1 |")
    write_section(doc, "calls", "| b | 2 |")
    write_section(doc, "engines", "| a | 3 |")
    text = doc.read_text()
    assert text.startswith("# Benchmarks")
    assert "| a | 3 |" in text and "| a | 1 |" not in text
    assert "| b | 2 |" in text
    assert text.count("<!-- bench:engines -->") == 1
