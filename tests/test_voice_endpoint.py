"""Endpointing on a frame timeline: speech start, short pauses, speculative point, resumption, end of turn."""

from __future__ import annotations

import pytest

from cellcall.voice.endpoint import Endpointer, EndpointKind


def run(pattern: str, ep: Endpointer) -> list[tuple[EndpointKind, int]]:
    """Feed a pattern of frames ('#' speech, '.' silence); events with the frame index they fired at."""
    out = []
    for i, ch in enumerate(pattern):
        event = ep.push(ch == "#", at=(i + 1) * 0.02)
        if event:
            out.append((event.kind, i))
    return out


def test_blips_shorter_than_min_speech_are_ignored() -> None:
    ep = Endpointer(min_speech_ms=120, speculative_ms=200, endpoint_ms=500)
    assert run("##..###...#####" + "." * 30, ep) == []


def test_turn_start_speculative_and_end() -> None:
    ep = Endpointer(min_speech_ms=100, speculative_ms=200, endpoint_ms=500)
    events = run("#" * 20 + "." * 30, ep)
    assert events == [
        (EndpointKind.SPEECH_START, 4),
        (EndpointKind.SPECULATIVE, 29),  # 10 silent frames = 200 ms
        (EndpointKind.END_OF_TURN, 44),  # 25 silent frames = 500 ms
    ]


def test_end_of_turn_reports_when_speech_ended_and_start_when_it_began() -> None:
    ep = Endpointer(min_speech_ms=100, speculative_ms=200, endpoint_ms=400)
    got = []
    for i, ch in enumerate("...." + "#" * 10 + "." * 25):
        event = ep.push(ch == "#", at=(i + 1) * 0.02)
        if event:
            got.append(event)
    assert got[0].at == pytest.approx(0.08)  # speech began at the start of frame 4
    assert got[-1].kind is EndpointKind.END_OF_TURN and got[-1].at == pytest.approx(0.28)  # end of frame 13


def test_pause_shorter_than_endpoint_continues_the_turn_and_resumes() -> None:
    ep = Endpointer(min_speech_ms=100, speculative_ms=200, endpoint_ms=500)
    events = run("#" * 10 + "." * 15 + "#" * 10 + "." * 30, ep)
    kinds = [k for k, _ in events]
    assert kinds == [
        EndpointKind.SPEECH_START,
        EndpointKind.SPECULATIVE,
        EndpointKind.RESUMED,
        EndpointKind.SPECULATIVE,
        EndpointKind.END_OF_TURN,
    ]


def test_a_click_inside_a_pause_does_not_reset_it() -> None:
    ep = Endpointer(min_speech_ms=100, speculative_ms=200, endpoint_ms=500, resume_ms=60)
    # 10 speech, 12 silent, 1 click, 12 silent: 25 frames of pause incl. the click -> end of turn
    events = run("#" * 10 + "." * 12 + "#" + "." * 12, ep)
    assert events[-1] == (EndpointKind.END_OF_TURN, 34)


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="speculative"):
        Endpointer(min_speech_ms=100, speculative_ms=600, endpoint_ms=500)
    with pytest.raises(ValueError, match="min_speech_ms"):
        Endpointer(min_speech_ms=5, speculative_ms=200, endpoint_ms=500)
