"""The runner's log: one line per event, untrusted text cannot forge lines, secrets redacted."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime

from cellcall.watch.eventlog import EventLog

FIXED = datetime(2026, 11, 26, 10, 0, 0, tzinfo=UTC)


def test_human_lines_escape_untrusted_text() -> None:
    out = io.StringIO()
    log = EventLog(out, clock=lambda: FIXED)
    log.emit("goal-invalid", file="evil\nFAKE archived goal=x.md", problems=2, skipped=None)
    log.emit("missed-call", number="+14155550132", reason="caller hung up")
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0] == '2026-11-26T10:00:00+00:00 goal-invalid file="evil\\nFAKE archived goal=x.md" problems=2'
    assert lines[1] == '2026-11-26T10:00:00+00:00 missed-call number=+14155550132 reason="caller hung up"'


def test_json_lines_parse_and_redact_secrets() -> None:
    out = io.StringIO()
    log = EventLog(out, json_lines=True, clock=lambda: FIXED)
    log.emit("dialling", goal="dentist", attempt=2, token="s3cret", note="a\u2028b")
    [line] = out.getvalue().splitlines()
    data = json.loads(line)
    assert data == {
        "time": "2026-11-26T10:00:00.000+00:00",
        "event": "dialling",
        "goal": "dentist",
        "attempt": 2,
        "token": "***",
        "note": "a\u2028b",
    }
    assert "s3cret" not in line
