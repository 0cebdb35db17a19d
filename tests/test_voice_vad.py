"""VAD on real speech and real line conditions: speech found, hiss and tones (ring-back, beeps) refused."""

from __future__ import annotations

import numpy as np
import pytest
from speech import librivox_clips

from cellcall.voice.audio import frames
from cellcall.voice.vad import EnergyVad, WebrtcVad, flatness, make_vad, tonality

RATE = 8000


def tone(hz: list[float], seconds: float, level: float = 0.3) -> bytes:
    t = np.arange(int(RATE * seconds)) / RATE
    wave = sum(np.sin(2 * np.pi * f * t) for f in hz) / len(hz)
    return (wave * level * 32767).astype("<i2").tobytes()


def hiss(seconds: float, sigma: float) -> bytes:
    return np.random.default_rng(3).normal(0, sigma, int(RATE * seconds)).astype("<i2").tobytes()


def speech_share(vad, pcm: bytes) -> float:
    flags = [vad.is_speech(f) for f in frames(pcm, RATE)]
    return sum(flags) / len(flags)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["energy", "webrtc"])
def test_speech_is_found_and_silence_is_not(kind: str) -> None:
    """Real human speech (LibriVox clips at telephone quality) between stretches of line hiss."""
    vad = make_vad(kind, RATE)
    padded = hiss(1.0, 40) + librivox_clips()[1].pcm + hiss(1.0, 40)
    flags = [vad.is_speech(f) for f in frames(padded, RATE)]
    head, tail = flags[:50], flags[-40:]
    body = flags[50:-50]
    print(f"{kind}: speech share in the utterance {sum(body) / len(body):.2f}")
    assert sum(head) <= 2 and sum(tail) <= 2
    assert sum(body) / len(body) > 0.5


def test_energy_floor_adapts_to_a_noisy_line() -> None:
    vad = EnergyVad()
    loud_hiss = hiss(4.0, 600)  # about -35 dBFS of steady noise: above the fixed minimum level
    flags = [vad.is_speech(f) for f in frames(loud_hiss, RATE)]
    assert sum(flags[-100:]) == 0, "steady noise still called speech after 2 s"
    assert vad.floor_db > -40


@pytest.mark.parametrize("freqs", [[440, 480], [1000], [350, 440]])
def test_tones_are_not_speech(freqs: list[float]) -> None:
    pcm = tone(freqs, 2.0)
    assert tonality(pcm[:320]) > 0.9
    assert speech_share(EnergyVad(), pcm) == 0.0


def test_loud_white_noise_is_not_speech() -> None:
    burst = hiss(1.0, 3000)  # about -20 dBFS of crackle: loud, but flat
    assert flatness(burst[:320]) > 0.45
    vad = EnergyVad()
    flags = "".join("#" if vad.is_speech(f) else "." for f in frames(hiss(1.0, 20) + burst, RATE))
    assert flags.count("#") <= 10 and "###" not in flags  # never long enough to start a turn or a barge-in


def test_bad_choices_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="unknown VAD 'silero'"):
        make_vad("silero", RATE)
    with pytest.raises(ValueError, match="8, 16, 32 or 48 kHz"):
        WebrtcVad(11025)
