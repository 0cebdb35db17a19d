"""What the far end can be besides a person: phone menus that wait for keys, hold music, announcements
and mailboxes. FarEnds are driven directly (keys through `heard_dtmf`, a tone per word as the voice),
so the timings are the far end's own and no model is loaded."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from emulator_client import AtClient

from cellcall.emulator.farend import FarEnd, FarEndTurn
from cellcall.emulator.modem import ModemEmulator
from cellcall.emulator.scenario import OUTCOMES, ScenarioError, builtin_names, load_scenario, parse_scenario
from cellcall.emulator.sounds import RENDER_RATE, music_pcm, tone_pcm

WORD_S = 0.04
PROMPT = "For appointments, press 2."  # 4 words: 160 ms
AFTER = {"say": "Maria speaking."}
NEW_SCENARIOS = ("menu", "menu-no-route", "voicemail-no-beep", "mailbox-full", "unavailable", "hold", "long-greeting")


def render(text: str) -> bytes:
    """A stand-in voice: 40 ms of tone per word, so a line's length follows its text."""
    return tone_pcm(500, int(WORD_S * 1000) * len(text.split()))


def menu(**keys: Any) -> dict[str, Any]:
    return {"say": PROMPT, "wait_dtmf": "2", "repeat": 3, "dtmf_wait_s": 2.0} | keys


class Rig:
    """One FarEnd with fake modem callbacks; a far hang-up ends the call as the modem would."""

    def __init__(self, scenario: dict[str, Any] | Path | str) -> None:
        parsed = parse_scenario(scenario) if isinstance(scenario, dict) else load_scenario(scenario)
        self.hung_up = threading.Event()
        self.hangup_at: float | None = None
        self.pressed: list[str] = []
        self.end = FarEnd(parsed, render, hangup=self._hangup, press=self.pressed.append)
        self.end.route(time.monotonic(), RENDER_RATE)
        self.started = time.monotonic()
        self.end.answered()

    def _hangup(self) -> None:
        self.hangup_at = time.monotonic()
        self.hung_up.set()
        self.end.ended("far_end")

    @property
    def turns(self) -> list[FarEndTurn]:
        return list(self.end.metrics.turns)

    def spoken(self) -> list[str]:
        return [turn.text for turn in self.turns]

    def wait_turns(self, count: int, timeout: float = 10.0) -> list[FarEndTurn]:
        assert wait_for(lambda: len(self.turns) >= count, timeout), f"only {self.spoken()} after {timeout} s"
        return self.turns

    def sleep_until(self, t: float) -> None:
        time.sleep(max(0.0, t - time.monotonic()))


