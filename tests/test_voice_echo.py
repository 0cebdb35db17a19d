"""Echo-aware barge-in on real speech: the agent's own voice echoed back never counts as the caller,
while the caller talking over the agent does, whatever the echo's gain and delay."""

from __future__ import annotations

import numpy as np
import pytest
from speech import librivox_clips, piper

from cellcall.voice.audio import dbfs, frames, samples
from cellcall.voice.echo import EchoGate
from cellcall.voice.vad import EnergyVad

RATE = 8000
FRAME_S = 0.02
MARGIN_DB = 6.0


def scaled(pcm: bytes, gain_db: float) -> np.ndarray:
    return samples(pcm).astype(np.float32) * 10 ** (gain_db / 20)


def downlink(agent: bytes, caller: bytes | None, echo_gain_db: float, echo_delay_ms: int, caller_at_s: float) -> bytes:
    """What the far end sends back: our voice through an echo path, plus (optionally) the caller's speech."""
    delay = int(RATE * echo_delay_ms / 1000)
    total = len(agent) // 2 + delay + RATE
    mix = np.zeros(total, dtype=np.float32)
    mix[delay : delay + len(agent) // 2] += scaled(agent, echo_gain_db)
    if caller is not None:
        start = int(caller_at_s * RATE)
        voice = scaled(caller, 0.0)[: total - start]
        mix[start : start + voice.size] += voice
    mix += np.random.default_rng(7).normal(0, 30, total).astype(np.float32)  # line hiss
    return np.clip(mix, -32768, 32767).astype("<i2").tobytes()


def caller_frames(agent: bytes, down: bytes, played_at: float = 0.0) -> tuple[list[bool], EchoGate]:
    """Per downlink frame: VAD speech AND louder than the echo bound (frame i arrives at (i+1)*20 ms)."""
    gate, vad = EchoGate(RATE, margin_db=MARGIN_DB), EnergyVad()
    gate.played(played_at, agent)
    flags = []
    for i, frame in enumerate(frames(down, RATE)):
        level = dbfs(frame)
        flags.append(gate.judge(level, vad.is_speech(frame, level), (i + 1) * FRAME_S))
    return flags, gate


def agent_speech() -> bytes:
    """The agent's own voice (the Piper voice it speaks with), a few seconds of it."""
    return piper().render("Hi, this is Alex calling for Sam Taylor about moving a cleaning appointment.")


def longest_run(flags: list[bool]) -> int:
    best = run = 0
    for flag in flags:
        run = run + 1 if flag else 0
        best = max(best, run)
    return best


@pytest.mark.slow
@pytest.mark.parametrize(("gain_db", "delay_ms"), [(-18, 60), (-10, 150), (-25, 250), (-6, 20)])
def test_own_echo_never_makes_a_barge_in(gain_db: int, delay_ms: int) -> None:
    agent = agent_speech()
    flags, gate = caller_frames(agent, downlink(agent, None, gain_db, delay_ms, 0.0))
    print(
        f"echo {gain_db} dB / {delay_ms} ms: {sum(flags)} frames judged caller, longest run {longest_run(flags)}, "
        f"learnt delay {gate.delay} frames, gain {gate.gain}"
    )
    assert longest_run(flags) * 20 < 120  # the loop's barge-in needs 120 ms in a row


@pytest.mark.slow
def test_caller_talking_over_the_agent_is_heard_through_the_echo() -> None:
    """A real person (LibriVox, telephone quality) starts talking 1.2 s into the agent's sentence."""
    agent, caller = agent_speech(), librivox_clips()[0].pcm
    vad = EnergyVad()
    speaks = next(i for i, frame in enumerate(frames(caller, RATE)) if vad.is_speech(frame))  # the clip's first word
    flags, gate = caller_frames(agent, downlink(agent, caller, -18, 60, caller_at_s=1.2))
    onset = int(1.2 / FRAME_S) + speaks
    heard = next(i + 6 for i in range(onset, len(flags)) if all(flags[i : i + 6]))  # 120 ms of caller in a row
    print(
        f"the loop's 120 ms barge-in run completes {(heard - onset) * 20} ms after the caller's first word"
        f" (learnt delay {gate.delay} frames, gain {gate.gain:.1f} dB)"
    )
    assert longest_run(flags[: int(1.2 / FRAME_S)]) < 6, "the echo alone made a barge-in"
    assert (heard - onset) * 20 <= 600


def test_echo_bound_follows_what_played_and_when() -> None:
    gate = EchoGate(RATE, margin_db=10.0, window_ms=400.0)
    tone = (np.sin(np.arange(RATE) * 2 * np.pi * 300 / RATE) * 16000).astype("<i2").tobytes()  # 1 s, about -9 dBFS
    gate.played(10.0, tone)  # slots 500..549
    assert gate.expected_echo_db(499) == pytest.approx(-96.0)  # nothing played yet
    assert gate.expected_echo_db(525) == pytest.approx(dbfs(tone) + gate.initial_gain_db, abs=0.5)
    assert gate.expected_echo_db(565) > -30.0  # 300 ms after the end: its echo may still arrive
    assert gate.expected_echo_db(575) == pytest.approx(-96.0)  # 500 ms after the end: no echo expected
    gate.stop(10.2)  # a barge-in cut it at 10.2 s: nothing after that ever played
    assert gate.expected_echo_db(525) > -30.0 and gate.expected_echo_db(535) == pytest.approx(-96.0)


def test_echo_path_delay_and_gain_are_learnt_from_levels() -> None:
    rng = np.random.default_rng(5)
    envelope = np.repeat(rng.uniform(-40, -12, 150), 1)  # 3 s of our frame levels, dBFS
    pcm = b"".join((np.ones(160) * 32768 * 10 ** (lv / 20)).astype("<i2").tobytes() for lv in envelope)
    gate = EchoGate(RATE, margin_db=10.0)
    gate.played(0.0, pcm)
    echo_delay, echo_gain = 7, -20.0  # 140 ms, -20 dB
    for i in range(150):
        own = envelope[i - echo_delay] if i >= echo_delay else -90.0
        gate.judge(max(own + echo_gain, -70.0), True, (i + 1) * FRAME_S)
    assert gate.delay is not None and abs(gate.delay - echo_delay) <= 1
    assert gate.gain == pytest.approx(echo_gain, abs=1.0)
