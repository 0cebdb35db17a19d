"""faster-whisper speech-to-text for line audio, on a short window or through `transcribe()`.

Whisper wants 16 kHz: the audio is resampled with soxr once, here, from the rate this transcriber
was built for (`sample_rate`), and not at all when that is already 16 kHz (the engines are built
for 16 kHz so the voice loop converts each route's audio exactly once: 8k -> 16k, or nothing on
a 16 kHz VoLTE route).

Two decode paths (`stt.window_s`): with a window (default 8 s, whisper base) CTranslate2 is
called directly on the audio padded to that window (window.py), and a degenerate output falls back
to faster-whisper's `transcribe()`, the 30 s path; with window 0 (or 30) every decode takes that
path, as before. One lock serialises decodes: the CPU is the bottleneck anyway, and the model
object is shared by every call in the process.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import soxr

from cellcall.engines import EngineError, Transcript
from cellcall.engines.models import whisper_model_dir
from cellcall.engines.stt.window import (
    FULL_WINDOW_S,
    WHISPER_RATE,
    decode_window,
    is_degenerate,
    window_for,
)

DEFAULT_LANGUAGE = "en"  # the windowed path needs a language token; calls are English unless a goal says


def _pcm_to_float(pcm: bytes) -> np.ndarray:
    if len(pcm) % 2:
        raise EngineError(f"PCM must be s16le (an even number of bytes), got {len(pcm)} bytes")
    return np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0


class WhisperTranscriber:
    """Implements `Transcriber`: CPU int8, beam, threads and window from settings; never downloads."""

    def __init__(
        self,
        model: str = "tiny.en",
        threads: int = 2,
        beam_size: int = 1,
        sample_rate: int = 8000,
        cache_dir: Path | None = None,
        window_s: float = 0.0,
        device: str = "cpu",
    ) -> None:
        if threads < 1 or beam_size < 1 or sample_rate <= 0:
            raise EngineError(
                f"stt needs threads >= 1, beam_size >= 1, a positive rate; got {threads}, {beam_size}, {sample_rate}"
            )
        if not 0 <= window_s <= FULL_WINDOW_S:
            raise EngineError(f"stt.window_s must be between 0 (off) and {FULL_WINDOW_S:.0f} seconds, got {window_s}")
        from faster_whisper import WhisperModel

        folder = whisper_model_dir(model, cache_dir or Path.home() / ".cache" / "cellcall")
        try:
            compute_type = "float16" if device == "cuda" else "int8"  # the relay on a GPU box: device = "cuda"
            self._model = WhisperModel(
                str(folder), device=device, compute_type=compute_type, cpu_threads=threads, local_files_only=True
            )
        except Exception as exc:  # ctranslate2 raises RuntimeError/ValueError for bad folders
            raise EngineError(f"cannot load whisper model from {folder}: {exc}") from exc
        self._beam_size = beam_size
        self._window_s = 0.0 if window_s >= FULL_WINDOW_S else window_s
        self._lock = threading.Lock()
        self.sample_rate = sample_rate
        self.fallbacks = 0  # windowed decodes that were degenerate and decoded again over 30 s
        path = "transcribe" if not self._window_s else f"window {self._window_s:g} s"
        self.name = f"faster-whisper:{model if '/' not in model else folder.name} ({path})"
        self._warm_up()

    def _warm_up(self) -> None:
        """Decode 1 s of silence at load time (engines load while the phone rings): a fresh model's
        first decode allocates its buffers, measured ~100 ms slower, and that would be the caller's first turn."""
        silence = np.zeros(WHISPER_RATE, dtype=np.float32)
        if self._window_s:
            decode_window(self._model, silence, self._window_s, DEFAULT_LANGUAGE, self._beam_size)
        else:
            self._transcribe_30s(silence, DEFAULT_LANGUAGE)

    def _language(self, language: str | None) -> str | None:
        if not self._model.model.is_multilingual:
            return "en"
        return language.split("-")[0].lower() if language else None

    def _transcribe_30s(self, audio: np.ndarray, language: str | None) -> str:
        segments, _info = self._model.transcribe(
            audio,
            language=language,
            beam_size=self._beam_size,
            condition_on_previous_text=False,
            without_timestamps=True,
            vad_filter=False,
        )
        return " ".join(segment.text.strip() for segment in segments).strip()

    def _decode(self, samples: np.ndarray, language: str | None = None) -> str:
        """Text of float samples at `sample_rate`."""
        if len(samples) < self.sample_rate * 0.1:
            return ""
        audio = soxr.resample(samples, self.sample_rate, WHISPER_RATE) if self.sample_rate != WHISPER_RATE else samples
        code = self._language(language)
        window = window_for(len(audio) / WHISPER_RATE, self._window_s)
        with self._lock:
            if window is not None:
                result = decode_window(self._model, audio, window, code or DEFAULT_LANGUAGE, self._beam_size)
                if not is_degenerate(result):
                    return result.text
                self.fallbacks += 1
            return self._transcribe_30s(audio, code)

    def transcribe(self, pcm: bytes, language: str | None = None) -> Transcript:
        started = time.perf_counter()
        samples = _pcm_to_float(pcm)
        text = self._decode(samples, language)
        return Transcript(text, len(samples) / self.sample_rate, time.perf_counter() - started)
