"""faster-whisper speech-to-text for 8 kHz line audio, whole or incremental.

Whisper expects 16 kHz, so line audio is resampled with soxr first. The incremental mode
decodes the utterance in a background thread stretch by stretch, at each pause of the caller;
when the turn ends, the decode started at the final pause already is the answer, so the text is
ready about when the endpoint fires instead of one whole-utterance decode after it.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import soxr

from cellcall.engines import EngineError, Transcript
from cellcall.engines.models import whisper_model_dir

WHISPER_RATE = 16000
PAUSE_S = 0.2  # trailing silence that commits the text of the stretch before it
SILENCE_RMS = 250.0  # int16 RMS of a 20 ms frame below which it counts as silence
_FRAME_S = 0.02


def _pcm_to_float(pcm: bytes) -> np.ndarray:
    if len(pcm) % 2:
        raise EngineError(f"PCM must be s16le (an even number of bytes), got {len(pcm)} bytes")
    return np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0


def is_silence(samples: np.ndarray, sample_rate: int) -> bool:
    """True when no 20 ms frame of int16-scaled float samples is louder than SILENCE_RMS."""
    frame = max(1, int(sample_rate * _FRAME_S))
    usable = len(samples) - len(samples) % frame
    if usable == 0:
        return bool(len(samples) == 0 or np.sqrt(np.mean((samples * 32768.0) ** 2)) < SILENCE_RMS)
    frames = (samples[:usable] * 32768.0).reshape(-1, frame)
    return bool(np.sqrt(np.mean(frames**2, axis=1)).max() < SILENCE_RMS)


class WhisperTranscriber:
    """Implements `Transcriber`: CPU int8, beam and threads from settings; never downloads."""

    def __init__(
        self,
        model: str = "tiny.en",
        threads: int = 2,
        beam_size: int = 1,
        sample_rate: int = 8000,
        cache_dir: Path | None = None,
    ) -> None:
        if threads < 1 or beam_size < 1 or sample_rate <= 0:
            raise EngineError(
                f"stt needs threads >= 1, beam_size >= 1, a positive rate; got {threads}, {beam_size}, {sample_rate}"
            )
        from faster_whisper import WhisperModel

        folder = whisper_model_dir(model, cache_dir or Path.home() / ".cache" / "cellcall")
        try:
            self._model = WhisperModel(str(folder), device="cpu", compute_type="int8", cpu_threads=threads, local_files_only=True)
        except Exception as exc:  # ctranslate2 raises RuntimeError/ValueError for bad folders
            raise EngineError(f"cannot load whisper model from {folder}: {exc}") from exc
        self._beam_size = beam_size
        self._lock = threading.Lock()  # one decode at a time: the CPU is the bottleneck anyway
        self.sample_rate = sample_rate
        self.name = f"faster-whisper:{model if '/' not in model else folder.name}"

    def _language(self, language: str | None) -> str | None:
        if not self._model.model.is_multilingual:
            return "en"
        return language.split("-")[0].lower() if language else None

    def decode(self, samples: np.ndarray, language: str | None = None, prompt: str | None = None) -> str:
        """Text of float samples at `sample_rate`; `prompt` is the text said just before them."""
        if len(samples) < self.sample_rate * 0.1:
            return ""
        audio = soxr.resample(samples, self.sample_rate, WHISPER_RATE) if self.sample_rate != WHISPER_RATE else samples
        with self._lock:
            segments, _info = self._model.transcribe(
                audio,
                language=self._language(language),
                beam_size=self._beam_size,
                condition_on_previous_text=False,
                without_timestamps=True,
                vad_filter=False,
                initial_prompt=prompt,
            )
            return " ".join(segment.text.strip() for segment in segments).strip()

    def transcribe(self, pcm: bytes, language: str | None = None) -> Transcript:
        started = time.perf_counter()
        samples = _pcm_to_float(pcm)
        text = self.decode(samples, language)
        return Transcript(text, len(samples) / self.sample_rate, time.perf_counter() - started)

    def incremental(self, language: str | None = None) -> IncrementalWhisper:
        return IncrementalWhisper(self, language)


class IncrementalWhisper:
    """Implements `IncrementalTranscription`: commits the text of each pause-delimited stretch.

    At every pause a daemon thread decodes the audio since the last pause and commits its text
    (with the text so far as Whisper's prompt, for continuity); `finish()` then only decodes the
    stretch after the last pause, or nothing when only silence followed it.
    """

    def __init__(self, transcriber: WhisperTranscriber, language: str | None) -> None:
        self._stt = transcriber
        self._language = language
        self._chunks: list[np.ndarray] = []
        self._fed = 0  # samples fed so far
        self._committed_upto = 0  # samples whose text is in `_committed`
        self._committed: list[str] = []
        self._cond = threading.Condition()
        self._busy = False
        self._closed = False
        self.decodes = 0  # background decodes run (for measurements)
        self._thread = threading.Thread(target=self._run, name="stt-incremental", daemon=True)
        self._thread.start()

    def feed(self, pcm: bytes) -> None:
        samples = _pcm_to_float(pcm)
        with self._cond:
            if self._closed:
                return
            self._chunks.append(samples)
            self._fed += len(samples)
            self._cond.notify()

    def _audio(self) -> np.ndarray:
        if len(self._chunks) > 1:
            self._chunks = [np.concatenate(self._chunks)]
        return self._chunks[0] if self._chunks else np.zeros(0, dtype=np.float32)

    def _at_pause(self) -> bool:
        """Speech since the last commit, followed by PAUSE_S of silence."""
        pause = int(PAUSE_S * self._stt.sample_rate)
        if self._fed - self._committed_upto <= pause:
            return False
        pending = self._audio()[self._committed_upto :]
        rate = self._stt.sample_rate
        return is_silence(pending[-pause:], rate) and not is_silence(pending[:-pause], rate)

    def _decode_pending(self, audio: np.ndarray) -> str:
        prompt = " ".join(self._committed)[-200:] or None
        return self._stt.decode(audio[self._committed_upto :], self._language, prompt)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closed and not self._at_pause():
                    self._cond.wait()
                if self._closed:
                    return
                audio = self._audio()
                self._busy = True
            text = self._decode_pending(audio)
            with self._cond:
                if text:
                    self._committed.append(text)
                self._committed_upto, self._busy = len(audio), False
                self.decodes += 1
                self._cond.notify_all()

    def finish(self) -> Transcript:
        """The text of all audio fed: the committed stretches plus the stretch after the last pause."""
        started = time.perf_counter()
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            while self._busy:
                self._cond.wait()
            audio = self._audio()
        if not is_silence(audio[self._committed_upto :], self._stt.sample_rate):
            tail = self._decode_pending(audio)
            if tail:
                self._committed.append(tail)
        return Transcript(" ".join(self._committed), len(audio) / self._stt.sample_rate, time.perf_counter() - started)

    def cancel(self) -> None:
        with self._cond:
            self._closed = True
            self._chunks.clear()
            self._committed.clear()
            self._cond.notify_all()
