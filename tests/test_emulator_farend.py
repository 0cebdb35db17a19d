"""The far end: utterance tracking and turn metrics from known patterns, and scenarios played end to end
against a tiny hand-written AT + audio client (not the project's driver)."""

from __future__ import annotations

import time

import numpy as np
import pytest
from emulator_client import AtClient, AudioClient, loud_spans, tone

from cellcall.emulator.farend import FarEndTurn, Segment, SpeechTracker, score_turns
from cellcall.emulator.modem import ModemEmulator
from cellcall.emulator.scenario import Scenario, ScenarioLine, Sound, load_scenario
from cellcall.emulator.sounds import tone_pcm

FRAME = 320
LOUD = tone(20)
QUIET = bytes(FRAME)


def feed(tracker: SpeechTracker, pattern: str, start: float = 10.0) -> None:
    """'L' loud frame, '.' quiet frame, 's' quiet frame with a shortfall (underrun), 'S' loud + shortfall."""
    for i, mark in enumerate(pattern):
        tracker.feed(start + i * 0.02, LOUD if mark in "LS" else QUIET, short=mark in "sS")


def test_tracker_splits_utterances_on_600_ms_quiet() -> None:
    tracker = SpeechTracker()
    feed(tracker, "..." + "L" * 10 + "." * 20 + "L" * 5 + "." * 40 + "L" * 3 + "." * 30 + "L" + "." * 40)
    # 20 quiet frames (400 ms) do not split; 30 (600 ms) do; a single loud frame is a click, not speech.
    assert [(round(u.start, 2), round(u.end, 2), u.loud_frames) for u in tracker.utterances] == [
        (10.06, 10.76, 15),
        (11.56, 11.62, 3),
    ]
    assert not tracker.speaking()


def test_tracker_counts_gaps_inside_utterances_only() -> None:
    tracker = SpeechTracker()
    # shortfalls before speech, one 3-frame gap and one loud-but-short frame inside, shortfall after: 2 gaps.
    feed(tracker, "sss" + "LLLL" + "sss" + "LL" + "S" + "LL" + "ssssss" + "." * 30)
    assert len(tracker.utterances) == 1
    assert tracker.underruns == 2


def test_score_turns_voice_to_voice_and_barge_in_stop() -> None:
    turns = [
        FarEndTurn(0, "hello", started_at=1.0, ended_at=2.0),
        FarEndTurn(1, "wait", started_at=5.0, ended_at=6.0, barge_in=True),
        FarEndTurn(2, "bye", started_at=9.0, ended_at=10.0),
    ]
    agent = [Segment(2.45, 5.3, 40, 0, 0), Segment(6.8, 7.5, 20, 0, 0)]
    score_turns(turns, agent)
    assert turns[0].voice_to_voice_ms == pytest.approx(450.0)
    assert turns[1].barge_in_stop_ms == pytest.approx(300.0)  # agent talking at 5.0, quiet from 5.3
    assert turns[1].voice_to_voice_ms == pytest.approx(800.0)
    assert turns[2].voice_to_voice_ms is None and turns[2].agent_reply_at is None


def test_a_backchannel_is_scored_by_when_the_agent_went_on_not_as_a_barge_in() -> None:
    turns = [
        FarEndTurn(0, "hello", started_at=1.0, ended_at=2.0),
        FarEndTurn(1, "mm-hm", started_at=3.0, ended_at=3.4, barge_in=True, backchannel=True),
        FarEndTurn(2, "okay", started_at=8.0, ended_at=8.3, barge_in=True, backchannel=True),
        FarEndTurn(3, "bye", started_at=12.0, ended_at=13.0),
    ]
    agent = [Segment(2.5, 3.1, 30, 0, 0), Segment(3.9, 6.0, 50, 0, 0), Segment(7.0, 8.1, 50, 0, 0)]
    score_turns(turns, agent)
    assert turns[1].agent_went_on_ms == pytest.approx(500.0) and turns[1].barge_in_stop_ms is None
    assert turns[1].voice_to_voice_ms is None  # going on is not a reply to the mm-hm
    assert turns[2].agent_went_on_ms is None  # the agent stopped at 8.1 and never went on


