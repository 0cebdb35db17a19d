"""`cellcall run` as a user runs it: a real process, the emulator, the JSON record and the exit code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_run_on_a_busy_line_prints_the_record_and_exits_4(tmp_path: Path) -> None:
    env = {**os.environ, "CELLCALL_PATHS_OUTBOX": str(tmp_path / "outbox"), "CELLCALL_LLM_BACKEND": "embedded"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "cellcall",
            "run",
            str(ROOT / "goals" / "examples" / "dentist.md"),
            "--line",
            "emulator",
            "--scenario",
            "busy",
            "--json",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 4, done.stderr[-2000:]
    record = json.loads(done.stdout)
    assert record["status"] == "busy" and record["number"] == "+14155550132"
    assert Path(record["report"]).is_file() and Path(record["report"]).is_relative_to(tmp_path / "outbox")
    assert record["far_end"]["agent_utterances"] == 0
