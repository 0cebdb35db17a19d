"""speexdsp's echo canceller as the loop uses it: our own voice leaves the downlink, the caller stays."""

from __future__ import annotations

import numpy as np
import pytest
from fakes import speech_like

from cellcall.config import ConfigError, load_settings
from cellcall.voice.aec import SpeexCanceller, make_canceller, residual_db
from cellcall.voice.echo import EchoGate

RATE = 8000
FRAME = 160


def frames(pcm: np.ndarray) -> list[bytes]:
    return [pcm[i : i + FRAME].tobytes() for i in range(0, pcm.size - FRAME + 1, FRAME)]


def echo_of(own: np.ndarray, gain_db: float, delay_ms: int) -> np.ndarray:
    delay = RATE * delay_ms // 1000
    out = np.zeros(own.size, dtype=np.float64)
    out[delay:] = own[: own.size - delay] * 10 ** (gain_db / 20)
    return out


def test_the_echo_of_our_voice_is_cancelled_and_the_caller_is_kept() -> None:
    own = np.frombuffer(speech_like(6.0, 9000), dtype="<i2").astype(np.float64)
    # another voice (rendered at 11 kHz, played at 8: lower pitch and formants), so not a copy of ours
    caller = np.frombuffer(speech_like(6.0 * RATE / 11000, 6000, rate=11000), dtype="<i2").astype(np.float64)
    caller = np.pad(caller, (0, own.size - caller.size))
    caller[: 4 * RATE] = 0  # the caller speaks over our voice only in the last 2 s
    echo = echo_of(own, -12.0, 60)
    canceller = SpeexCanceller(RATE)
    cleaned = []
    for slot, (mine, heard) in enumerate(zip(frames(own.astype("<i2")), frames((echo + caller).astype("<i2")), strict=True)):
        canceller.played(slot, mine)
        cleaned.append(canceller.clean(heard, slot))
    canceller.close()
    before, after = frames((echo + caller).astype("<i2")), cleaned
    echo_only = residual_db(b"".join(before[100:200]), b"".join(after[100:200]))  # seconds 2-4: echo alone
    alone = frames(caller.astype("<i2"))
    kept = residual_db(b"".join(alone[200:]), b"".join(after[200:]))  # seconds 4-6: the caller over our voice
    print(f"echo cancelled by {echo_only:.1f} dB; the caller, talking over it, comes out {kept:.1f} dB quieter")
    assert echo_only >= 10.0  # the echo is mostly gone
    assert kept <= 4.5  # the caller's words are not (speex's residual suppression takes a little in double talk)


def test_the_gate_judges_the_cleaned_frame_and_without_a_canceller_passes_it_as_is() -> None:
    frame = np.full(FRAME, 1000, dtype="<i2").tobytes()
    assert EchoGate(RATE).clean(frame, 5) == frame
    gate = EchoGate(RATE, canceller=SpeexCanceller(RATE))
    gate.played(0.0, frame * 10)
    assert len(gate.clean(frame, 0)) == len(frame)


def test_a_wrong_canceller_name_is_a_clear_config_error() -> None:
    with pytest.raises(ConfigError, match='did you mean "speex"'):
        load_settings(env={"CELLCALL_VOICE_ECHO_CANCELLER": "speexx"})
    assert make_canceller("none", RATE) is None
