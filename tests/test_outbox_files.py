"""The call folder on disk: names, turn-by-turn appends, crash safety, idempotent finalize, audio, lookups."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import wave
from datetime import UTC, datetime, timedelta
from pathlib import Path

import frontmatter
import numpy as np
import pytest

from cellcall.outbox import CallLookupError, CallOutbox, find_call, list_calls, read_record, render_report
from cellcall.record import CallRecord, CallStatus, Direction, Evidence, Fact, ObjectiveMet, Speaker, Turn, TurnLatency

START = datetime(2026, 11, 24, 19, 1, 2, tzinfo=UTC)


def record(goal: str = "dentist", call_id: str = "call-1", started: datetime = START, **fields: object) -> CallRecord:
    return CallRecord(
        call_id=call_id,
        goal=goal,
        number="+14155550132",
        direction=Direction.OUTBOUND,
        status=CallStatus.COMPLETED,
        started=started,
        **fields,
    )  # type: ignore[arg-type]


def test_folder_is_sortable_by_time_and_unique(tmp_path: Path) -> None:
    first = CallOutbox.create(tmp_path, record())
    second = CallOutbox.create(tmp_path, record(call_id="call-2"))
    assert first.path == tmp_path / "2026-11-24" / "190102-dentist"
    assert second.path == tmp_path / "2026-11-24" / "190102-dentist-2"


@pytest.mark.parametrize("goal", ["../../../etc/passwd", "/abs/path", "..", "con:", "a/../../b", "\x00evil", "ünïcödé goal!", ""])
def test_goal_names_cannot_escape_the_outbox(tmp_path: Path, goal: str) -> None:
    outbox = CallOutbox.create(tmp_path / "outbox", record(goal=goal))
    assert outbox.path.resolve().parent.parent == (tmp_path / "outbox").resolve()
    assert outbox.path.name.startswith("190102-") and "/" not in outbox.path.name and ".." not in outbox.path.name


def test_turns_and_latency_survive_a_crash(tmp_path: Path) -> None:
    """A child process appends two turns and dies without finalize; the lines are on disk."""
    script = f"""
