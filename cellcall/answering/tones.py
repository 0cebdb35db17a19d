"""Beeps and music on the far end's audio, heard frame by frame on the voice loop's thread.

A mailbox's beep is one steady tone (usually 440-1400 Hz, 0.1-2 s): nearly all of a 20 ms frame's
energy sits at one frequency, frame after frame. Hold music is loud and tonal for seconds on end while
its pitch moves. Both are cheap to hear from one FFT per frame (a few microseconds at 8 kHz); the
energy VAD refuses tones, so without this the loop hears a beep or hold music as silence.

Speech is tonal too (voiced frames hold most energy in a few harmonics), so music is told from a voice by
how long the spectrum stays put: a held note looks the same frame after frame for hundreds of ms, while a
voice changes its sound every 50-150 ms. The spectrum for this is taken over 40 ms (the frame and the one
before: 25 Hz bins, so a chord's close notes do not beat inside a bin). Measured on piper's speech against
synthetic hold music: frames in steady runs of >= 8 frames (160 ms) are 0 % of speech and 55 % of music.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from cellcall.line import FRAME_MS
from cellcall.voice.audio import samples

BEEP_HZ = (350.0, 2100.0)  # where mailbox beeps are
BEEP_MIN_MS = 100  # shorter is a click, or a note of music
BEEP_MAX_MS = 2500  # longer is a dial tone, a fax, or a held note
BEEP_PURITY = 0.8  # share of the frame's energy within 1 bin of the peak
BEEP_DRIFT_HZ = 60.0  # a beep holds its pitch
MIN_LEVEL = 150.0  # int16 RMS below which a frame is silence (about -47 dBFS)
MUSIC_WINDOW_S = 3.0  # music is judged over this much audio
MUSIC_SHARE = 0.3  # of the window's frames at least MUSIC_RUN frames into a steady run
MUSIC_RUN = 8  # frames (160 ms) of one unchanging sound: a held note, not a syllable
MUSIC_TONALITY = 0.5  # energy share of the 8 strongest bins: noise spreads wider
MUSIC_STEADY = 0.95  # cosine of a frame's magnitude spectrum with the previous frame's


@dataclass(frozen=True)
class FrameTone:
    """One frame's pitch and how pure and loud it is."""

    rms: float
    peak_hz: float
    purity: float  # energy within one bin of the peak / all energy
    tonality: float  # energy in the 8 strongest bins / all energy


def frame_tone(frame: bytes, rate: int) -> FrameTone:
    data = samples(frame).astype(np.float32)
    rms = float(np.sqrt(np.mean(data**2))) if data.size else 0.0
    if data.size < 32 or rms < MIN_LEVEL:
        return FrameTone(rms, 0.0, 0.0, 0.0)
    magnitude = np.abs(np.fft.rfft(data * np.hanning(data.size)))
    spectrum = magnitude**2
    total = float(spectrum.sum()) or 1.0
    peak = int(np.argmax(spectrum))
    purity = float(spectrum[max(peak - 1, 0) : peak + 2].sum()) / total
    tonality = float(np.sort(spectrum)[-8:].sum()) / total
    return FrameTone(rms, peak * rate / data.size, purity, tonality)


def unit_spectrum(pcm: np.ndarray) -> np.ndarray | None:
    """The unit-length magnitude spectrum of a stretch of audio, or None when it is near silence."""
    if pcm.size < 32 or float(np.sqrt(np.mean(pcm**2))) < MIN_LEVEL * 2:
        return None
    magnitude = np.abs(np.fft.rfft(pcm * np.hanning(pcm.size)))
    norm = float(np.linalg.norm(magnitude))
    return magnitude / norm if norm else None


class ToneMeter:
    """Finds beeps (their end times) and whether music is playing; fed every downlink frame.

    Owned by the voice loop's thread: `feed` and the readers run there only."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.beep_ends: list[float] = []  # monotonic times at which a beep ended
        self._run: list[float] = []  # pitches of the steady-tone frames in a row so far
        self._musical: deque[bool] = deque(maxlen=int(MUSIC_WINDOW_S * 1000 / FRAME_MS))
        self._last_frame = np.zeros(0, dtype=np.float32)
        self._last_spectrum: np.ndarray | None = None  # over the 40 ms that ended with the last frame
        self._steady_run = 0  # frames in a row that sounded like the one before

    def feed(self, frame: bytes, now: float) -> None:
        tone = frame_tone(frame, self.rate)
        data = samples(frame).astype(np.float32)
        spectrum = unit_spectrum(np.concatenate((self._last_frame, data)))
        previous, self._last_frame, self._last_spectrum = self._last_spectrum, data, spectrum
        steady_sound = (
            tone.tonality >= MUSIC_TONALITY
            and spectrum is not None
            and previous is not None
            and previous.size == spectrum.size
            and float(previous @ spectrum) >= MUSIC_STEADY
        )
        self._steady_run = self._steady_run + 1 if steady_sound else 0
        self._musical.append(self._steady_run >= MUSIC_RUN)
        steady = tone.purity >= BEEP_PURITY and BEEP_HZ[0] <= tone.peak_hz <= BEEP_HZ[1]
        if steady and (not self._run or abs(tone.peak_hz - self._run[0]) <= BEEP_DRIFT_HZ):
            self._run.append(tone.peak_hz)
            return
        if BEEP_MIN_MS <= len(self._run) * FRAME_MS <= BEEP_MAX_MS:
            self.beep_ends.append(now)
        self._run = [tone.peak_hz] if steady else []

    def beep_since(self, since: float) -> float | None:
        """When the last beep that ended after `since` ended, or None."""
        return next((end for end in reversed(self.beep_ends) if end > since), None)

    def in_beep(self) -> bool:
        """A steady tone is playing now (wait for its end before speaking)."""
        return len(self._run) * FRAME_MS >= BEEP_MIN_MS // 2

    def music(self) -> bool:
        """Most of the last few seconds were loud and tonal: hold music, not a voice."""
        full = len(self._musical) == self._musical.maxlen
        return full and sum(self._musical) >= MUSIC_SHARE * len(self._musical)
