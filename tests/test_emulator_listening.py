"""The listening far end on the real emulator, driven by a tiny hand-written client and a fake transcriber.

No models: the far end's "voice" is beeps (60 ms per word) and its "ears" return scripted texts, so what
is tested is the listening itself: each agent utterance is taken once its silence has lasted, the
script's answer is spoken, re-asks and hang-ups happen, an interruption talks over a long utterance, and
voice-to-voice is measured on the modem's clock. Real time, a few seconds each.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from emulator_client import AtClient, AudioClient, loud_spans, tone

from cellcall.emulator.farend import speech_rms
from cellcall.emulator.listening import ListeningFarEnd, Reaction, listening_far_end
from cellcall.emulator.modem import ModemEmulator
from cellcall.emulator.scenario import Noise, Scenario, ScenarioLine, Sound
from cellcall.emulator.sounds import tone_pcm
from cellcall.eval.persona import parse_persona
from cellcall.eval.runner import persona_scenario
from cellcall.eval.script import PersonaScript

PERSONA = """\
answer_delay_s = 0.3
answer_pause_s = 0.5
hangup_after_s = 30
max_wait_s = 5
start = "ask"

[states.ask]
say = "who is it"
reask = "sorry who is it please"
interrupt_ms = {interrupt_ms}
interrupt = "hurry up"
[[states.ask.on]]
match = '(?P<who>alex)'
goto = "done"

