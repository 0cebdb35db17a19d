"""One real call through `cellcall serve`: place_call with the real models (faster-whisper, piper, the
embedded llama.cpp model) on the emulated modem, followed on the event stream from queued to ended,
then its metrics and its audio read back through the API."""

from __future__ import annotations

import io
import threading
from pathlib import Path

import pytest
from runner_support import goal_text, join_new_threads, wait_for
from serve_support import serve_settings, served
from test_serve_events import EventReader

from cellcall.emulator.scenario import Scenario, ScenarioLine, Sound
from cellcall.watch.eventlog import EventLog
from cellcall.watch.runner import default_call_fns, settle_engines

OFFICE = Scenario(
    name="office",
    answer_delay_s=0.5,
    hangup_when_done=True,
    hangup_after_s=25,
    lines=(ScenarioLine(sound=Sound(say="Hello, Doctor Okafor's office, how can I help?"), wait_for_agent=True),),
)


@pytest.mark.slow
def test_a_real_call_streams_its_words_and_latency_and_serves_its_audio(tmp_path: Path) -> None:
    settings = serve_settings(tmp_path)
    settings.llm.backend = "embedded"
    threads_before = set(threading.enumerate())
    place, _, engines = default_call_fns(settings)
    settle_engines(engines, EventLog(io.StringIO()))  # models warm, as in a long-running serve
    with served(settings, tmp_path / "goals", place, scenario=OFFICE) as (api, emulator):
        reader = EventReader(api.url)
        assert reader.connected.wait(5)
        call_id = api.post_goal(goal_text(objective="Ask whether Friday morning is free for a cleaning")).json()["call_id"]
        wait_for(lambda: reader.named("ended", call_id), 150, "the call to end")
        reader.close()
        metrics = api.client.get(f"/v1/calls/{call_id}/metrics").json()
        audio = api.client.get(f"/v1/calls/{call_id}/audio")
        view = api.call(call_id)
    join_new_threads(threads_before, 30.0)
    names = [n for n, d in reader.events if d.get("call_id") == call_id]
    assert names.index("queued") < names.index("dialling") < names.index("answered") < names.index("turn") < names.index("ended")
    turns = reader.named("turn", call_id)
    assert any(t["speaker"] == "agent" and t["text"] for t in turns)
    assert any(t["speaker"] == "caller" and t["text"] for t in turns)
    assert [t["index"] for t in turns] == sorted(t["index"] for t in turns)
    latencies = reader.named("latency", call_id)
    assert latencies and all(row["first_audio_ms"] is None or row["first_audio_ms"] > 0 for row in latencies)
    assert {row["turn"] for row in latencies} <= {row["turn"] for row in metrics["rows"]}
    assert view["record"]["status"] == reader.named("ended", call_id)[0]["status"]
    assert audio.status_code == 200 and audio.content[:4] == b"RIFF" and audio.headers["content-type"] == "audio/wav"
