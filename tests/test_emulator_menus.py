"""The emulated far end's phone menus, hold music and hang-up lines: validated, and played as written."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from cellcall.bench.answering import AnsweringRun, render
from cellcall.emulator.farend import FarEnd
from cellcall.emulator.scenario import Scenario, ScenarioError, builtin_names, load_scenario, parse_scenario
from cellcall.emulator.sounds import RENDER_RATE, music_pcm, tone_pcm

MENU = {"say": "For appointments, press 2.", "wait_dtmf": "2", "repeat": 2, "dtmf_wait_s": 0.6}
AFTER = {"say": "Maria speaking."}


def short_render(text: str) -> bytes:
    return tone_pcm(500, 150)


def far_end(lines: list[dict[str, object]]) -> tuple[FarEnd, threading.Event]:
    hung_up = threading.Event()
    end = FarEnd(parse_scenario({"lines": lines}), short_render, hangup=hung_up.set, press=lambda digit: None)
    end.route(time.monotonic(), RENDER_RATE)
    end.answered()
    return end, hung_up


def spoken(end: FarEnd) -> list[str]:
    return [turn.text for turn in end.metrics.turns]


def wait_for(condition, timeout: float = 5.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def test_the_right_keys_move_the_menu_on_and_time_their_arrival() -> None:
    end, hung_up = far_end([MENU, AFTER])
    assert wait_for(lambda: len(end.metrics.turns) == 1)
    time.sleep(0.25)  # the prompt has played
    end.heard_dtmf("2")
    assert wait_for(lambda: "Maria speaking." in spoken(end))
    menu = end.metrics.turns[0]
    assert menu.dtmf_heard_at is not None and menu.dtmf_heard_at >= menu.ended_at - 0.05
    assert spoken(end) == ["For appointments, press 2.", "Maria speaking."] and not hung_up.is_set()


def test_wrong_keys_replay_the_prompt_and_no_way_through_hangs_up() -> None:
    end, hung_up = far_end([MENU, AFTER])
    assert wait_for(lambda: len(end.metrics.turns) == 1)
    end.heard_dtmf("1")  # wrong: the prompt plays again
    assert wait_for(hung_up.is_set, timeout=5.0)
    assert spoken(end) == ["For appointments, press 2.", "For appointments, press 2."]  # repeat = 2, then a hang-up
    assert end.metrics.turns[0].dtmf_heard_at is None


def test_keys_pressed_before_a_menu_do_not_count_for_it() -> None:
    end, hung_up = far_end([{"dtmf": "5", "pause_s": 0.0}, MENU, AFTER])
    end.heard_dtmf("2")  # before the menu line started
    assert wait_for(hung_up.is_set, timeout=5.0) and "Maria speaking." not in spoken(end)


def test_a_hangup_line_ends_the_call_after_its_pause() -> None:
    end, hung_up = far_end([{"say": "The mailbox is full."}, {"pause_s": 0.3, "hangup": True}])
    started = time.monotonic()
    assert wait_for(hung_up.is_set) and time.monotonic() - started >= 0.4


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ({"say": "Menu.", "wait_dtmf": "2x"}, "outside 0-9"),
        ({"wait_dtmf": "2", "dtmf": "1"}, "wait_dtmf needs a prompt"),
        ({"say": "Menu.", "wait_dtmf": "2", "repeat": 0}, "repeat: 0 is outside"),
        ({"say": "Menu.", "wait_dtmf": "2", "dtmf_wait_s": 0}, "dtmf_wait_s: 0 is outside"),
        ({"music": {"s": 0}}, "music.s: 0 is outside"),
        ({"music": {"seconds": 5}}, "unknown key .seconds."),
        ({"say": "Bye.", "hangup": True}, "a line of its own"),
        ({"say": "Menu.", "wait_dmtf": "2"}, "did you mean 'wait_dtmf'"),
    ],
)
def test_bad_menu_music_and_hangup_lines_are_clear_errors(line: dict[str, object], message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        parse_scenario({"lines": [line]})


def test_hold_music_is_long_loud_and_the_same_every_time() -> None:
    pcm = music_pcm(2.0)
    level = float(np.sqrt(np.mean(np.frombuffer(pcm, dtype="<i2").astype(np.float64) ** 2)))
    assert len(pcm) == 2 * 2 * RENDER_RATE and 3000 < level < 6000 and pcm == music_pcm(2.0)


def test_every_builtin_scenario_loads() -> None:
    for name in builtin_names():
        assert isinstance(load_scenario(name), Scenario)
    assert load_scenario("menu").lines[0].wait_dtmf == "2"
    assert load_scenario("hold").lines[1].sound is not None and load_scenario("hold").lines[1].sound.music_s == 12.0


def test_the_answering_bench_counts_people_taken_for_machines() -> None:
    runs = [
        AnsweringRun("dentist", "human", "completed", "agent hung up", None, None, 0),
        AnsweringRun("long-greeting", "voicemail", "voicemail", "voicemail: message left", None, None, 1),
        AnsweringRun("voicemail", "voicemail", "voicemail", "voicemail: message left", 120.0, None, 0),
        AnsweringRun("menu", "ivr", "completed", "agent hung up", None, 430.0, 0),
    ]
    table = render(runs)
    assert "| people classified as machines | 1 | 0 |" in table
    assert "| human | 1 | 1 | 0 | 0 |" in table and "| voicemail | 0 | 1 | 0 | 0 |" in table
    assert "120 / 120 ms (n=1)" in table and "430 / 430 ms (n=1)" in table
    assert "| agent words spoken into a machine's prompt or hold music | 1 | 0 |" in table