[states.done]
say = "thanks {{who}} bye"
hangup = true
"""


class FakeEars:
    """Stands in for Whisper: returns the next scripted text and remembers how much audio it got."""

    def __init__(self, *texts: str) -> None:
        self.texts = list(texts)
        self.seconds: list[float] = []

    def __call__(self, pcm: bytes, rate: int) -> str:
        self.seconds.append(len(pcm) / 2 / rate)
        return self.texts.pop(0) if self.texts else ""


def beeps(text: str) -> bytes:
    return tone_pcm(500, 60 * len(text.split()))


def call_persona(interrupt_ms: int, ears: FakeEars, first_reply_ms: int = 700) -> tuple[ModemEmulator, PersonaScript]:
    """Dial the persona and answer each of its lines with a tone (the first one `first_reply_ms` long)."""
    persona = parse_persona(PERSONA.format(interrupt_ms=interrupt_ms))
    script = PersonaScript(persona)
    factory, _ = listening_far_end(lambda: script, ears, persona.texts(), persona.speaks_first, persona.answer_pause_s)
    modem = ModemEmulator(persona_scenario(persona), render=beeps, farend=factory)
    with modem:
        at = AtClient(modem.at_port)
        at.wait_for("^PB DONE$", 3)
        at.command("ATE0")
        at.command("ATD+14155550132;")
        at.wait_for("^VOICE CALL: BEGIN$", 6)
        time.sleep(0.15)
        at.command("AT+CPCMREG=1")
        audio = AudioClient(modem.audio_port, lead_ms=200)
        try:
            answered, deadline = 0, time.monotonic() + 25
            while not modem.done.is_set() and time.monotonic() < deadline:
                heard = bytes(audio.received)
                finished = [s for s in loud_spans(heard, 8000, merge_s=0.3) if s[1] < len(heard) / 16000 - 0.3]
                if len(finished) > answered:
                    audio.play(tone(first_reply_ms if answered == 0 else 700, hz=300))
                    answered = len(finished)
                time.sleep(0.02)
            assert modem.done.is_set(), "the persona never hung up"
        finally:
            audio.close()
            at.close()
    return modem, script


@pytest.mark.slow
def test_persona_listens_reasks_then_moves_on_and_hangs_up() -> None:
    ears = FakeEars("mumble", "this is alex")
    modem, script = call_persona(interrupt_ms=60_000, ears=ears)
    metrics = modem.metrics
    assert metrics.ended_by == "far_end"
    assert script.visits == ["ask", "done"] and script.values == {"who": "alex"}
    assert [t.text for t in metrics.turns] == ["who is it", "sorry who is it please", "thanks alex bye"]
    # each 700 ms reply, once, with up to 300 ms of the quiet before and after it
    assert len(ears.seconds) == 2 and all(0.9 <= s <= 1.4 for s in ears.seconds), ears.seconds
    v2v = metrics.voice_to_voice_ms
    assert len(v2v) == 2 and all(300 <= v <= 1500 for v in v2v), v2v


@pytest.mark.slow
def test_impatient_persona_talks_over_a_long_utterance() -> None:
    ears = FakeEars("hi this is al", "alex")
    modem, script = call_persona(interrupt_ms=400, ears=ears, first_reply_ms=3000)
    turns, utterances = modem.metrics.turns, modem.metrics.utterances
    assert [t.text for t in turns][:2] == ["who is it", "hurry up"] and turns[1].barge_in
    assert 0.35 <= turns[1].started_at - utterances[0].start <= 0.8  # 400 ms into the agent's speech
    assert utterances[0].end > turns[1].started_at  # it really was spoken over the agent
    assert script.interrupts == 1 and script.visits == ["ask", "done"]
    assert script.heard[0].spoken_over and script.heard[0].matched is None
    # No re-ask for the words it cut off: the next line waits for the agent (this client just goes quiet).
    assert turns[2].text == "sorry who is it please" and turns[2].started_at - utterances[0].end >= 4.0


@pytest.mark.slow
def test_line_noise_is_mixed_in_at_the_requested_snr() -> None:
    text = "one two three four five six seven eight"
    line = ScenarioLine(sound=Sound(say=text), pause_s=1.0)  # after the audio route is up
    scenario = Scenario(answer_delay_s=0.3, lines=(line,), noise=Noise(snr_db=10.0), hangup_after_s=4.0)
    with ModemEmulator(scenario, render=beeps) as modem:
        at = AtClient(modem.at_port)
        at.wait_for("^PB DONE$", 3)
        at.command("ATE0")
        at.command("ATD+14155550132;")
        at.wait_for("^VOICE CALL: BEGIN$", 6)
        time.sleep(0.15)
        at.command("AT+CPCMREG=1")
        audio = AudioClient(modem.audio_port)
        try:
            assert modem.done.wait(10)
        finally:
            audio.close()
            at.close()
    down = np.frombuffer(bytes(modem.metrics.downlink), dtype="<i2").astype(np.float64)
    spans = loud_spans(bytes(modem.metrics.downlink), 8000, threshold=5000)
    assert spans, "the greeting was never played"
    before = down[: int((spans[0][0] - 0.1) * 8000)]
    after = down[int((spans[-1][1] + 0.1) * 8000) :]
    assert before.size and not before.any()  # no noise before the far end first speaks (nothing to refer it to)
    measured = 20 * np.log10(speech_rms(beeps(text), 8000) / np.sqrt(np.mean(after**2)))
    assert 9.0 <= measured <= 11.0, measured


class RecordingScript:
    """A script that says one line on start and records what it hears."""

    def __init__(self) -> None:
        self.heard: list[str] = []

    def start(self) -> Reaction:
        return Reaction("go on")

    def hear(self, text: str, spoken_over: bool = False) -> Reaction:
        self.heard.append(text)
        return Reaction(None)

    def interrupt_after_ms(self) -> int | None:
        return None

    def interrupt(self) -> Reaction:
        return Reaction(None)


def test_clicks_are_not_words_and_padding_never_hears_audio_twice() -> None:
    """Fed straight through the modem-facing `uplink` (no ports, faster than real time)."""
    ears, script = FakeEars("hello", "first part", "second part"), RecordingScript()
    farend = ListeningFarEnd(
        Scenario(max_wait_s=30, quiet_ms=400),
        beeps,
        lambda: None,
        lambda _: None,
        script=script,
        transcribe=ears,
        prepared=[],
        speaks_first=False,
    )
    farend.route(time.monotonic(), 8000)
    farend.answered()
    frame, quiet = tone(20, hz=300), bytes(320)

    def say(ms: int, then_quiet_ms: int) -> None:
        farend.uplink(frame * (ms // 20) + quiet * (then_quiet_ms // 20), None)

    def wait_for(calls: int) -> None:
        deadline = time.monotonic() + 5
        while len(ears.seconds) < calls:
            assert time.monotonic() < deadline, ears.seconds
            time.sleep(0.01)

    say(600, 600)  # the greeting it waits for before its first line
    wait_for(1)
    deadline = time.monotonic() + 5
    while not farend.metrics.turns or time.monotonic() < farend.metrics.turns[0].ended_at + 0.1:  # "go on" said
        assert time.monotonic() < deadline
        time.sleep(0.01)
    say(40, 600)  # a click: not transcribed, not an answer
    say(300, 440)  # words, then a pause long enough to end the utterance...
    wait_for(2)
    say(300, 600)  # ...and more words: the padding of both takes would overlap in the 440 ms between them
    wait_for(3)
    farend.ended("host")
    assert farend.wait_finished(5)
    fed = (600 + 600 + 40 + 600 + 300 + 440 + 300 + 600) / 1000
    assert len(ears.seconds) == 3 and sum(ears.seconds) <= fed, ears.seconds
    assert ears.seconds[2] < 0.3 + 0.44 + 0.3, ears.seconds  # the second take starts where the first ended
    assert script.heard == ["first part", "second part"]
