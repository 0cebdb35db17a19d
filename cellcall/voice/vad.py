"""Voice activity detection per 20 ms frame: an energy VAD with an adaptive noise floor, or webrtcvad.

The energy VAD follows the line's background level so hiss and comfort noise on a cellular call are
not speech. It refuses pure tones (ring-back, dial tones, beeps), which hold nearly all their energy
in a few FFT bins while speech spreads over many harmonics, and broadband noise bursts (crackle, a
corrupted stream), whose spectrum is flat where speech has formants.
"""

from __future__ import annotations

from collections import deque
from typing import Protocol

import numpy as np
import webrtcvad

from cellcall.line import FRAME_MS
from cellcall.voice.audio import dbfs, samples

VAD_KINDS = ("energy", "webrtc")


class Vad(Protocol):
    def is_speech(self, frame: bytes, level_db: float | None = None) -> bool:
        """Whether this frame holds speech; `level_db` is its dBFS when the caller already has it."""


def _power_spectrum(frame: bytes) -> np.ndarray | None:
    data = samples(frame).astype(np.float32)
    if data.size < 16 or not data.any():
        return None
    return np.abs(np.fft.rfft(data * np.hanning(data.size))) ** 2 + 1e-3


def tonality(frame: bytes, peak_bins: int = 4) -> float:
    """Share of the frame's spectral energy in its `peak_bins` strongest bins (1.0 = a pure tone)."""
    spectrum = _power_spectrum(frame)
    if spectrum is None:
        return 0.0
    return float(np.sort(spectrum)[-peak_bins:].sum() / spectrum.sum())


def flatness(frame: bytes) -> float:
    """Spectral flatness (geometric over arithmetic mean of the power spectrum): ~0.6 for white noise,
    well under 0.3 for voiced speech."""
    spectrum = _power_spectrum(frame)
    if spectrum is None:
        return 0.0
    return float(np.exp(np.mean(np.log(spectrum))) / np.mean(spectrum))


class EnergyVad:
    """Speech = louder than the noise floor by `threshold_db` and above `min_level_db`, and not a tone.

    The floor is the quietest frame of the last `window_s` (minimum statistics): speech always has
    dips between syllables, so the minimum is the line's noise even while someone talks, and a new
    steady noise (a car, a fan) becomes the floor within one window. Once speech has begun, a frame
    needs only `hold_db` over the floor (still not a tone, not flat like hiss): on a noisy line soft
    syllables sit under the onset threshold, and without the hold a sentence broke into turns.
    """

    def __init__(
        self,
        threshold_db: float = 12.0,
        hold_db: float = 4.0,
        min_level_db: float = -50.0,
        window_s: float = 2.0,
        initial_floor_db: float = -60.0,
        lowest_floor_db: float = -70.0,
        max_tonality: float = 0.9,
        max_flatness: float = 0.45,
    ) -> None:
        self.threshold_db = threshold_db
        self.hold_db = hold_db
        self._speaking = False  # the last frame was speech: this one needs only `hold_db` over the floor
        self.lowest_floor_db = lowest_floor_db  # digital silence between words must still pull the floor down
        self.min_level_db = min_level_db
        self.max_tonality = max_tonality
        self.max_flatness = max_flatness
        self._levels: deque[float] = deque([initial_floor_db], maxlen=int(window_s * 1000 / FRAME_MS))

    @property
    def floor_db(self) -> float:
        return min(self._levels)

    def is_speech(self, frame: bytes, level_db: float | None = None) -> bool:
        level = dbfs(frame) if level_db is None else level_db
        self._levels.append(max(level, self.lowest_floor_db))
        margin = self.hold_db if self._speaking else self.threshold_db
        self._speaking = (
            level >= self.min_level_db
            and level >= self.floor_db + margin
            and tonality(frame) < self.max_tonality
            and flatness(frame) < self.max_flatness
        )
        return self._speaking


class WebrtcVad:
    """Google's WebRTC VAD (via webrtcvad-wheels), gated by a minimum level so line hiss never counts."""

    def __init__(self, sample_rate: int, aggressiveness: int = 2, min_level_db: float = -50.0) -> None:
        if sample_rate not in (8000, 16000, 32000, 48000):
            raise ValueError(f"webrtc VAD needs 8, 16, 32 or 48 kHz audio, not {sample_rate} Hz")
        self.sample_rate = sample_rate
        self.min_level_db = min_level_db
        self._vad = webrtcvad.Vad(aggressiveness)

    def is_speech(self, frame: bytes, level_db: float | None = None) -> bool:
        level = dbfs(frame) if level_db is None else level_db
        return level >= self.min_level_db and self._vad.is_speech(frame, self.sample_rate)


def make_vad(kind: str, sample_rate: int) -> Vad:
    """The VAD named in settings.voice.vad."""
    if kind == "energy":
        return EnergyVad()
    if kind == "webrtc":
        return WebrtcVad(sample_rate)
    raise ValueError(f"unknown VAD {kind!r}: choose one of {', '.join(VAD_KINDS)}")
