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
