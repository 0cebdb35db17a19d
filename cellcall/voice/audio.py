"""PCM helpers for the voice loop: 20 ms frames, levels in dBFS, fades, resampling, WAV files.

Everything is s16le mono bytes, the format the line speaks, so no layer converts twice.
Levels are computed with numpy on one frame at a time: microseconds, cheap enough for the frame loop.
"""

from __future__ import annotations

import math
import wave
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soxr

from cellcall.line import frame_bytes

SILENCE_DBFS = -96.0  # the level reported for digital silence (log of zero)
FULL_SCALE = 32768.0


def samples(pcm: bytes) -> np.ndarray:
    """The int16 samples of s16le bytes (a view, no copy)."""
    return np.frombuffer(pcm, dtype="<i2")


def frames(pcm: bytes, sample_rate: int) -> Iterator[bytes]:
    """Split PCM into whole 20 ms frames; a short tail is zero-padded so no audio is lost."""
    size = frame_bytes(sample_rate)
    for start in range(0, len(pcm), size):
        chunk = pcm[start : start + size]
        yield chunk if len(chunk) == size else chunk + bytes(size - len(chunk))


def rms(pcm: bytes) -> float:
    """Root mean square of the samples, in int16 units (0 for empty input)."""
    data = samples(pcm)
    if data.size == 0:
        return 0.0
    as_float = data.astype(np.float32)
    return float(np.sqrt(np.mean(as_float * as_float)))


def dbfs(pcm: bytes) -> float:
    """Level relative to full scale: 0 dBFS is a full-scale square wave, silence is SILENCE_DBFS."""
    level = rms(pcm)
    if level <= 0.0:
        return SILENCE_DBFS
    return max(SILENCE_DBFS, 20.0 * math.log10(level / FULL_SCALE))


def duration_ms(pcm: bytes, sample_rate: int) -> float:
    """How long `pcm` plays, in milliseconds."""
    return len(pcm) / 2 / sample_rate * 1000.0


def silence(ms: float, sample_rate: int) -> bytes:
    """`ms` of digital silence, rounded down to whole samples."""
    return bytes(int(sample_rate * ms / 1000.0) * 2)


def fade(pcm: bytes, sample_rate: int, fade_in_ms: float = 0.0, fade_out_ms: float = 0.0) -> bytes:
    """Linear fade in/out at the edges: cutting audio mid-waveform clicks on a phone line."""
    data = samples(pcm).astype(np.float32)
    for ms, at_start in ((fade_in_ms, True), (fade_out_ms, False)):
        n = min(int(sample_rate * ms / 1000.0), data.size)
        if n <= 0:
            continue
        ramp = np.linspace(0.0, 1.0, n, endpoint=False, dtype=np.float32)
        if at_start:
            data[:n] *= ramp
        else:
            data[-n:] *= ramp[::-1]
    return data.astype("<i2").tobytes()


def resample(pcm: bytes, from_rate: int, to_rate: int) -> bytes:
    """High-quality resampling with soxr (e.g. the 16 kHz VoLTE downlink to the 8 kHz pipeline)."""
    if from_rate == to_rate or not pcm:
        return pcm
    out = soxr.resample(samples(pcm), from_rate, to_rate, quality="HQ")
    return np.asarray(out, dtype="<i2").tobytes()


class StreamResampler:
    """Resamples a stream chunk by chunk with filter state kept across chunks (no clicks at frame edges)."""

    def __init__(self, from_rate: int, to_rate: int) -> None:
        self.passthrough = from_rate == to_rate
        self._stream = None if self.passthrough else soxr.ResampleStream(from_rate, to_rate, 1, dtype="int16")

    def __call__(self, pcm: bytes) -> bytes:
        if self._stream is None:
            return pcm
        return self._stream.resample_chunk(samples(pcm).astype(np.int16)).astype("<i2").tobytes()


def mix(a: bytes, b: bytes) -> bytes:
    """Sum two PCM streams sample by sample with clipping; the shorter is padded with silence."""
    x, y = samples(a).astype(np.int32), samples(b).astype(np.int32)
    size = max(x.size, y.size)
    total = np.zeros(size, dtype=np.int32)
    total[: x.size] += x
    total[: y.size] += y
    return np.clip(total, -32768, 32767).astype("<i2").tobytes()


def write_wav(path: Path, pcm: bytes, sample_rate: int, channels: int = 1) -> None:
    """A plain 16-bit PCM WAV file (interleaved samples when `channels` > 1)."""
    with wave.open(str(path), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(sample_rate)
        out.writeframes(pcm)


def read_wav(path: Path, sample_rate: int | None = None) -> tuple[bytes, int]:
    """Mono 16-bit PCM from a WAV file, mixed down and resampled to `sample_rate` if given."""
    with wave.open(str(path), "rb") as src:
        if src.getsampwidth() != 2:
            raise ValueError(f"{path}: only 16-bit PCM WAV is supported, got {8 * src.getsampwidth()}-bit")
        rate, channels = src.getframerate(), src.getnchannels()
        data = samples(src.readframes(src.getnframes()))
    if channels > 1:
        data = data.reshape(-1, channels).mean(axis=1).astype("<i2")
    pcm = data.tobytes()
    if sample_rate is not None and sample_rate != rate:
        return resample(pcm, rate, sample_rate), sample_rate
    return pcm, rate