def wait_for(condition: Any, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return bool(condition())


@pytest.fixture
def rigs() -> Iterator[list[Rig]]:
    """Rigs made by a test; their calls are ended afterwards so no script thread outlives it."""
    made: list[Rig] = []
    yield made
    for rig in made:
        rig.end.ended("host")


@pytest.fixture
def rig(rigs: list[Rig]) -> Any:
    def make(scenario: dict[str, Any] | Path | str) -> Rig:
        made = Rig(scenario)
        rigs.append(made)
        return made

    return make


# ---- validation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (menu(wait_dtmf="2x"), "lines[0].wait_dtmf: '2x' has keys outside 0-9 * # A-D"),
        (menu(wait_dtmf="1 2"), "lines[0].wait_dtmf: '1 2' has keys outside"),
        (menu(wait_dtmf=""), "lines[0].wait_dtmf: must not be empty"),
        (menu(wait_dtmf=2), "lines[0].wait_dtmf: expected text, got 2"),
        (menu(dtmf_wait_s=0), "lines[0].dtmf_wait_s: 0 is outside 0..120 (it must be more than 0)"),
        (menu(dtmf_wait_s=-1.5), "lines[0].dtmf_wait_s: -1.5 is outside"),
        (menu(dtmf_wait_s="6"), "lines[0].dtmf_wait_s: expected a number"),
        (menu(repeat=0), "lines[0].repeat: 0 is outside 1..20"),
        (menu(repeat=2.5), "lines[0].repeat: expected a whole number"),
        (menu(repeat=True), "lines[0].repeat: expected a whole number"),
        ({"wait_dtmf": "2"}, "lines[0]: needs one of say, wav, tone, music"),
        ({"wait_dtmf": "2", "dtmf": "1"}, "lines[0]: wait_dtmf needs a prompt to play"),
        (menu(hangup_mid_sentence=True), "cannot have hangup_mid_sentence"),
        ({"say": "Hello.", "repeat": 2}, "lines[0].repeat: only a menu line (wait_dtmf)"),
        ({"say": "Hello.", "dtmf_wait_s": 2}, "lines[0].dtmf_wait_s: only a menu line"),
        (menu(wait_dmtf="2"), "unknown key 'wait_dmtf' (did you mean 'wait_dtmf'?)"),
        (menu(dtmf_wait=3), "unknown key 'dtmf_wait' (did you mean 'dtmf_wait_s'?)"),
        (menu(repeats=3), "unknown key 'repeats' (did you mean 'repeat'?)"),
        ({"music": {"s": 0}}, "lines[0].music.s: 0 is outside 0..600 (it must be more than 0)"),
        ({"music": {"s": -2}}, "lines[0].music.s: -2 is outside"),
        ({"music": {"s": 600.5}}, "lines[0].music.s: 600.5 is outside 0..600"),
        ({"music": {}}, "lines[0].music: needs s (seconds)"),
        ({"music": 10}, "lines[0].music: expected a table, got int"),
        ({"music": {"seconds": 10}}, "lines[0].music: unknown key 'seconds' (allowed: s)"),
        ({"music": {"s": 5}, "say": "Hold."}, "give only one of say, wav, tone, music (got say, music)"),
        ({"musik": {"s": 5}}, "unknown key 'musik' (did you mean 'music'?)"),
        ({"say": "Goodbye.", "hangup": True}, "lines[0]: hangup ends the call, so it goes on a line of its own"),
        ({"pause_s": 1.0, "hangup": "yes"}, "lines[0].hangup: expected true or false"),
    ],
)
def test_bad_new_keys_are_clear_errors(line: dict[str, Any], message: str) -> None:
    with pytest.raises(ScenarioError) as err:
        parse_scenario({"lines": [line]})
    assert message in str(err.value)
    assert str(err.value).startswith("scenario.lines[0]")


def test_a_line_after_a_hangup_is_refused_and_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "full.toml"
    path.write_text('[[lines]]\nsay = "Full."\n[[lines]]\npause_s = 3.0\nhangup = true\n[[lines]]\nsay = "Never."\n')
    with pytest.raises(ScenarioError) as err:
        load_scenario(path)
    assert str(err.value) == f"{path}.lines[1]: hangup ends the call, so the lines after it would never play"


def test_menu_keys_defaults_and_music_parse() -> None:
    lines = parse_scenario(
        {
            "lines": [
                {"say": "Press a.", "wait_dtmf": "a#"},
                {"tone": {"hz": 440, "ms": 200}, "wait_dtmf": "9", "repeat": 1, "dtmf_wait_s": 0.05},
                {"music": {"s": 0.25}},
                {"pause_s": 2.5, "hangup": True},
            ]
        }
    ).lines
    assert (lines[0].wait_dtmf, lines[0].repeat, lines[0].dtmf_wait_s) == ("A#", 3, 6.0)
    assert (lines[1].wait_dtmf, lines[1].repeat, lines[1].dtmf_wait_s) == ("9", 1, 0.05)
    assert lines[2].sound is not None and lines[2].sound.music_s == 0.25 and lines[2].sound.label == "[music 0.25 s]"
    assert lines[3].hangup and lines[3].sound is None and lines[3].pause_s == 2.5


# ---- menus --------------------------------------------------------------------------------------


