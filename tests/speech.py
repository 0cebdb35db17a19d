"""Real human speech at telephone quality for the engine tests, and the models they share.

The LibriVox clips with reference transcripts ship in the pocketsphinx 5.1.1 source
distribution; it is fetched once with pip into ~/.cache/cellcall-test/ and reused. Clips are
made to sound like a phone line: 8 kHz, band-limited to 300-3400 Hz, G.711 mu-law round trip.
"""

from __future__ import annotations

import functools
import re
import subprocess
import sys
import tarfile
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import soxr

from cellcall.bench.wer import word_error_rate as wer  # noqa: F401 - the tests import it from here

if TYPE_CHECKING:
    from cellcall.engines.llm.embedded import EmbeddedChatModel
    from cellcall.engines.stt import WhisperTranscriber
    from cellcall.engines.tts import PiperSynthesizer

CACHE = Path.home() / ".cache" / "cellcall-test" / "pocketsphinx"
SDIST = "pocketsphinx-5.1.1.tar.gz"
LIBRIVOX = "pocketsphinx-5.1.1/test/data/librivox"
LINE_RATE = 8000
MU = 255.0


@dataclass(frozen=True)
class Clip:
    name: str
    reference: str
    pcm: bytes  # 8 kHz s16le, telephone quality

    @property
    def seconds(self) -> float:
        return len(self.pcm) / 2 / LINE_RATE


def _librivox_dir() -> Path:
    folder = CACHE / LIBRIVOX
    if not (folder / "transcription").is_file():
        CACHE.mkdir(parents=True, exist_ok=True)
        if not (CACHE / SDIST).is_file():
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "download",
                    "--no-deps",
                    "--no-binary",
                    ":all:",
                    "pocketsphinx==5.1.1",
                    "-d",
                    str(CACHE),
                ],
                check=True,
                capture_output=True,
            )
        with tarfile.open(CACHE / SDIST) as sdist:
            members = [m for m in sdist.getmembers() if m.name.startswith(LIBRIVOX + "/") and m.isfile()]
            sdist.extractall(CACHE, members=members, filter="data")
    return folder


def mulaw_round_trip(samples: np.ndarray) -> np.ndarray:
    """G.711 mu-law encode to 8 bits and decode again (float in [-1, 1] in and out)."""
    x = np.clip(samples, -1.0, 1.0)
    encoded = np.sign(x) * np.log1p(MU * np.abs(x)) / np.log1p(MU)
    quantised = np.round((encoded + 1.0) * 127.5) / 127.5 - 1.0  # 256 levels
    return np.sign(quantised) * np.expm1(np.abs(quantised) * np.log1p(MU)) / MU


def band_limit(samples: np.ndarray, rate: int, low: float = 300.0, high: float = 3400.0) -> np.ndarray:
    spectrum = np.fft.rfft(samples)
    freqs = np.fft.rfftfreq(len(samples), 1.0 / rate)
    spectrum[(freqs < low) | (freqs > high)] = 0
    return np.fft.irfft(spectrum, n=len(samples))


def telephone(samples: np.ndarray, rate: int) -> bytes:
    """Float samples at `rate` -> 8 kHz band-limited mu-law-degraded s16le PCM."""
    line = soxr.resample(samples.astype(np.float32), rate, LINE_RATE) if rate != LINE_RATE else samples
    line = mulaw_round_trip(band_limit(line, LINE_RATE))
    return (np.clip(line, -1.0, 1.0) * 32767).astype("<i2").tobytes()


def _read_wav(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path)) as wav:
        assert wav.getsampwidth() == 2 and wav.getnchannels() == 1, path
        return np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").astype(np.float32) / 32768.0, wav.getframerate()


@functools.cache
def librivox_clips() -> tuple[Clip, ...]:
    folder = _librivox_dir()
    clips = []
    for line in (folder / "transcription").read_text().splitlines():
        match = re.match(r"<s>\s*(.*?)\s*</s>\s*\((\S+)\)", line)
        if match:
            samples, rate = _read_wav(folder / f"{match.group(2)}.wav")
            clips.append(Clip(match.group(2), match.group(1), telephone(samples, rate)))
    assert len(clips) == 5, "the pocketsphinx sdist should hold five LibriVox clips"
    return tuple(clips)


def rms(pcm: bytes) -> float:
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    return float(np.sqrt(np.mean(samples**2))) if len(samples) else 0.0


@functools.cache
def whisper() -> WhisperTranscriber:
    """One tiny.en transcriber per test process (loading it again per module wastes seconds)."""
    from cellcall.engines.stt import WhisperTranscriber

    return WhisperTranscriber("tiny.en", threads=2, beam_size=1)


@functools.cache
def piper() -> PiperSynthesizer:
    from cellcall.engines.tts import PiperSynthesizer

    return PiperSynthesizer("joe")


@functools.cache
def embedded_llm() -> EmbeddedChatModel:
    """The default embedded Qwen2.5 0.5B, joined into the user cache once.

    One thread: on this shared 2-core machine two llama.cpp threads wait on each other (measured
    several times slower under load), and the tests measure behaviour, not peak speed."""
    from cellcall.engines.llm.embedded import EmbeddedChatModel
    from cellcall.engines.models import gguf_model

    return EmbeddedChatModel(gguf_model("qwen2.5-0.5b", Path.home() / ".cache" / "cellcall"), threads=1, context=2048)
