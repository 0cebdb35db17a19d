"""Whole calls on the emulated SIM7600 through the real driver, with the real models, in real time.

The far end (the emulator) speaks its scenario with the Piper voice and measures the agent from its
own clock; the agent hears it through the real serial ports. Engines load once for the session.
"""

from __future__ import annotations

import dataclasses
import threading
import wave
from pathlib import Path

import pytest
from speech import wer

from cellcall.bench.calls import false_barge_ins
from cellcall.call import CallResult, answer_call, exit_code, place_call
from cellcall.config import Settings
from cellcall.emulator.farend import FarEndMetrics
from cellcall.emulator.line import emulated_line
from cellcall.emulator.modem import Faults, ModemEmulator
from cellcall.engines.cache import Engines, shared_engines
from cellcall.goal import Goal, load_goal
from cellcall.record import CallStatus, Direction, Speaker
from cellcall.voice.audio import resample

ROOT = Path(__file__).resolve().parents[1]
DENTIST = ROOT / "goals" / "examples" / "dentist.md"
SCENARIOS = Path(__file__).parent / "data" / "scenarios"
OUTBOX_FILES = ("report.md", "transcript.md", "latency.md", "call.json", "latency.jsonl", "audio.wav")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def call_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    settings = Settings()
    settings.llm.backend = "embedded"  # no Ollama server can exist here; auto would only add a probe
    settings.llm.threads = 1  # two llama.cpp (or ctranslate2) threads spin-wait on each other on this
    settings.stt.threads = 1  # shared 2-core machine: one thread each is several times faster under load
    settings.paths.outbox = str(tmp_path_factory.mktemp("outbox"))
    return settings


@pytest.fixture(scope="session")
def engines(call_settings: Settings) -> Engines:
    loaded = shared_engines(call_settings)
    loaded.preload()
    loaded.stt(), loaded.tts(), loaded.llm()
    return loaded


def dial(
    settings: Settings,
    engines: Engines,
    scenario: str,
    goal: Goal | None = None,
    faults: Faults | None = None,
    stop: threading.Event | None = None,
) -> tuple[CallResult, ModemEmulator]:
    goal = goal or load_goal(DENTIST)
    with emulated_line(settings, scenario, engines, faults) as (line, emulator):
        result = place_call(goal, settings, line, engines=engines, stop=stop)
        emulator.done.wait(2.0)
    turns = "\n".join(f"  {t.speaker.value}: {t.text}" + (" [cut]" if t.barged_in else "") for t in result.record.turns)
    print(f"\n{scenario}: {result.record.status.value} ({result.record.hangup_reason})\n{turns}")
    print(
        f"far end: voice-to-voice {[round(v) for v in emulator.metrics.voice_to_voice_ms]} ms, "
        f"underruns {emulator.metrics.uplink_underruns}"
    )
    return result, emulator


def with_hangup(goal: Goal, **rules: float) -> Goal:
    return dataclasses.replace(goal, hangup=dataclasses.replace(goal.hangup, **rules))


def agent_said(engines: Engines, metrics: FarEndMetrics, index: int) -> str:
    """What the engines' STT hears in one agent utterance; the STT takes 16 kHz, the uplink is the line's rate."""
    stt = engines.stt()
    return stt.transcribe(resample(metrics.agent_utterances[index].pcm, metrics.sample_rate, stt.sample_rate)).text


def caller_text(result: CallResult) -> str:
    return " ".join(t.text for t in result.record.turns if t.speaker is Speaker.CALLER)


