"""A whole outbound call over SIP with the real models: kamailio on loopback, a far-end UA speaking Piper audio.

The far end (tests/sip_farend.py, its own process) answers, plays a receptionist's line rendered
by the project's Piper voice, records what it hears over RTP, and hangs up (BYE) after a while.
The agent hears it through SipLine, answers with the real STT/LLM/TTS, and writes the reports.
"""

from __future__ import annotations

import dataclasses
import wave
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soxr
from sip_rig import USERS, FarEnd, Kamailio, free_udp_port
from speech import piper, rms, wer, whisper

from cellcall.call import place_call
from cellcall.config import Settings
from cellcall.engines.cache import Engines, shared_engines
from cellcall.goal import load_goal
from cellcall.line.sip import SipLine, sip_options
from cellcall.record import CallStatus, Speaker

DENTIST = Path(__file__).resolve().parents[1] / "goals" / "examples" / "dentist.md"
FAR = "+14155550132"
RECEPTIONIST = "Good morning, Bright Smile Dental, this is Maria speaking. How can I help you today?"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kamailio]:
    server = Kamailio(tmp_path_factory.mktemp("kamailio")).start()
    try:
        yield server
    finally:
        server.stop()


def sip_settings(rig: Kamailio, outbox: Path) -> Settings:
    settings = Settings()
    settings.line.kind = "sip"
    settings.sip.domain, settings.sip.username, settings.sip.password = rig.domain, "alice", USERS["alice"]
    settings.sip.listen = f"127.0.0.1:{free_udp_port()}"
    settings.sip.rtp_ports = "34000-34040"
    settings.llm.backend = "embedded"  # no Ollama server can exist here
    settings.llm.threads = settings.stt.threads = 1  # the shared 2-core machine (see test_call_e2e.py)
    settings.paths.outbox = str(outbox)
    return settings


def receptionist_wav(path: Path) -> Path:
    pcm = piper().render(RECEPTIONIST)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        wav.writeframes(b"\0" * 8000 + pcm)  # half a second of line noise floor first, as a person picks up
    return path


def test_outbound_call_over_sip_with_real_models_writes_the_reports(rig: Kamailio, tmp_path: Path) -> None:
    settings = sip_settings(rig, tmp_path / "outbox")
    engines: Engines = shared_engines(settings)
    engines.preload()
    engines.stt(), engines.tts(), engines.llm()
    recording = tmp_path / "far-end-heard.wav"
    far = FarEnd(
        rig,
        "--listen",
        str(free_udp_port()),
        "--rtp",
        "34100",
        "--play",
        str(receptionist_wav(tmp_path / "receptionist.wav")),
        "--record",
        str(recording),
        "--hangup-after",
        "22",
    )
    try:
        far.wait_for("registered", 15)
        line = SipLine(sip_options(settings))
        line.open()
        try:
            goal = dataclasses.replace(load_goal(DENTIST), number=FAR)
            result = place_call(goal, settings, line, engines=engines)
        finally:
            line.close()
        far.wait_for("done", 10)
    finally:
        far.stop()
    record = result.record
    turns = "\n".join(f"  {t.speaker.value}: {t.text}" for t in record.turns)
    print(f"\nSIP call: {record.status.value} ({record.hangup_reason})\n{turns}")
    assert record.status is CallStatus.COMPLETED and record.hangup_reason == "remote hang-up"
    for name in ("report.md", "transcript.md", "call.json", "audio.wav"):
        assert (result.folder / name).is_file(), name
    caller = [t.text for t in record.turns if t.speaker is Speaker.CALLER]
    agent = [t.text for t in record.turns if t.speaker is Speaker.AGENT]
    assert caller and wer(RECEPTIONIST, caller[0]) <= 0.35, caller
    assert agent, "the agent never spoke"
    with wave.open(str(recording), "rb") as wav:
        heard = wav.readframes(wav.getnframes())
    assert rms(heard) > 300  # the agent's voice reached the far end over RTP
    stt = whisper()
    samples = np.frombuffer(heard[: 8000 * 2 * 12], dtype="<i2")  # the first 12 s: the agent's first turn
    heard_text = stt.transcribe(soxr.resample(samples, 8000, stt.sample_rate).astype("<i2").tobytes()).text
    print(f"far end heard: {heard_text!r}")
    assert wer(agent[0], heard_text) <= 0.6, (agent[0], heard_text)  # what the agent said is what went out