def test_the_right_key_moves_on_and_times_it_after_the_prompt(rig: Any) -> None:
    r = rig({"lines": [menu(), AFTER]})
    prompt = r.wait_turns(1)[0]
    r.sleep_until(prompt.ended_at + 0.3)
    pressed_at = time.monotonic()
    r.end.heard_dtmf("2")
    turns = r.wait_turns(2, timeout=1.5)  # dtmf_wait_s is 2 s: only the key can have moved it on this soon
    assert [(t.index, t.text, t.play) for t in turns] == [(0, PROMPT, 1), (1, "Maria speaking.", 1)]
    assert turns[0].dtmf_prompt_end == turns[0].ended_at
    assert turns[0].ended_at - turns[0].started_at == pytest.approx(4 * WORD_S, abs=1e-6)
    assert turns[0].dtmf_heard_at == pytest.approx(pressed_at, abs=0.005)
    assert turns[0].dtmf_heard_at - turns[0].dtmf_prompt_end == pytest.approx(0.3, abs=0.05)
    assert turns[1].started_at - turns[0].dtmf_heard_at < 0.3  # heard_dtmf woke the script
    assert turns[1].dtmf_prompt_end is None and turns[1].dtmf_heard_at is None  # not a menu line
    assert not r.hung_up.is_set()


def test_a_wrong_key_replays_the_prompt_at_once_then_the_right_one_moves_on(rig: Any) -> None:
    r = rig({"lines": [menu(dtmf_wait_s=3.0), AFTER]})
    first = r.wait_turns(1)[0]
    r.sleep_until(first.ended_at + 0.1)
    r.end.heard_dtmf("1")
    second = r.wait_turns(2, timeout=1.5)[1]  # not after the 3 s wait: the wrong key replays now
    assert (second.index, second.text, second.play) == (0, PROMPT, 2)
    assert second.started_at - first.ended_at < 0.5
    r.sleep_until(second.ended_at + 0.2)
    r.end.heard_dtmf("2")
    turns = r.wait_turns(3, timeout=1.5)
    assert [(t.index, t.play) for t in turns] == [(0, 1), (0, 2), (1, 1)]
    assert turns[0].dtmf_heard_at is None and turns[1].dtmf_heard_at is not None
    assert turns[1].dtmf_heard_at - turns[1].dtmf_prompt_end == pytest.approx(0.2, abs=0.05)
    assert r.end.metrics.dtmf_heard == "12" and not r.hung_up.is_set()


def test_no_keys_plays_the_prompt_repeat_times_then_hangs_up(rig: Any) -> None:
    r = rig({"lines": [menu(repeat=3, dtmf_wait_s=0.3), AFTER]})
    assert r.hung_up.wait(6.0)
    turns = r.turns
    assert [(t.index, t.text, t.play) for t in turns] == [(0, PROMPT, 1), (0, PROMPT, 2), (0, PROMPT, 3)]
    assert all(t.dtmf_heard_at is None and t.dtmf_prompt_end == t.ended_at for t in turns)
    for before, after in zip(turns, turns[1:], strict=False):  # each play waited dtmf_wait_s for keys first
        assert after.started_at - before.ended_at == pytest.approx(0.3, abs=0.1)
    assert r.hangup_at is not None and r.hangup_at - turns[-1].ended_at == pytest.approx(0.3, abs=0.1)
    assert r.end.metrics.ended_by == "far_end"


def test_a_one_play_menu_hangs_up_after_a_wrong_key(rig: Any) -> None:
    r = rig({"lines": [menu(repeat=1, dtmf_wait_s=3.0), AFTER]})
    prompt = r.wait_turns(1)[0]
    r.sleep_until(prompt.ended_at + 0.05)
    r.end.heard_dtmf("5")
    assert r.hung_up.wait(1.5)  # at once, not after the 3 s wait
    assert r.spoken() == [PROMPT]


