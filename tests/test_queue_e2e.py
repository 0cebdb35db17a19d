"""One real call through the fleet queue: pushed, claimed, placed by the real place_call (real STT,
LLM and TTS) on the emulated modem, its call.json and report.md published on the queue."""

from __future__ import annotations

import io
import threading
from pathlib import Path

import pytest
from fleet_support import Worker, report_rows, worker_settings
from nats_support import NatsServer
from runner_support import atd_count, goal_text, join_new_threads, wait_for

from cellcall.emulator.scenario import Scenario, ScenarioLine, Sound
from cellcall.queue import fleet
from cellcall.queue.connection import QueueClient
from cellcall.queue.messages import GoalMessage
from cellcall.watch.eventlog import EventLog
from cellcall.watch.runner import default_call_fns, settle_engines

RECEPTION = Scenario(
    name="reception",
    outcome="answer",
    answer_delay_s=0.5,
    hangup_when_done=True,
    hangup_after_s=15,
    lines=(ScenarioLine(sound=Sound(say="Hello, Riverside Dental, how can I help?"), wait_for_agent=True),),
)


@pytest.mark.slow
def test_a_real_call_through_the_queue_is_placed_once_and_its_report_published(tmp_path: Path) -> None:
    server = NatsServer(tmp_path / "jetstream").start()
    threads_before = set(threading.enumerate())
    try:
        queue = server.settings("dental-line", claim_ttl_s=10.0)
        place, _answer, engines = default_call_fns(worker_settings(tmp_path / "w", queue))
        settle_engines(engines, EventLog(io.StringIO()))  # models warm, as in a long-running watch
        with Worker(tmp_path / "w", queue, scenario=RECEPTION, place=place) as worker:
            pusher = QueueClient(server.settings("pusher"))
            try:
                goal = goal_text(objective="Ask whether the dentist has a free slot on Friday morning").encode()
                fleet.push(pusher, [GoalMessage("dentist.md", goal, "any")])
                wait_for(lambda: len(report_rows(pusher)) == 1, 180, "the real call's report on the queue")
                [row] = report_rows(pusher)
            finally:
                pusher.close()
            atds = atd_count(worker.emulator.at_log)
    finally:
        server.stop()
    join_new_threads(threads_before, 30.0)
    assert atds == 1
    assert row["status"] == "completed" and row["line"] == "dental-line", row["note"]
    assert isinstance(row["call"], dict) and row["call"]["goal"] == "dentist"
    assert "Riverside" in str(row["report_md"]) or "dentist" in str(row["report_md"]).lower()
    assert Path(str(row["outbox"])).is_dir(), "the call's folder (audio included) stays on the appliance"