def test_answered_dialogue_with_echo_writes_every_report_hears_the_far_end_and_never_cuts_itself_off(
    call_settings: Settings, engines: Engines
) -> None:
    """The demo's dentist call on a line that echoes the agent back (-18 dB, 60 ms): the `echo` scenario."""
    result, emulator = dial(call_settings, engines, "echo")
    record, metrics = result.record, emulator.metrics
    onsets = result.loop.barge_ins
    print(
        f"barge-ins at {[round(at - metrics.answered_at, 2) for at in onsets]} s; far end spoke "
        f"{[(round(t.started_at - metrics.answered_at, 2), round(t.ended_at - metrics.answered_at, 2)) for t in metrics.turns]}"
    )
    assert false_barge_ins(onsets, metrics) == 0  # only the far end's own words may cut the agent off
    assert record.status is CallStatus.COMPLETED and exit_code(record.status) == 0
    for name in OUTBOX_FILES:
        assert (result.folder / name).is_file(), name
    with wave.open(str(result.folder / "audio.wav")) as audio:
        assert audio.getnchannels() == 2 and audio.getnframes() > 8000 * 10
    spoken = [turn.text for turn in metrics.turns]
    heard = [turn.text for turn in record.turns if turn.speaker is Speaker.CALLER]
    assert len(heard) >= 3, "the agent heard too little of the far end"
    for text in heard:  # each caller turn is one of the far end's lines (or several run together)
        candidates = [*spoken, *(" ".join(pair) for pair in zip(spoken, spoken[1:], strict=False))]
        error = min(wer(line, text) for line in candidates)
        print(f"WER {error:.2f}: {text}")
        assert error <= 0.35, text
    assert metrics.heard_agent_utterances >= 3
    opening = agent_said(engines, metrics, 0)
    assert wer("Hi, this is Alex calling for Sam Taylor about an appointment.", opening) <= 0.35
    assert metrics.voice_to_voice_ms and all(v > 0 for v in metrics.voice_to_voice_ms)
    assert len(record.latency) >= 2 and any(lat.first_audio_ms for lat in record.latency)
    assert record.summary and (result.folder / "report.md").read_text().startswith("---")


def test_barge_in_stops_playback_and_marks_the_cut_sentence(call_settings: Settings, engines: Engines) -> None:
    result, emulator = dial(call_settings, engines, "barge-in")
    cut = [turn for turn in result.record.turns if turn.barged_in]
    assert cut, "no agent turn was marked as cut"
    assert cut[0].spoken_text and len(cut[0].spoken_text) <= len(cut[0].text)
    stops = [t.barge_in_stop_ms for t in emulator.metrics.turns if t.barge_in_stop_ms is not None]
    print(f"barge-in stop (far end's clock): {stops} ms")
    assert stops and stops[0] < 400
    assert any(lat.barge_in_stop_ms for lat in result.record.latency)


def test_backchannels_over_the_agent_do_not_stop_what_it_says(call_settings: Settings, engines: Engines) -> None:
    """The receptionist says "mm-hm" and "okay" over the agent's replies: it pauses, then goes on."""
    result, emulator = dial(call_settings, engines, "backchannel")
    record = result.record
    lines = [t for t in emulator.metrics.turns if t.backchannel]
    went_on = [t.agent_went_on_ms for t in lines]
    print(f"backchannels: {len(lines)}, agent went on after (ms): {went_on}, agent's count {record.extra['backchannels']}")
    assert len(lines) == 2 and record.extra["backchannels"] >= 1
    assert any(ms is not None and ms < 1500 for ms in went_on)  # it went on soon after the mm-hm
    assert record.status is CallStatus.COMPLETED


def test_far_end_hanging_up_mid_sentence_keeps_what_it_said(call_settings: Settings, engines: Engines) -> None:
    result, _ = dial(call_settings, engines, "hangup-mid-sentence")
    assert result.record.status is CallStatus.COMPLETED and result.record.hangup_reason == "remote hang-up"
    assert "sorry" in caller_text(result).lower()
    assert (result.folder / "report.md").is_file()


@pytest.mark.parametrize(("scenario", "status", "code"), [("busy", CallStatus.BUSY, 4), ("no-answer", CallStatus.NO_ANSWER, 3)])
def test_unanswered_calls_are_reported(
    call_settings: Settings, engines: Engines, scenario: str, status: CallStatus, code: int
) -> None:
    result, emulator = dial(call_settings, engines, scenario)
    assert result.record.status is status and exit_code(status) == code
    assert result.record.turns == [] and (result.folder / "report.md").is_file()
    assert any(line.startswith("ATD+14155550132") for _, way, line in emulator.at_log if way == "rx")


def test_silence_timeout_hangs_up(call_settings: Settings, engines: Engines) -> None:
    goal = with_hangup(load_goal(DENTIST), silence_timeout_s=3.0)
    result, emulator = dial(call_settings, engines, "silent", goal)
    assert result.record.hangup_reason == "silence timeout"
    assert emulator.metrics.ended_by == "host"
    assert emulator.metrics.heard_agent_utterances == 1  # the opening, after the post-dial wait
    assert 4.0 + 3.0 <= result.record.duration_s < 16.0  # post-dial wait, opening, then 3 s of silence


