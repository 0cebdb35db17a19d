"""`bench calls --line sip` and `eval --line sip` with the real models: the far end's scenario over SIP.

Each call is a real SipLine dialling the far end's baresip user agent (its own process) on loopback;
the far end is the emulator's scripted FarEnd (bench) or the listening persona far end (eval), fed
the agent's RTP audio and playing its lines back over RTP. Kept to the shortest scenario and a
two-turn persona, so the pair runs in about a minute on a quiet machine.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from cellcall.bench.calls import DEFAULT_GOAL, run_scenario
from cellcall.config import Settings
from cellcall.engines.cache import Engines, shared_engines
from cellcall.eval.runner import run_eval
from cellcall.goal import load_goal

pytestmark = pytest.mark.slow

SHORT_PERSONA = """
name = "receptionist-short"
description = "Asks the patient's name, then says goodbye: the shortest listening call"
goal = "goals/examples/dentist.md"
start = "greet"

[success]
reached = "bye"

[states.greet]
say = "Bright Smile Dental, this is Maria. How can I help you?"
reask = "Sorry, how can I help you today?"
[[states.greet.on]]
match = '\\b(appointment|cleaning|reschedul\\w*|move|book\\w*|change|friday)\\b'
goto = "ask_name"

[states.ask_name]
say = "Sure. Can I have the patient's full name, please?"
reask = "Sorry, what is the patient's full name?"
[[states.ask_name.on]]
match = '(?P<name>\\bsam\\w*\\s+taylor\\b|\\btaylor\\b)'
goto = "bye"

[states.bye]
say = "Thank you, I will call you back. Goodbye."
hangup = true
"""


@pytest.fixture(scope="module")
def sip_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    settings = Settings()
    settings.llm.backend = "embedded"  # no Ollama server can exist here
    settings.llm.threads = settings.stt.threads = 1  # the shared 2-core machine (see test_eval_e2e.py)
    settings.paths.outbox = str(tmp_path_factory.mktemp("outbox"))
    return settings


@pytest.fixture(scope="module")
def engines(sip_settings: Settings) -> Iterator[Engines]:
    loaded = shared_engines(sip_settings)
    loaded.preload()
    loaded.stt(), loaded.tts(), loaded.llm()
    yield loaded


def test_bench_scenario_over_sip_measures_voice_to_voice_on_the_far_ends_clock(sip_settings: Settings, engines: Engines) -> None:
    run = run_scenario(DEFAULT_GOAL, sip_settings, "hangup-mid-sentence", "sip")
    print(f"{run}; load average {os.getloadavg()}")
    assert run.heard_replies >= 1  # the agent's reply reached the far end over RTP
    assert len(run.voice_to_voice) == 1 and 0 < run.voice_to_voice[0] < 20000
    assert run.status == "completed", (run.status, run.reason)
    assert run.latencies  # the agent heard the far end's line over RTP and answered it
    # The far end waits for the agent to go quiet before each line, so nothing is spoken over it: a
    # barge-in here means the line reported agent audio queued while only silence was being sent.
    assert run.barge_ins == 0


def test_eval_persona_over_sip_hears_the_agent_and_scores_the_call(
    sip_settings: Settings, engines: Engines, tmp_path: Path
) -> None:
    persona = tmp_path / "receptionist-short.toml"
    persona.write_text(SHORT_PERSONA, encoding="utf-8")
    result = run_eval(DEFAULT_GOAL, str(persona), sip_settings, runs=1, root=tmp_path, line_kind="sip")
    run = result.runs[0]
    print(json.dumps(run.to_json(), indent=1), f"load average {os.getloadavg()}")
    # The persona transcribed the agent's fixed opening from RTP audio and moved on to ask the name.
    assert run.states[:2] == ["greet", "ask_name"], run.states
    assert run.agent_turns[0] == load_goal(DEFAULT_GOAL).opening
    assert run.status == "completed" and run.voice_to_voice_ms and all(v > 0 for v in run.voice_to_voice_ms)
    call = json.loads(next(Path(run.folder).glob("call.json")).read_text())
    assert [t["speaker"] for t in call["turns"]].count("caller") >= 1  # the agent heard the persona over SIP