def test_keys_pressed_before_the_menu_line_do_not_count(rig: Any) -> None:
    r = rig({"lines": [{"say": "Hello, one moment."}, menu(pause_s=0.3, repeat=2, dtmf_wait_s=0.3), AFTER]})
    r.wait_turns(1)
    r.end.heard_dtmf("2")  # while the line before plays
    assert wait_for(lambda: r.end.metrics.turns[-1].ended_at + 0.05 < time.monotonic())
    r.end.heard_dtmf("2")  # in the menu line's own pause, before its prompt plays
    assert r.hung_up.wait(5.0)
    assert r.spoken() == ["Hello, one moment.", PROMPT, PROMPT]
    assert r.end.metrics.dtmf_heard == "22"
    assert all(t.dtmf_heard_at is None for t in r.turns)


def test_a_key_pressed_during_the_prompt_counts_once_the_prompt_has_played(rig: Any) -> None:
    long_prompt = " ".join(["word"] * 20)  # 800 ms
    r = rig({"lines": [menu(say=long_prompt, dtmf_wait_s=3.0), AFTER]})
    prompt = r.wait_turns(1)[0]
    r.sleep_until(prompt.started_at + 0.3)
    r.end.heard_dtmf("2")
    turns = r.wait_turns(2, timeout=2.0)
    assert turns[0].ended_at - turns[0].started_at == pytest.approx(0.8, abs=1e-6)  # not cut short
    assert turns[0].dtmf_heard_at is not None and turns[0].dtmf_heard_at < turns[0].dtmf_prompt_end
    assert 0.0 <= turns[1].started_at - turns[0].ended_at < 0.3  # the next line follows the prompt's end
    assert [t.play for t in turns] == [1, 1]


def test_several_keys_must_all_come_and_the_time_is_the_last_ones(rig: Any) -> None:
    r = rig({"lines": [menu(wait_dtmf="12#", dtmf_wait_s=2.0), AFTER]})
    prompt = r.wait_turns(1)[0]
    r.sleep_until(prompt.ended_at + 0.05)
    r.end.heard_dtmf("1")
    time.sleep(0.15)
    r.end.heard_dtmf("2")
    time.sleep(0.15)
    assert len(r.turns) == 1  # two of three keys: still waiting
    last = time.monotonic()
    r.end.heard_dtmf("#9")  # extra keys after the right ones are ignored
    turns = r.wait_turns(2, timeout=1.5)
    assert turns[0].dtmf_heard_at == pytest.approx(last, abs=0.005)
    assert [t.index for t in turns] == [0, 1]


def test_the_menu_waits_only_dtmf_wait_s_per_play(rig: Any) -> None:
    r = rig({"lines": [menu(repeat=2, dtmf_wait_s=0.8), AFTER]})
    first = r.wait_turns(1)[0]
    r.sleep_until(first.ended_at + 1.0)  # too late for the first play's wait: it replayed
    r.end.heard_dtmf("2")
    turns = r.wait_turns(3, timeout=2.0)
    assert [(t.index, t.play) for t in turns] == [(0, 1), (0, 2), (1, 1)]
    assert turns[1].started_at - first.ended_at == pytest.approx(0.8, abs=0.1)
    assert turns[0].dtmf_heard_at is None and turns[1].dtmf_heard_at is not None


@pytest.mark.slow
def test_keys_sent_with_at_vts_through_the_modem_pass_the_menu() -> None:
    scenario = parse_scenario({"answer_delay_s": 0.3, "hangup_after_s": 20, "lines": [menu(dtmf_wait_s=3.0), AFTER]})
    with ModemEmulator(scenario, render=render) as modem:
        at = AtClient(modem.at_port)
        try:
            at.wait_for("^PB DONE$", 3)
            at.command("ATE0")
            at.command("ATD+14155550132;")
            at.wait_for("^VOICE CALL: BEGIN$", 6)
            assert wait_for(lambda: bool(modem.metrics.turns) and modem.metrics.turns[0].ended_at < time.monotonic())
            assert at.command("AT+VTS=2") == ["OK"]
            assert wait_for(lambda: len(modem.metrics.turns) == 2, 3.0)
        finally:
            at.command("AT+CHUP")
            at.close()
    turns = modem.metrics.turns
    assert modem.metrics.dtmf_heard == "2" and [t.index for t in turns] == [0, 1]
    assert turns[0].dtmf_heard_at is not None and turns[0].dtmf_heard_at >= turns[0].ended_at == turns[0].dtmf_prompt_end


