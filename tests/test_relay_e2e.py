"""The relay with the real models: `cellcall relay serve` as its own process on loopback, whole
emulated calls through it, and the same relay killed mid-call.

The relay runs faster-whisper tiny.en, piper joe and the embedded qwen2.5-0.5b on this machine's
CPU (no GPU here); the appliance is this test process. Each relay process is stopped by its PID.
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
from relay_support import TOKEN

from cellcall.call import CallResult, place_call
from cellcall.config import Settings
from cellcall.emulator.line import emulated_line
from cellcall.emulator.modem import ModemEmulator
from cellcall.engines import ChatMessage
from cellcall.engines.cache import Engines
from cellcall.goal import load_goal
from cellcall.record import CallStatus, Speaker
from cellcall.relay.client import RelayChatModel, RelayError, RelayPool, RelaySynthesizer, RelayTranscriber

ROOT = Path(__file__).resolve().parents[1]
DENTIST = ROOT / "goals" / "examples" / "dentist.md"
pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_relay(port: int) -> subprocess.Popen[str]:
    """`cellcall relay serve` with the real models, returned once it listens."""
    env = os.environ | {
        "CELLCALL_RELAY_TOKEN": TOKEN,
        "CELLCALL_LLM_BACKEND": "embedded",
        "CELLCALL_LLM_THREADS": "1",
        "CELLCALL_STT_THREADS": "1",
        "CELLCALL_STT_MODEL": "tiny.en",
        "PYTHONUNBUFFERED": "1",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "cellcall", "relay", "serve", "--listen", f"127.0.0.1:{port}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=ROOT,
    )
    assert process.stdout is not None
    for line in process.stdout:
        print(f"relay: {line.rstrip()}")
        if line.startswith("relay listening"):
            threading.Thread(target=process.stdout.read, daemon=True).start()  # keep the pipe drained
            return process
    process.wait(5)
    raise AssertionError(f"the relay exited with {process.returncode} before listening")


def stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(10)


@pytest.fixture(scope="module")
def relay_url() -> Iterator[str]:
    port = free_port()
    process = start_relay(port)
    try:
        yield f"tcp://127.0.0.1:{port}"
    finally:
        stop(process)


def appliance_settings(tmp_path: Path, url: str, fallback: str) -> Settings:
    settings = Settings()
    settings.engines.relay, settings.engines.relay_fallback, settings.relay.token = url, fallback, TOKEN
    settings.llm.backend, settings.llm.threads, settings.stt.threads, settings.stt.model = "embedded", 1, 1, "tiny.en"
    settings.paths.outbox = str(tmp_path / "outbox")
    return settings


@pytest.fixture(scope="module")
def far_end() -> Engines:
    """The emulator's far end speaks with its own local piper (it is the other phone, not the appliance)."""
    return Engines(Settings())


def dial(settings: Settings, engines: Engines, far_end: Engines, scenario: str = "dentist") -> tuple[CallResult, ModemEmulator]:
    with emulated_line(settings, scenario, far_end) as (line, emulator):
        result = place_call(load_goal(DENTIST), settings, line, engines=engines)
        emulator.done.wait(2.0)
    print("\n".join(f"  {t.speaker.value}: {t.text}" for t in result.record.turns))
    return result, emulator


def local_models_started(engines: Engines) -> list[str]:
    return [name for name in ("_stt", "_tts", "_llm") if getattr(engines, name)._future is not None]


def test_a_whole_call_through_the_relay_loads_no_local_model_with_lazy_fallback(
    tmp_path: Path, relay_url: str, far_end: Engines
) -> None:
    settings = appliance_settings(tmp_path, relay_url, "lazy")
    engines = Engines(settings)
    result, emulator = dial(settings, engines, far_end)
    assert result.record.status is CallStatus.COMPLETED, result.record.hangup_reason
    assert [t for t in result.record.turns if t.speaker is Speaker.CALLER], "the relay's STT heard nothing"
    assert emulator.metrics.heard_agent_utterances >= 2
    assert engines.served_by() == {"stt": "relay", "llm": "relay", "tts": "relay"}
    assert local_models_started(engines) == [], "lazy fallback loaded a local model while the relay worked"
    print(f"voice-to-voice through the relay: {[round(v) for v in emulator.metrics.voice_to_voice_ms]} ms")


def test_wrong_token_and_a_real_barge_in_reset_against_the_real_models(relay_url: str) -> None:
    with pytest.raises(RelayError, match="unauthorized"):
        RelayPool(relay_url, "wrong-token-but-long-enough-000").connect()
    pool = RelayPool(relay_url, TOKEN, timeout_s=10.0)
    cancel = threading.Event()
    tokens = RelayChatModel(pool).stream_chat([ChatMessage("user", "Count from one to one hundred in words.")], cancel, 300)
    assert next(tokens)
    cancel.set()
    started = time.monotonic()
    list(tokens)
    reset_ms = (time.monotonic() - started) * 1000
    print(f"RESET -> DONE with the real model: {reset_ms:.1f} ms (load {os.getloadavg()[0]:.2f})")
    assert reset_ms < 200  # 50 ms on an idle machine; slack for the shared CPU
    assert "".join(RelayChatModel(pool).stream_chat([ChatMessage("user", "Say OK.")], max_tokens=4)).strip()


def test_two_appliances_at_once_are_both_served(relay_url: str) -> None:
    speech = b"".join(RelaySynthesizer(RelayPool(relay_url, TOKEN, 10.0)).synthesize("Good morning, this is the dentist."))
    results: dict[int, str] = {}

    def appliance(n: int) -> None:
        pool = RelayPool(relay_url, TOKEN, timeout_s=20.0)
        stt = RelayTranscriber(pool, 8000)
        heard = stt.transcribe(speech).text
        reply = "".join(RelayChatModel(pool).stream_chat([ChatMessage("user", heard)], max_tokens=8))
        audio = b"".join(RelaySynthesizer(pool).synthesize(reply or "Okay."))
        results[n] = f"{heard}|{bool(reply)}|{len(audio)}"

    threads = [threading.Thread(target=appliance, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    print(results)
    assert sorted(results) == [0, 1]
    for value in results.values():
        heard, replied, audio = value.split("|")
        assert "morning" in heard.lower() and replied == "True" and int(audio) > 8000


def test_the_relay_killed_mid_call_hands_the_call_to_the_local_engines(tmp_path: Path, far_end: Engines) -> None:
    port = free_port()
    process = start_relay(port)
    settings = appliance_settings(tmp_path, f"tcp://127.0.0.1:{port}", "warm")
    engines = Engines(settings)
    killed = threading.Event()

    def kill_after_first_relay_turn() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and engines.served_by()["stt"] != "relay":
            time.sleep(0.05)
        stop(process)
        killed.set()

    threading.Thread(target=kill_after_first_relay_turn, daemon=True).start()
    try:
        result, _ = dial(settings, engines, far_end)
    finally:
        stop(process)
    assert killed.is_set(), "the relay never served a turn before the kill"
    assert result.record.status is CallStatus.COMPLETED, result.record.hangup_reason
    assert engines.relay is not None and engines.relay.state.failures >= 1
    served = engines.served_by()
    print(f"served by at the end: {served}; relay error: {engines.relay.state.last_error}")
    assert "local" in served.values()
    assert len([t for t in result.record.turns if t.speaker is Speaker.CALLER]) >= 2