def wait_until(condition: object, timeout: float = 15.0, pause: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(pause)


def render_beeps(text: str) -> bytes:
    """A stand-in voice for timing tests: 60 ms of tone per word, so lengths follow the text."""
    return tone_pcm(500, 60 * len(text.split()))


class Agent:
    """The test's agent: dials, routes audio, and answers each far-end line after `reply_delay_s`."""

    def __init__(self, modem: ModemEmulator, reply_ms: int = 700, delay_s: float = 0.4, lead_ms: int = 200) -> None:
        self.at = AtClient(modem.at_port)
        self.at.wait_for("^PB DONE$", 3)
        self.at.command("ATE0")
        self.at.command("ATD+14155550132;")
        self.at.wait_for("^VOICE CALL: BEGIN$", 6)
        time.sleep(0.15)
        self.at.command("AT+CPCMREG=1")
        self.audio = AudioClient(modem.audio_port, lead_ms=lead_ms)
        self.reply = tone(reply_ms, hz=300)
        self.delay_s = delay_s

    def converse(self, modem: ModemEmulator, timeout: float = 40.0) -> None:
        answered = 0
        deadline = time.monotonic() + timeout
        while not modem.done.is_set() and time.monotonic() < deadline:
            heard = bytes(self.audio.received)
            spans = loud_spans(heard, 8000, merge_s=self.delay_s)
            finished = [s for s in spans if s[1] < len(heard) / 16000 - self.delay_s]
            if len(finished) > answered:
                answered = len(finished)
                self.audio.play(self.reply)
            time.sleep(0.02)

    def close(self) -> None:
        self.audio.close()
        self.at.close()


@pytest.mark.slow
def test_dentist_scenario_end_to_end_with_a_tiny_client() -> None:
    with ModemEmulator(load_scenario("dentist"), render=render_beeps) as modem:
        agent = Agent(modem)
        try:
            agent.converse(modem)
            agent.at.wait_for("^NO CARRIER$", 3)
        finally:
            agent.close()
    metrics = modem.metrics
    assert metrics.ended_by == "far_end"
    assert [t.index for t in metrics.turns] == list(range(6))
    v2v = metrics.voice_to_voice_ms
    print("voice-to-voice ms:", [round(v) for v in v2v])
    assert len(v2v) == 6
    # The agent waits 400 ms after the far end's audio ends, plus its 200 ms uplink lead, plus read jitter.
    assert all(380 <= v <= 1500 for v in v2v), v2v
    assert metrics.heard_agent_utterances == 6
    assert metrics.uplink_underruns == 0
    lengths = [len(u.pcm) / 16000 for u in metrics.agent_utterances]
    assert all(0.6 <= s <= 0.8 for s in lengths), lengths
    # What the client heard is what the far end sent, byte for byte.
    assert bytes(metrics.downlink).startswith(bytes(agent.audio.received))


@pytest.mark.slow
def test_barge_in_measures_how_fast_the_agent_stops() -> None:
    scenario = Scenario(
        answer_delay_s=0.3,
        hangup_after_s=20.0,
        lines=(
            ScenarioLine(sound=Sound(say="one two three four"), pause_s=1.2),
            ScenarioLine(sound=Sound(say="stop stop stop stop stop"), barge_in_after_ms=800),
        ),
    )
    with ModemEmulator(scenario, render=render_beeps) as modem:
        agent = Agent(modem)
        try:
            wait_until(lambda: loud_spans(bytes(agent.audio.received), 8000))
            time.sleep(0.5)
            agent.audio.play(tone(4000, hz=300))  # a long reply the far end will talk over
            spoken = len(agent.audio.received)
            wait_until(lambda: loud_spans(bytes(agent.audio.received[spoken:]), 8000), pause=0.01)
            with agent.audio._lock:  # barge-in: drop what is queued
                agent.audio._out.clear()
            modem.done.wait(25)
        finally:
            agent.close()
    turn = modem.metrics.turns[1]
    print(f"barge-in stop {turn.barge_in_stop_ms:.0f} ms")
    assert turn.barge_in
    # The client notices within ~a read, then its 200 ms lead already in the port still plays out.
    assert 60 <= turn.barge_in_stop_ms <= 800


@pytest.mark.slow
def test_hangup_mid_sentence_cuts_the_line() -> None:
    with ModemEmulator(load_scenario("hangup-mid-sentence"), render=render_beeps) as modem:
        agent = Agent(modem)
        try:
            agent.converse(modem, timeout=15)
            agent.at.wait_for("^NO CARRIER$", 3)
        finally:
            agent.close()
    turns = modem.metrics.turns
    assert turns[-1].cut and modem.metrics.ended_by == "far_end"
    full = len(render_beeps(turns[-1].text)) / 16000
    assert turns[-1].ended_at - turns[-1].started_at == pytest.approx(full / 2, abs=0.01)


@pytest.mark.slow
def test_underruns_counted_when_the_agent_stalls_mid_utterance() -> None:
    scenario = Scenario(answer_delay_s=0.3, hangup_after_s=4.0)
    with ModemEmulator(scenario) as modem:
        agent = Agent(modem, lead_ms=300)  # a generous lead, so only the deliberate hole can run the modem dry
        agent.audio.fill_silence = False  # a host that writes nothing between and within utterances
        try:
            time.sleep(0.8)
            agent.audio.play(tone(600, hz=300))
            time.sleep(1.0)  # the queue runs dry for ~400 ms: the modem has nothing to play mid-utterance
            agent.audio.play(tone(600, hz=300))
            modem.done.wait(6)
        finally:
            agent.close()
    metrics = modem.metrics
    assert metrics.heard_agent_utterances == 1
    assert metrics.uplink_underruns == 1


@pytest.mark.slow
def test_far_end_speech_is_real_piper_voice_and_agent_utterances_transcribe() -> None:
    """Real parts: the far end speaks with the project's Piper voice, the agent's uplink is cut into
    utterances by the far end and transcribed with faster-whisper to check it is the agent's words."""
    from cellcall.engines.stt import WhisperTranscriber
    from cellcall.engines.tts import PiperSynthesizer

    voice = PiperSynthesizer(voice="joe", sample_rate=8000)
    scenario = Scenario(
        answer_delay_s=0.3,
        hangup_when_done=True,
        lines=(ScenarioLine(sound=Sound(say="Bright Smile Dental, how can I help you?"), pause_s=1.2),),
    )
    reply = voice.render("I would like to move a cleaning to Friday morning.")
    with ModemEmulator(scenario, render=voice.render) as modem:
        agent = Agent(modem)
        agent.reply = reply
        try:
            agent.converse(modem, timeout=30)
        finally:
            agent.close()
    stt = WhisperTranscriber(sample_rate=8000)
    heard = stt.transcribe(bytes(modem.metrics.downlink)).text.lower()
    said = [stt.transcribe(u.pcm).text.lower() for u in modem.metrics.agent_utterances]
    print("far end said:", heard, "| agent said:", said)
    assert "help you" in heard  # tiny.en on 8 kHz Piper hears "Bright Smile" variously
    assert len(said) == 1 and "friday" in said[0] and "cleaning" in said[0]
    assert modem.metrics.voice_to_voice_ms and modem.metrics.ended_by == "far_end"
    level = np.abs(np.frombuffer(modem.metrics.agent_utterances[0].pcm, dtype="<i2")).max()
    assert level > 3000