# ---- hold music ---------------------------------------------------------------------------------


def test_hold_music_has_its_length_level_chords_and_is_the_same_every_time() -> None:
    pcm = music_pcm(10.0)
    data = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    assert data.size == 10 * RENDER_RATE
    rms = float(np.sqrt(np.mean(data**2)))
    assert 3700 < rms < 5200, rms  # about -17 dBFS (sounds.music_pcm: RMS 4400), far above the 300 speech floor
    assert music_pcm(10.0) == pcm and music_pcm(3.0) == pcm[: 2 * 3 * RENDER_RATE]  # deterministic
    chord = int(0.4 * RENDER_RATE)
    peaks = []
    for k in range(4):  # the strongest note of each chord: the chord changes every 0.4 s
        part = data[k * chord + 200 : (k + 1) * chord - 200]
        spectrum = np.abs(np.fft.rfft(part * np.hanning(part.size)))
        peaks.append(float(np.argmax(spectrum)) * RENDER_RATE / part.size)
    assert len({round(p) for p in peaks}) == 4, peaks
    for k in range(1, 6):  # a 10 ms fade at each change: no click
        assert np.abs(data[k * chord - 3 : k * chord + 3]).max() < 0.05 * np.abs(data).max()
        mid = k * chord + chord // 2
        assert np.abs(data[mid - 40 : mid + 40]).max() > 2000


def test_a_music_line_plays_for_its_seconds_without_the_voice() -> None:
    def no_voice(text: str) -> bytes:
        raise AssertionError(f"music must not be rendered by the voice: {text!r}")

    scenario = parse_scenario({"lines": [{"music": {"s": 0.5}}, {"pause_s": 0.1, "hangup": True}]})
    hung_up = threading.Event()
    end = FarEnd(scenario, no_voice, hangup=hung_up.set, press=lambda digit: None)
    t0 = time.monotonic()
    end.route(t0, RENDER_RATE)
    end.answered()
    assert hung_up.wait(3.0)
    end.ended("far_end")
    (turn,) = end.metrics.turns
    assert turn.text == "[music 0.5 s]" and turn.ended_at - turn.started_at == pytest.approx(0.5, abs=1e-6)
    assert end.metrics.errors == []
    # The downlink carries the music from the turn's start (what the modem would read).
    start = round((turn.started_at - t0) * RENDER_RATE)
    played = np.frombuffer(end.downlink(start + 4000), dtype="<i2")[start:]
    assert np.array_equal(played, np.frombuffer(music_pcm(0.5), dtype="<i2"))


# ---- the shipped scenarios ----------------------------------------------------------------------


def says(name: str) -> list[str | None]:
    return [line.sound.say if line.sound else None for line in load_scenario(name).lines]


DENTIST_REST = [
    "Sure. Can I have the patient's name and patient number, please?",
    "Thank you. I see Sam's cleaning on Tuesday at three. What would work better?",
    "I have Friday at nine thirty in the morning. Would that work?",
    "Great, Sam is booked for Friday at nine thirty. The Tuesday slot is cancelled.",
    "You're welcome. Have a nice day, goodbye.",
]


@pytest.mark.parametrize("name", NEW_SCENARIOS)
def test_every_new_scenario_loads_with_an_outcome_a_description_and_a_comment(name: str) -> None:
    assert name in builtin_names()
    scenario = load_scenario(name)
    assert scenario.name == name and scenario.outcome in OUTCOMES and scenario.outcome == "answer"
    assert scenario.description and scenario.lines and scenario.hangup_after_s is not None
    assert scenario.source is not None and scenario.source.read_text(encoding="utf-8").startswith("# ")


