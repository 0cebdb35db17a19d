"""What the emulated far end plays: speech rendered by Piper, WAV files, tones and hold music.

Every sound of a scenario is rendered once, in the background, at the network's 8 kHz before the
call needs it (SoundBank), then resampled to the route's rate.
"""

from __future__ import annotations

import threading
import wave
from collections.abc import Callable
from pathlib import Path

import numpy as np

from cellcall.emulator.scenario import Sound
from cellcall.voice import audio
from cellcall.voice.audio import resample

RENDER_RATE = 8000  # far-end sounds are prepared at the network's narrowband rate
MUSIC_NOTES = (262.0, 294.0, 330.0, 349.0, 392.0, 440.0, 494.0, 523.0)  # C major, one chord root each 0.4 s
MUSIC_CHORD_S = 0.4

Render = Callable[[str], bytes]


def tone_pcm(hz: float, ms: int, rate: int = RENDER_RATE, level: float = 0.3) -> bytes:
    """A sine tone with 10 ms fades (no clicks), s16le."""
    n = int(rate * ms / 1000)
    t = np.arange(n) / rate
    wave_ = np.sin(2 * np.pi * hz * t) * level
    ramp = min(n // 2, int(rate * 0.01))
    if ramp:
        fade = np.linspace(0.0, 1.0, ramp)
        wave_[:ramp] *= fade
        wave_[n - ramp :] *= fade[::-1]
    return (wave_ * 32767).astype("<i2").tobytes()


def music_pcm(seconds: float, rate: int = RENDER_RATE) -> bytes:
    """Telephone hold music: major chords (root, third, fifth) changing every 0.4 s, about -17 dBFS (RMS 4400)."""
    t = np.arange(int(seconds * rate)) / rate
    out = np.zeros_like(t)
    chord = int(MUSIC_CHORD_S * rate)
    ramp = int(rate * 0.01)
    fade = np.minimum(1.0, np.minimum(np.arange(chord), np.arange(chord)[::-1]) / ramp)
    for index, start in enumerate(range(0, t.size, chord)):
        part = slice(start, min(start + chord, t.size))
        root = MUSIC_NOTES[index % len(MUSIC_NOTES)]
        notes = sum(np.sin(2 * np.pi * root * ratio * t[part]) for ratio in (1.0, 1.26, 1.5))
        out[part] = notes * fade[: t[part].size]
    return (out * 0.19 * 32767 / 1.7).astype("<i2").tobytes()


def read_wav(path: Path, rate: int = RENDER_RATE) -> bytes:
    """A mono 16-bit WAV file as s16le at `rate` (mixed down and resampled when needed)."""
    try:
        return audio.read_wav(path, rate)[0]
    except (OSError, wave.Error, EOFError) as exc:
        raise ValueError(f"{path}: not a readable WAV file ({exc})") from None


_default_render: Render | None = None
_default_lock = threading.Lock()


def default_render() -> Render:
    """The project's Piper voice (loaded once per process), used when the emulator is given no renderer."""
    global _default_render
    with _default_lock:
        if _default_render is None:
            from cellcall.engines.tts import PiperSynthesizer  # heavy: only when a scenario speaks

            _default_render = PiperSynthesizer(voice="joe", sample_rate=RENDER_RATE, length_scale=1.1).render
        return _default_render


class SoundBank:
    """Renders every sound of a scenario once, in the background, at 8 kHz; resampled per route rate."""

    def __init__(self, sounds: list[Sound], render: Render | None) -> None:
        self._render = render
        self._pcm: dict[Sound, bytes] = {}
        self._ready: dict[Sound, threading.Event] = {s: threading.Event() for s in sounds}
        self.error: str | None = None
        threading.Thread(target=self._prepare, args=(sounds,), name="farend-render", daemon=True).start()

    def _prepare(self, sounds: list[Sound]) -> None:
        for sound in sounds:
            try:
                self._pcm[sound] = self._make(sound)
            except Exception as exc:  # noqa: BLE001 - reported to the caller of get(); the render is someone else's code
                self.error = f"far end cannot render {sound.label!r}: {exc}"
                self._pcm[sound] = b""
            self._ready[sound].set()

    def _make(self, sound: Sound) -> bytes:
        if sound.tone is not None:
            return tone_pcm(sound.tone.hz, sound.tone.ms)
        if sound.music_s is not None:
            return music_pcm(sound.music_s)
        if sound.wav is not None:
            return read_wav(sound.wav)
        assert sound.say is not None
        render = self._render or default_render()
        return render(sound.say)

    def get(self, sound: Sound, rate: int, stop: threading.Event) -> bytes | None:
        """The sound at `rate`, waiting for its render; None if `stop` is set first.

        A sound not known up front (a line made from what the agent said) is rendered now.
        """
        ready = self._ready.get(sound)
        if ready is None:
            try:
                return resample(self._make(sound), RENDER_RATE, rate)
            except Exception as exc:  # noqa: BLE001 - as in _prepare: reported, the line is skipped
                self.error = f"far end cannot render {sound.label!r}: {exc}"
                return b""
        while not ready.wait(0.05):
            if stop.is_set():
                return None
        return resample(self._pcm[sound], RENDER_RATE, rate)