def test_max_duration_hangs_up(call_settings: Settings, engines: Engines) -> None:
    goal = with_hangup(load_goal(DENTIST), max_duration_s=7.0)
    result, emulator = dial(call_settings, engines, "dentist", goal)
    assert result.record.hangup_reason == "max duration" and result.record.status is CallStatus.COMPLETED
    assert 7.0 <= result.record.duration_s < 9.0
    assert emulator.metrics.ended_by == "host"


def test_agent_hangs_up_after_its_goodbye_has_played(call_settings: Settings, engines: Engines) -> None:
    result, emulator = dial(call_settings, engines, str(SCENARIOS / "goodbye.toml"))
    record = result.record
    assert record.hangup_reason.startswith("agent hung up"), record.turns
    assert emulator.metrics.ended_by == "host"
    last = emulator.metrics.utterances[-1]
    assert emulator.metrics.ended_at >= last.end  # the goodbye was heard to its end before AT+CHUP


def test_voicemail_gets_the_goal_message_then_a_hang_up(call_settings: Settings, engines: Engines) -> None:
    result, emulator = dial(call_settings, engines, "voicemail")
    assert result.record.hangup_reason == "voicemail: message left" and result.record.answered_by == "voicemail"
    beep = next(turn for turn in emulator.metrics.turns if turn.text.startswith("[tone"))
    message = emulator.metrics.utterances[-1]
    assert message.start >= beep.ended_at  # not a word over the greeting or the beep
    print(f"beep end -> message first audio: {(message.start - beep.ended_at) * 1000:.0f} ms")
    said = agent_said(engines, emulator.metrics, -1)
    assert wer("Please call Sam back at 555 0100.", said) <= 0.5, said


def test_modem_vanishing_mid_call_fails_but_keeps_the_transcript(call_settings: Settings, engines: Engines) -> None:
    result, _ = dial(call_settings, engines, "dentist", faults=Faults(vanish_after_s=7.0))
    record = result.record
    assert record.status is CallStatus.FAILED and exit_code(record.status) == 1
    assert record.error and "vanish" in record.hangup_reason
    assert any(turn.speaker is Speaker.CALLER for turn in record.turns)
    transcript = (result.folder / "transcript.md").read_text()
    assert "Bright" in transcript or "Smile" in transcript or "Maria" in transcript
    assert (result.folder / "report.md").is_file()


def test_stop_event_hangs_up_and_reports_interrupted(call_settings: Settings, engines: Engines) -> None:
    stop = threading.Event()
    threading.Timer(5.0, stop.set).start()
    result, emulator = dial(call_settings, engines, "dentist", stop=stop)
    assert result.record.status is CallStatus.INTERRUPTED and exit_code(CallStatus.INTERRUPTED) == 130
    assert emulator.metrics.ended_by == "host"
    assert (result.folder / "report.md").is_file()


def test_inbound_call_is_answered_with_the_agent_speaking_first(call_settings: Settings, engines: Engines) -> None:
    goal = load_goal(ROOT / "goals" / "examples" / "inbound.md")
    with emulated_line(call_settings, str(SCENARIOS / "inbound-caller.toml"), engines) as (line, emulator):
        emulator.incoming_call("+14155550199")
        ringing = None
        while ringing is None or ringing.number is None:  # the number arrives with +CLIP after RING
            ringing = line.next_event(10.0)
            assert ringing is not None, "the line never reported the incoming call"
        result = answer_call(goal, call_settings, line, ringing.number, engines=engines)
        emulator.done.wait(2.0)
    record, metrics = result.record, emulator.metrics
    print(f"inbound: {record.status.value} ({record.hangup_reason}); turns {[t.text for t in record.turns]}")
    assert record.direction is Direction.INBOUND and record.number == "+14155550199"
    assert record.status is CallStatus.COMPLETED
    assert metrics.utterances and metrics.turns and metrics.utterances[0].start < metrics.turns[0].started_at
    greeting = agent_said(engines, metrics, 0)
    assert wer(goal.opening, greeting) <= 0.35, greeting
    assert wer(metrics.turns[0].text, caller_text(result)) <= 0.35
