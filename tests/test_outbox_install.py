"""Templates ship inside the package: a real non-editable `pip install . --target` renders reports."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

RENDER = """
import cellcall, sys
from datetime import datetime, timezone
from cellcall.outbox import render_report
from cellcall.templating import render_template
from cellcall.record import CallRecord, CallStatus, Direction
assert cellcall.__file__.startswith(sys.argv[1]), cellcall.__file__
rec = CallRecord("c1", "dentist", "+14155550132", Direction.OUTBOUND, CallStatus.REFUSED, datetime(2026, 11, 24, tzinfo=timezone.utc))
print(render_report(rec).splitlines()[1])
print(render_template("goal.md.j2", name="x", number="+14155550132", persona="p", objective="o", opening=None).splitlines()[1])
"""


@pytest.mark.slow
def test_non_editable_install_finds_the_templates(tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(ROOT)],
        check=True, cwd=tmp_path, capture_output=True,
    )  # fmt: skip
    templates = sorted(p.name for p in (target / "cellcall" / "templates").glob("*.j2"))
    assert templates == ["goal.md.j2", "latency.md.j2", "report.md.j2", "transcript.md.j2", "transcript_lines.md.j2"]
    env = {**os.environ, "PYTHONPATH": str(target)}
    out = subprocess.run(
        [sys.executable, "-c", RENDER, str(target)], check=True, cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert out.stdout.splitlines() == ["call_id: c1", 'id: "x"']
