"""PCM helpers: frames, levels, fades, resampling and WAV round trips on real sample data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cellcall.voice.audio import (
    SILENCE_DBFS,
    dbfs,
    duration_ms,
    fade,
    frames,
    mix,
    read_wav,
    resample,
    rms,
    samples,
    silence,
    write_wav,
)


def sine(freq: float, ms: float, rate: int = 8000, amplitude: float = 0.5) -> bytes:
    t = np.arange(int(rate * ms / 1000)) / rate
    return (amplitude * 32767 * np.sin(2 * np.pi * freq * t)).astype("<i2").tobytes()


def test_frames_are_exact_20ms_and_pad_the_tail() -> None:
    pcm = bytes(range(256)) * 3  # 768 bytes = 2 frames + 128 bytes
    out = list(frames(pcm, 8000))
    assert [len(f) for f in out] == [320, 320, 320]
    assert b"".join(out)[:768] == pcm and out[-1][128:] == bytes(192)
    assert [len(f) for f in frames(bytes(1280), 16000)] == [640, 640]


def test_levels_of_silence_and_a_sine() -> None:
    assert rms(b"") == 0.0 and dbfs(silence(20, 8000)) == SILENCE_DBFS
    level = dbfs(sine(440, 100, amplitude=0.5))
    assert level == pytest.approx(20 * np.log10(0.5 / np.sqrt(2)), abs=0.2)  # -9 dBFS
    assert dbfs(sine(440, 100, amplitude=0.05)) == pytest.approx(level - 20, abs=0.2)


def test_fade_ramps_the_edges_only() -> None:
    pcm = sine(300, 200)
    out = samples(fade(pcm, 8000, fade_in_ms=10, fade_out_ms=10))
    orig = samples(pcm)
    assert abs(int(out[0])) == 0 and abs(int(out[-1])) < 400
    assert np.array_equal(out[80:-80], orig[80:-80])  # 10 ms = 80 samples at 8 kHz
    assert np.abs(out[:80]).max() < np.abs(orig[:80]).max() + 1


def test_resample_keeps_duration_and_pitch() -> None:
    pcm = sine(1000, 500, rate=16000)
    down = resample(pcm, 16000, 8000)
    assert duration_ms(down, 8000) == pytest.approx(500, abs=2)
    spectrum = np.abs(np.fft.rfft(samples(down).astype(float)))
    peak_hz = np.argmax(spectrum) * 8000 / samples(down).size
    assert peak_hz == pytest.approx(1000, abs=5)
    assert resample(pcm, 16000, 16000) is pcm


def test_mix_pads_and_clips() -> None:
    loud = np.full(4, 30000, dtype="<i2").tobytes()
    out = samples(mix(loud, loud[:4]))
    assert out.tolist() == [32767, 32767, 30000, 30000]


def test_wav_round_trip_and_resample_on_read(tmp_path: Path) -> None:
    pcm = sine(440, 300, rate=16000)
    path = tmp_path / "a.wav"
    write_wav(path, pcm, 16000)
    assert read_wav(path) == (pcm, 16000)
    down, rate = read_wav(path, sample_rate=8000)
    assert rate == 8000 and duration_ms(down, 8000) == pytest.approx(300, abs=2)
    stereo = tmp_path / "s.wav"
    write_wav(stereo, np.repeat(samples(pcm), 2).astype("<i2").tobytes(), 16000, channels=2)
    assert read_wav(stereo)[0] == pcm
