"""Barge-in verdicts and pausing the agent's audio: pure logic and the real Playback on the fake line."""

from __future__ import annotations

import time

import numpy as np
import pytest
from fakes import RATE, FakeLine, Script

from cellcall.line import LineEvent, LineEventKind
from cellcall.voice.echo import EchoGate
from cellcall.voice.interruption import (
    BACKCHANNEL_MAX_MS,
    DECIDE_MAX_S,
    QUIET_RESUME_MS,
    PausedReply,
    Verdict,
    is_backchannel,
    resume_offset,
)
from cellcall.voice.playback import Playback
from cellcall.voice.recording import Recorder


@pytest.mark.parametrize(
    "text", ["Mm-hm.", "Okay.", "Uh-huh, yeah.", "I see.", "Right, okay.", "", "(coughs)", "[NOISE]", "Mm.", "HM.", "Uh-hm."]
)
def test_listening_words_and_no_words_are_backchannels(text: str) -> None:
    assert is_backchannel(text)


@pytest.mark.parametrize("text", ["Wait.", "No, no.", "Sorry, what?", "Hold on.", "Yes, right, okay, sure.", "Yesterday."])
def test_anything_else_is_an_interruption(text: str) -> None:
    assert not is_backchannel(text)


@pytest.mark.parametrize("text", ["me", "Emma Mecha.", "and make them."])
def test_a_short_sound_heard_as_a_stray_word_is_a_backchannel_but_not_a_long_one(text: str) -> None:
    assert is_backchannel(text, speech_ms=400)
    assert not is_backchannel(text, speech_ms=650)


@pytest.mark.parametrize("text", ["Wait.", "No.", "Sorry?", "Hello?", "Hold on.", "That's not right.", "Don't.", "Wrong day."])
def test_short_words_that_want_the_floor_take_it_however_short(text: str) -> None:
    assert not is_backchannel(text, speech_ms=300)


def paused_for(speech_frames: int, quiet_frames: int) -> PausedReply:
    paused = PausedReply(object(), paused_at=10.06, onset=10.0, rest=[])
    for _ in range(speech_frames):
        paused.hear(True)
    for _ in range(quiet_frames):
        paused.hear(False)
    return paused


def test_long_speech_yields_whatever_its_words() -> None:
    paused = paused_for(BACKCHANNEL_MAX_MS // 20, 0)
    assert paused.verdict(10.8, "Mm-hm.", in_turn=True) is Verdict.YIELD


def test_short_sound_is_judged_by_its_words() -> None:
    paused = paused_for(15, 10)
    assert paused.verdict(10.6, None, in_turn=True) is Verdict.WAIT  # a turn is open: wait for its words
    assert paused.verdict(10.6, "Okay.", in_turn=True) is Verdict.RESUME
    assert paused.verdict(10.6, "Wait.", in_turn=True) is Verdict.YIELD


def test_a_blip_too_short_for_a_turn_goes_on_after_a_moment_of_quiet() -> None:
    assert paused_for(3, QUIET_RESUME_MS // 20 - 1).verdict(10.4, None, in_turn=False) is Verdict.WAIT
    assert paused_for(3, QUIET_RESUME_MS // 20).verdict(10.4, None, in_turn=False) is Verdict.RESUME


def test_no_verdict_in_time_gives_the_caller_the_floor() -> None:
    assert paused_for(15, 10).verdict(10.06 + DECIDE_MAX_S, None, in_turn=True) is Verdict.YIELD


def test_going_on_starts_at_the_word_gap_before_the_stop() -> None:
    tone = (np.sin(np.arange(RATE) * 2 * np.pi * 200 / RATE) * 8000).astype("<i2")
    gap_at = int(0.80 * RATE)
    tone[gap_at : gap_at + RATE // 50] = 0  # a 20 ms gap between two words
    pcm = tone.tobytes()
    offset = resume_offset(pcm, played=int(0.95 * RATE) * 2, rate=RATE)
    assert abs(offset - gap_at * 2) <= RATE // 50 * 2
    assert resume_offset(pcm, played=2, rate=RATE) == 2  # too little heard to look back: go on from there


def test_pause_returns_the_unheard_audio_of_that_reply_and_silences_the_line() -> None:
    line = FakeLine(Script([]))
    echo = EchoGate(RATE)
    playback = Playback(line, echo, Recorder(RATE, time.monotonic()))
    owner, other = object(), object()
    first, second = b"\x01\x00" * RATE, b"\x02\x00" * (RATE // 2)  # 1 s, then 0.5 s
    assert playback.write(playback.generation, owner, 0, first)
    assert playback.write(playback.generation, owner, 1, second)
    assert playback.write(playback.generation, other, 0, b"\x03\x00" * 80)
    started = 100.0
    tag = line._tx[0][1]
    playback.on_started(LineEvent(LineEventKind.TX_STARTED, tag=tag, at=started))
    generation = playback.generation
    rest = playback.pause(started + 0.5, owner)
    assert playback.generation == generation + 1 and line.cleared == 1 and not playback.busy(started + 0.5)
    assert [sentence for sentence, _ in rest] == [0, 1]  # the rest of the first chunk, then the queued one
    assert len(first) // 2 - 200 * RATE // 1000 <= len(rest[0][1]) <= len(first) // 2 + 300 * RATE // 1000 * 2
    assert rest[1][1] == second
    assert not playback.write(generation, owner, 2, b"\x04\x00")  # the old generation is refused
