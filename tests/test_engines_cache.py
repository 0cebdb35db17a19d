"""The process-wide engine cache (concurrent background loading) and the doctor's engine checks."""

from __future__ import annotations

import time

import pytest

from cellcall.config import Settings
from cellcall.engines import ChatModel, EngineError, Synthesizer, Transcriber
from cellcall.engines.cache import Engines, shared_engines
from cellcall.engines.health import check_engines


def _settings(**llm: object) -> Settings:
    settings = Settings()
    settings.llm.backend = "embedded"
    settings.llm.threads = 1
    for key, value in llm.items():
        setattr(settings.llm, key, value)
    return settings


@pytest.mark.slow
def test_preload_returns_at_once_then_the_doctor_runs_each_loaded_engine() -> None:
    settings = _settings()
    engines = Engines(settings)
    started = time.perf_counter()
    engines.preload()
    returned_s = time.perf_counter() - started
    stt, tts, llm = engines.stt(), engines.tts(), engines.llm()
    loaded_s = time.perf_counter() - started
    print(f"preload returned in {returned_s * 1000:.1f} ms; all three loaded after {loaded_s:.2f} s")
    assert returned_s < 0.5 and returned_s * 5 < loaded_s
    assert isinstance(stt, Transcriber) and isinstance(tts, Synthesizer) and isinstance(llm, ChatModel)
    assert engines.stt() is stt and engines.llm() is llm  # loaded once
    checks = check_engines(settings, engines)
    for check in checks:
        print(check)
    assert [c.name for c in checks] == ["tts", "stt", "llm"]
    assert all(c.ok and c.load_s is not None and c.run_s is not None for c in checks)
    assert "this is a test" in checks[1].detail.lower()  # the STT heard the TTS's words ("hello" is sometimes "oh, well")


def test_shared_engines_are_one_per_engine_settings() -> None:
    first = shared_engines(_settings())
    again = _settings()
    again.line.scenario = "other"  # not an engine setting: same engines
    assert shared_engines(again) is first
    assert shared_engines(_settings(model="smollm2-135m")) is not first


def test_a_failed_load_is_raised_on_access_with_its_reason(tmp_path) -> None:
    engines = Engines(_settings(model=str(tmp_path / "missing.gguf")))
    engines.preload()
    with pytest.raises(EngineError, match="GGUF model file not found"):
        engines.llm()
    with pytest.raises(EngineError, match="GGUF model file not found"):
        engines.llm()  # the failure is remembered, not retried on every turn
    settings = _settings()
    settings.stt.backend = "vosk"
    with pytest.raises(EngineError, match="unknown stt.backend"):
        Engines(settings)


@pytest.mark.slow
def test_doctor_reports_failures_instead_of_raising(tmp_path) -> None:
    settings = _settings(model=str(tmp_path / "missing.gguf"))
    settings.tts.voice = str(tmp_path / "voice.onnx")
    checks = {c.name: c for c in check_engines(settings)}
    assert not checks["tts"].ok and "voice.onnx" in checks["tts"].detail
    assert not checks["llm"].ok and checks["llm"].load_s is None
    assert checks["stt"].ok  # STT still checked, on silence
