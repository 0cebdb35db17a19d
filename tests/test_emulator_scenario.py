"""Scenario files: built-ins load, mistakes are reported with the file, the key and a hint."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from cellcall.emulator.scenario import ScenarioError, builtin_names, load_scenario, parse_scenario
from cellcall.emulator.sounds import read_wav


def write(tmp_path: Path, text: str, name: str = "s.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_every_builtin_loads() -> None:
    names = builtin_names()
    assert {"dentist", "busy", "no-answer", "barge-in", "echo", "silent", "hangup-mid-sentence", "voicemail"} <= set(names)
    loaded = {name: load_scenario(name) for name in names}
    assert loaded["busy"].outcome == "busy" and loaded["no-answer"].outcome == "no-answer"
    assert loaded["silent"].silent and loaded["silent"].lines == ()
    assert any(line.barge_in_after_ms for line in loaded["barge-in"].lines)
    assert loaded["hangup-mid-sentence"].lines[-1].hangup_mid_sentence
    assert loaded["voicemail"].lines[-1].sound.tone is not None


def test_dentist_matches_the_example_goal_and_echo_extends_it() -> None:
    dentist, echo = load_scenario("dentist"), load_scenario("echo")
    said = " ".join(line.sound.say for line in dentist.lines if line.sound and line.sound.say).lower()
    for fact in ("dental", "patient number", "tuesday", "friday at nine thirty", "goodbye"):
        assert fact in said
    assert dentist.hangup_when_done and dentist.echo is None
    assert echo.name == "echo" and echo.lines == dentist.lines
    assert echo.echo is not None and (echo.echo.gain_db, echo.echo.delay_ms) == (-18.0, 60)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('outcom = "busy"', "unknown key 'outcom' (did you mean 'outcome'?)"),
        ('outcome = "bussy"', "did you mean 'busy'?"),
        ("answer_delay_s = -1", "answer_delay_s: -1 is outside"),
        ("answer_delay_s = true", "answer_delay_s: expected a number"),
        ('[[lines]]\nsay = "hi"\nwav = "a.wav"', "give only one of say, wav, tone"),
        ("[[lines]]\npause_s = 1", "needs one of say, wav, tone"),
        ('[[lines]]\nwav = "missing.wav"', "no such file"),
        ('[[lines]]\nsay = "hi"\nwait_for_agent = true\nbarge_in_after_ms = 5', "exclude each other"),
        ('[[lines]]\ndtmf = "12x"', "keys outside"),
        ('[[lines]]\nsay = "  "', "must not be empty"),
        ('silent = true\n[[lines]]\nsay = "hi"', "silent far end cannot have lines"),
        ('outcome = "busy"\n[[lines]]\nsay = "hi"', "never answers"),
        ("hangup_when_done = true", "needs at least one line"),
        ("[greeting]\ntone = { hz = 440 }", "needs hz and ms"),
        ("echo = { gain_db = -18, delayms = 60 }", "did you mean 'delay_ms'?"),
        ('[[lines]]\nsay = "hi"\nhangup_mid_sentence = "yes"', "expected true or false"),
        ("this is not toml", "not valid TOML"),
        ('extends = "s.toml"', "extends itself"),
    ],
)
def test_mistakes_are_reported_clearly(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ScenarioError) as err:
        load_scenario(path)
    assert message in str(err.value)
    assert str(path.name) in str(err.value) or "TOML" in str(err.value)


def test_unknown_builtin_name_suggests_one() -> None:
    with pytest.raises(ScenarioError, match="did you mean 'dentist'"):
        load_scenario("dentst")


def test_wav_lines_resolve_next_to_the_file_and_resample(tmp_path: Path) -> None:
    samples = (np.sin(np.arange(16000) * 2 * np.pi * 440 / 16000) * 8000).astype("<i2")
    with wave.open(str(tmp_path / "hello.wav"), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(16000)
        wav.writeframes(samples.tobytes())
    scenario = load_scenario(write(tmp_path, '[greeting]\nwav = "hello.wav"\n[[lines]]\nsay = "hi"\nwait_for_agent = true'))
    assert scenario.greeting.wav == tmp_path / "hello.wav"
    pcm = read_wav(scenario.greeting.wav)
    assert len(pcm) == 2 * 8000  # one second at the network's 8 kHz


def test_extends_overrides_only_what_it_names(tmp_path: Path) -> None:
    write(tmp_path, 'name = "base"\nanswer_delay_s = 5\n[[lines]]\nsay = "hello"', "base.toml")
    child = load_scenario(write(tmp_path, 'extends = "base.toml"\nanswer_delay_s = 1', "child.toml"))
    assert child.answer_delay_s == 1.0 and child.lines[0].sound.say == "hello" and child.name == "child"


def test_a_backchannel_line_is_said_over_the_agent() -> None:
    line = {"say": "Mm-hm.", "backchannel": True}
    with pytest.raises(ScenarioError, match="backchannel is said over the agent"):
        parse_scenario({"name": "x", "lines": [line]})
    scenario = parse_scenario({"name": "x", "lines": [{**line, "barge_in_after_ms": 800}]})
    assert scenario.lines[0].backchannel and scenario.lines[0].barge_in_after_ms == 800
    assert any(line.backchannel for line in load_scenario("backchannel").lines)
