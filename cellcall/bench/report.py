"""Write one benchmark's section of docs/benchmarks.md without touching the others."""

from __future__ import annotations

import re
from pathlib import Path

HEADER = "# Benchmarks\n\nFigures printed by `cellcall bench`; each section is rewritten by its own run.\n"


def write_section(path: Path, name: str, markdown: str) -> None:
    """Replace (or append) the block between `<!-- bench:NAME -->` markers."""
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    block = f"{start}\n{markdown.strip()}\n{end}"
    text = path.read_text(encoding="utf-8") if path.exists() else HEADER
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def publish(doc: Path, name: str, markdown: str, load: int, before: str, after: str) -> str:
    """A bench's markdown with the load it ran under, written to its section ("NAME-load-N" under load)."""
    busy = f"{load} spinning processes beside the calls; " if load else ""
    markdown += f"\n\n{busy}{before} at the start, {after} at the end."
    write_section(doc, f"{name}-load-{load}" if load else name, markdown)
    return markdown
