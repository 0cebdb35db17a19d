"""Wyoming (Home Assistant's voice protocol) STT and TTS: any wyoming-faster-whisper or
wyoming-piper server, e.g. one already running for Home Assistant, behind the same protocols.

Wyoming clients are asyncio; each request runs its own short event loop in a worker thread (one
connection per request, as Home Assistant does), and hands events to the calling thread through a
queue, so `synthesize` yields audio as it arrives and a cancel stops reading at once. Every wait
has a deadline (`timeout_s`) and every failure is an EngineError naming the server, never a hang.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import soxr

from cellcall.engines import EngineError, Transcript
from cellcall.engines.speakable import speakable

CHUNK_SAMPLES = 1024  # audio sent to the STT server in chunks of this many samples
_END = object()


def _tcp_uri(uri: str) -> tuple[str, int]:
    parts = urlsplit(uri.strip())
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme != "tcp" or not parts.hostname or port is None:
        raise EngineError(f"wyoming server {uri!r} must look like tcp://127.0.0.1:10300")
    return parts.hostname, port


def _run_events(
    uri: str, talk: Callable[[Any, queue.Queue[object]], Coroutine[Any, Any, None]], timeout_s: float
) -> Iterator[object]:
    """Run `talk(client, out)` in a worker thread's event loop; yield what it puts on `out`."""
    from wyoming.client import AsyncTcpClient

    host, port = _tcp_uri(uri)
    out: queue.Queue[object] = queue.Queue()

    async def session() -> None:
        client = AsyncTcpClient(host, port)
        await asyncio.wait_for(client.connect(), timeout_s)
        try:
            await talk(client, out)
        finally:
            await client.disconnect()

    def worker() -> None:
        try:
            asyncio.run(session())
        except Exception as exc:  # noqa: BLE001 - handed to the reader with the server's address
            out.put(EngineError(f"wyoming server {uri}: {type(exc).__name__}: {exc}"))
        out.put(_END)

    threading.Thread(target=worker, name="wyoming", daemon=True).start()
    while True:
        try:
            item = out.get(timeout=timeout_s)
        except queue.Empty:
            raise EngineError(f"wyoming server {uri}: no answer within {timeout_s:g} s") from None
        if item is _END:
            return
        if isinstance(item, EngineError):
            raise item
        yield item


async def _read(client: Any, timeout_s: float) -> Any:
    event = await asyncio.wait_for(client.read_event(), timeout_s)
    if event is None:
        raise EngineError("the server closed the connection")
    return event


class WyomingTranscriber:
    """Implements `Transcriber` against a Wyoming ASR server (wyoming-faster-whisper)."""

    def __init__(self, uri: str, sample_rate: int = 16000, timeout_s: float = 10.0) -> None:
        _tcp_uri(uri)
        self.uri, self.sample_rate, self.timeout_s = uri, sample_rate, timeout_s
        self.name = f"wyoming-stt:{uri}"

    def transcribe(self, pcm: bytes, language: str | None = None) -> Transcript:
        from wyoming.asr import Transcribe
        from wyoming.asr import Transcript as WyomingTranscript
        from wyoming.audio import AudioChunk, AudioStart, AudioStop

        if len(pcm) % 2:
            raise EngineError(f"PCM must be s16le (an even number of bytes), got {len(pcm)} bytes")
        started = time.perf_counter()
        rate, step = self.sample_rate, CHUNK_SAMPLES * 2

        async def talk(client: Any, out: queue.Queue[object]) -> None:
            await client.write_event(Transcribe(language=language.split("-")[0] if language else None).event())
            await client.write_event(AudioStart(rate=rate, width=2, channels=1).event())
            for offset in range(0, len(pcm), step):
                await client.write_event(AudioChunk(rate=rate, width=2, channels=1, audio=pcm[offset : offset + step]).event())
            await client.write_event(AudioStop().event())
            while not WyomingTranscript.is_type((event := await _read(client, self.timeout_s)).type):
                pass
            out.put(WyomingTranscript.from_event(event).text)

        texts = [str(item) for item in _run_events(self.uri, talk, self.timeout_s)]
        return Transcript(" ".join(texts).strip(), len(pcm) / 2 / rate, time.perf_counter() - started)


class WyomingSynthesizer:
    """Implements `Synthesizer` against a Wyoming TTS server (wyoming-piper), resampled to `sample_rate`."""

    def __init__(self, uri: str, sample_rate: int = 8000, voice: str | None = None, timeout_s: float = 10.0) -> None:
        _tcp_uri(uri)
        self.uri, self.sample_rate, self.voice, self.timeout_s = uri, sample_rate, voice, timeout_s
        self.name = f"wyoming-tts:{uri}"

    def synthesize(self, text: str, cancel: threading.Event | None = None) -> Iterator[bytes]:
        from wyoming.audio import AudioChunk, AudioStop
        from wyoming.tts import Synthesize, SynthesizeVoice

        spoken = speakable(text)
        if not spoken or (cancel is not None and cancel.is_set()):
            return

        async def talk(client: Any, out: queue.Queue[object]) -> None:
            voice = SynthesizeVoice(name=self.voice) if self.voice else None
            await client.write_event(Synthesize(text=spoken, voice=voice).event())
            while not AudioStop.is_type((event := await _read(client, self.timeout_s)).type):
                if cancel is not None and cancel.is_set():
                    return
                if AudioChunk.is_type(event.type):
                    chunk = AudioChunk.from_event(event)
                    out.put((chunk.rate, chunk.audio))

        resampler: soxr.ResampleStream | None = None
        for item in _run_events(self.uri, talk, self.timeout_s):
            if cancel is not None and cancel.is_set():
                return
            assert isinstance(item, tuple)
            rate, audio = item
            samples = np.frombuffer(audio, dtype="<i2")
            if rate == self.sample_rate:
                yield samples.tobytes()
                continue
            resampler = resampler or soxr.ResampleStream(rate, self.sample_rate, 1, dtype="int16", quality="HQ")
            out = resampler.resample_chunk(samples)
            if len(out):
                yield out.tobytes()
        if resampler is not None and not (cancel is not None and cancel.is_set()):
            tail = resampler.resample_chunk(np.zeros(0, dtype=np.int16), last=True)
            if len(tail):
                yield tail.tobytes()