import os
from pathlib import Path
from datetime import datetime, timezone
from cellcall.outbox import CallOutbox
from cellcall.record import CallRecord, CallStatus, Direction, Speaker, Turn, TurnLatency
rec = CallRecord("c1", "dentist", "+14155550132", Direction.OUTBOUND, CallStatus.COMPLETED, datetime(2026, 11, 24, 19, 1, 2, tzinfo=timezone.utc))
box = CallOutbox.create(Path({str(tmp_path)!r}), rec)
box.append_turn(Turn(1, Speaker.AGENT, "Hi, this is Alex.", 0.5))
box.append_turn(Turn(2, Speaker.CALLER, "Who? <b>", 2.0))
box.append_latency(TurnLatency(2, stt_ms=600.0, first_audio_ms=1200.0))
os._exit(9)
"""
    result = subprocess.run([sys.executable, "-c", script], check=False)
    assert result.returncode == 9
    folder = tmp_path / "2026-11-24" / "190102-dentist"
    transcript = (folder / "transcript.md").read_text()
    assert "**[00:00.5] Agent:** Hi, this is Alex." in transcript and "**[00:02.0] Caller:** Who? &lt;b&gt;" in transcript
    assert json.loads((folder / "latency.jsonl").read_text())["first_audio_ms"] == 1200.0
    crashed = list_calls(tmp_path)[0]
    assert crashed.status is CallStatus.INTERRUPTED and crashed.call_id == "c1"


def test_appended_transcript_matches_the_final_one(tmp_path: Path) -> None:
    turns = [
        Turn(0, Speaker.SYSTEM, "answered", 0.0),
        Turn(1, Speaker.AGENT, "Hello.", 0.3),
        Turn(2, Speaker.CALLER, "Hi # there", 1.9),
    ]
    rec = record(turns=turns)
    box = CallOutbox.create(tmp_path, rec)
    for turn in turns:
        box.append_turn(turn)
    appended = (box.path / "transcript.md").read_text()
    box.finalize(rec)
    assert (box.path / "transcript.md").read_text() == appended


def test_finalize_is_idempotent_and_complete(tmp_path: Path) -> None:
    rec = record(
        objective_met=ObjectiveMet.YES,
        summary="Moved to Friday.",
        turns=[Turn(1, Speaker.AGENT, "Hi", 0.2)],
        latency=[TurnLatency(1, first_audio_ms=900.0)],
    )
    box = CallOutbox.create(tmp_path, rec)
    box.write_audio(b"\x01\x00" * 8000, b"\x02\x00" * 4000, 8000)
    report = box.finalize(rec)
    snapshot = {p.name: p.read_bytes() for p in box.path.iterdir()}
    assert report == box.path / "report.md"
    assert sorted(snapshot) == ["audio.wav", "call.json", "latency.jsonl", "latency.md", "report.md", "transcript.md"]
    assert box.finalize(rec) == report
    assert {p.name: p.read_bytes() for p in box.path.iterdir()} == snapshot
    assert "- [Audio](audio.wav)" in report.read_text()
    assert frontmatter.loads(report.read_text()).metadata["objective_met"] == "yes"


def test_call_json_round_trips_the_record(tmp_path: Path) -> None:
    rec = record(
        objective="Move it",
        objective_evidence=[Evidence(2, "You're booked for Friday.")],
        facts=[Fact("Friday", 2, "You're booked for Friday."), Fact("old style, no quote")],
        next_steps=["calendar"],
        tags=["demo"],
        error=None,
        turns=[Turn(1, Speaker.AGENT, "Hi", 0.2, barged_in=True, spoken_text="H")],
        latency=[TurnLatency(1, stt_ms=500.0, barge_in_stop_ms=90.0)],
        extra={"scenario": "dentist"},
    )
    box = CallOutbox.create(tmp_path, rec)
    box.finalize(rec)
    assert read_record(box.path / "call.json") == rec


def test_read_record_ignores_unknown_fields(tmp_path: Path) -> None:
    data = record().to_json() | {"added_later": 1}
    data["turns"] = [{"index": 0, "speaker": "caller", "text": "x", "at_s": 1.0, "new_field": True}]
    (tmp_path / "call.json").write_text(json.dumps(data))
    assert read_record(tmp_path / "call.json").turns[0].text == "x"


def test_an_old_call_json_with_plain_string_facts_and_no_evidence_still_reads(tmp_path: Path) -> None:
    data = record().to_json()
    data["facts"] = ["Friday 9 am is open"]
    del data["objective_evidence"]
    (tmp_path / "call.json").write_text(json.dumps(data))
    old = read_record(tmp_path / "call.json")
    assert old.facts == [Fact("Friday 9 am is open", None, "")] and old.objective_evidence == []
    assert "- Friday 9 am is open\n" in render_report(old)


def test_audio_has_caller_left_agent_right_padded(tmp_path: Path) -> None:
    box = CallOutbox.create(tmp_path, record())
    caller = np.arange(1, 801, dtype="<i2").tobytes()
    agent = np.full(400, -7, dtype="<i2").tobytes()
    box.write_audio(caller, agent, 8000)
    with wave.open(str(box.path / "audio.wav")) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate(), wav.getnframes()) == (2, 2, 8000, 800)
        stereo = np.frombuffer(wav.readframes(800), dtype="<i2").reshape(-1, 2)
    assert stereo[:, 0].tolist() == list(range(1, 801))
    assert stereo[:400, 1].tolist() == [-7] * 400 and stereo[400:, 1].tolist() == [0] * 400
    with pytest.raises(ValueError, match="even number of bytes"):
        box.write_audio(b"\x00", b"", 8000)
    with pytest.raises(ValueError, match="sample_rate"):
        box.write_audio(b"", b"", 0)


def test_list_calls_newest_first_with_limit(tmp_path: Path) -> None:
    for hours in (0, 30, 2):
        rec = record(goal=f"g{hours}", call_id=f"id-{hours}", started=START + timedelta(hours=hours))
        CallOutbox.create(tmp_path, rec).finalize(rec)
    (tmp_path / "2026-11-30" / "000000-broken").mkdir(parents=True)
    (tmp_path / "2026-11-30" / "000000-broken" / "call.json").write_text("{not json")
    calls = list_calls(tmp_path)
    assert [c.call_id for c in calls] == ["id-30", "id-2", "id-0"]
    assert [c.call_id for c in list_calls(tmp_path, limit=1)] == ["id-30"]
    assert calls[0].extra["folder"].endswith("2026-11-26/010102-g30")
    assert list_calls(tmp_path / "absent") == []


def test_find_call_by_path_name_id_and_prefix(tmp_path: Path) -> None:
    a = CallOutbox.create(tmp_path, record(call_id="20261124-190102-aa11"))
    b = CallOutbox.create(tmp_path, record(call_id="20261124-190102-bb22"))
    assert find_call(tmp_path, str(a.path)) == a.path
    assert find_call(tmp_path, str(a.path / "call.json")) == a.path
    assert find_call(tmp_path, "190102-dentist") == a.path  # exact folder name beats the -2 prefix
    assert find_call(tmp_path, "20261124-190102-bb22") == b.path
    assert find_call(tmp_path, "20261124-190102-b") == b.path
    with pytest.raises(CallLookupError, match="matches 2 calls"):
        find_call(tmp_path, "20261124-190102")
    with pytest.raises(CallLookupError, match="no call matches"):
        find_call(tmp_path, "nothing-like-it")
    with pytest.raises(CallLookupError, match="not a call folder"):
        find_call(tmp_path, str(tmp_path))


def test_refused_call_folder_with_no_turns(tmp_path: Path) -> None:
    rec = dataclasses.replace(record(), number="+1911", status=CallStatus.REFUSED, hangup_reason="policy: emergency number")
    box = CallOutbox.create(tmp_path, rec)
    report = box.finalize(rec)
    assert frontmatter.loads(report.read_text()).metadata["status"] == "refused"
    assert (box.path / "latency.jsonl").read_text() == ""