def test_the_new_scenarios_say_what_they_should() -> None:
    dentist = load_scenario("dentist")
    assert [line.sound.say for line in dentist.lines[1:] if line.sound] == DENTIST_REST

    menu_ = load_scenario("menu")
    first = menu_.lines[0]
    assert says("menu") == [
        "Thank you for calling Bright Smile Dental. For opening hours, press 1. For appointments, press 2. For billing, press 3.",
        "Bright Smile Dental, this is Maria. How can I help you?",
        *DENTIST_REST,
    ]
    assert (first.wait_dtmf, first.repeat, first.dtmf_wait_s, first.pause_s) == ("2", 3, 6.0, 1.0)
    assert menu_.lines[1].pause_s == 1.0 and menu_.lines[2:] == dentist.lines[1:]
    assert menu_.hangup_when_done and menu_.hangup_after_s == 240 and menu_.answer_delay_s == 3.0

    no_route = load_scenario("menu-no-route")
    assert says("menu-no-route") == [
        "Thank you for calling City Pharmacy. For prescription refills, press 1. For store hours, press 3."
    ]
    line = no_route.lines[0]
    assert (line.wait_dtmf, line.repeat, line.dtmf_wait_s, no_route.hangup_after_s) == ("7", 5, 4.0, 120)
    assert not no_route.hangup_when_done

    no_beep = load_scenario("voicemail-no-beep")
    assert says("voicemail-no-beep") == [
        "Hi, this is Sam Taylor. I can't take your call right now. Please leave a message and I'll call you back."
    ]
    assert all(s.tone is None for s in no_beep.sounds()) and no_beep.lines[0].pause_s == 1.0
    assert (no_beep.hangup_when_done, no_beep.quiet_ms, no_beep.max_wait_s, no_beep.hangup_after_s) == (True, 2000, 30, 60)
    assert no_beep.answer_delay_s == 4.0

    full = load_scenario("mailbox-full")
    assert says("mailbox-full") == ["The mailbox of Sam Taylor is full and cannot accept any new messages. Goodbye.", None]
    assert full.lines[-1].hangup and full.lines[-1].pause_s == 3.0 and full.answer_delay_s == 4.0

    unavailable = load_scenario("unavailable")
    assert says("unavailable") == ["The number you have dialled is not available. Please try again later.", None]
    assert unavailable.lines[-1].hangup and unavailable.lines[-1].pause_s == 2.0

    hold = load_scenario("hold")
    assert says("hold") == [
        "Thank you for calling Bright Smile Dental. All of our staff are busy right now. Please hold.",
        None,
        "Hi, thanks for holding, this is Maria at Bright Smile Dental. How can I help you?",
        *DENTIST_REST,
    ]
    assert hold.lines[1].sound is not None and hold.lines[1].sound.music_s == 12.0
    assert hold.lines[3:] == dentist.lines[1:] and hold.hangup_when_done and hold.hangup_after_s == 240

    long_greeting = load_scenario("long-greeting")
    assert says("long-greeting") == [
        "Good morning and thank you for calling Bright Smile Dental. My name is Maria, I'm at the front desk today. "
        "How can I help you?",
        *DENTIST_REST,
    ]
    assert long_greeting.lines[0].pause_s == 1.2 and long_greeting.lines[1:] == dentist.lines[1:]


def test_the_menu_scenario_plays_as_written(rig: Any) -> None:
    r = rig("menu")
    prompt = r.wait_turns(1, timeout=5.0)[0]
    assert prompt.started_at - r.started >= 1.0  # its pause_s
    r.sleep_until(prompt.ended_at + 0.2)
    r.end.heard_dtmf("2")
    turns = r.wait_turns(2, timeout=3.0)
    assert turns[1].text == "Bright Smile Dental, this is Maria. How can I help you?"
    assert turns[1].started_at - turns[0].dtmf_heard_at == pytest.approx(1.0, abs=0.15)  # the line's pause_s


def test_the_unavailable_announcement_hangs_up_two_seconds_after_it(rig: Any) -> None:
    r = rig("unavailable")
    assert r.hung_up.wait(8.0)
    (turn,) = r.turns
    assert turn.text.startswith("The number you have dialled is not available")
    assert r.hangup_at is not None and r.hangup_at - turn.ended_at == pytest.approx(2.0, abs=0.15)
