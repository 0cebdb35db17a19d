"""Whisper on real human speech (LibriVox) at telephone quality: the short-window path and transcribe()."""

from __future__ import annotations

import functools
import statistics

import numpy as np
import pytest
import soxr
from speech import LINE_RATE, librivox_clips, wer, whisper

from cellcall.config import SttSettings
from cellcall.engines import EngineError, Transcriber
from cellcall.engines import stt as stt_module
from cellcall.engines.stt import WHISPER_RATE, WhisperTranscriber
from cellcall.engines.stt.window import (
    WindowResult,
    compression_ratio,
    has_repeated_phrase,
    is_degenerate,
    max_tokens_for,
    window_for,
)
from cellcall.voice.utterance import TranscriptionWorker, Utterance

TODAY_WER = 0.11  # tiny.en through transcribe() on these clips, before the windowed path
TINY_WER_BOUND = 0.25


@functools.cache
def default_stt(rate: int = LINE_RATE) -> WhisperTranscriber:
    """The default model and decode path from SttSettings, one thread (the machine is shared)."""
    stt = SttSettings()
    return WhisperTranscriber(stt.model, threads=1, beam_size=stt.beam_size, sample_rate=rate, window_s=stt.window_s)


def _mean_wer(transcriber: Transcriber) -> float:
    errors, rtfs = [], []
    for clip in librivox_clips():
        result = transcriber.transcribe(clip.pcm)
        errors.append(wer(clip.reference, result.text))
        rtfs.append(result.compute_s / result.audio_s)
        assert result.audio_s == pytest.approx(clip.seconds)
        print(f"{clip.name}: WER {errors[-1]:.2f} RTF {rtfs[-1]:.2f} | {result.text}")
    print(f"mean WER {statistics.mean(errors):.3f} over {len(errors)} clips, median RTF {statistics.median(rtfs):.2f}")
    return statistics.mean(errors)


@pytest.mark.slow
def test_default_windowed_base_is_no_worse_than_tiny_en_on_telephone_speech() -> None:
    stt = default_stt()
    assert isinstance(stt, Transcriber) and "window" in stt.name
    assert _mean_wer(stt) <= TODAY_WER
    assert stt.fallbacks == 0  # none of these clips loops; a fallback here would mean the window is too short


@pytest.mark.slow
def test_tiny_en_through_transcribe_stays_selectable() -> None:
    assert "transcribe" in whisper().name
    assert _mean_wer(whisper()) <= TINY_WER_BOUND


@pytest.mark.slow
def test_a_decode_that_hits_its_bound_falls_back_to_the_30_s_path(monkeypatch) -> None:
    """A bound of 2 tokens makes every windowed decode look like a loop: the text must come from transcribe()."""
    stt, clip = default_stt(), librivox_clips()[4]
    monkeypatch.setattr("cellcall.engines.stt.window.TOKENS_PER_S", 0)
    monkeypatch.setattr("cellcall.engines.stt.window.SPARE_TOKENS", 2)
    before = stt.fallbacks
    text = stt.transcribe(clip.pcm).text
    assert stt.fallbacks == before + 1
    assert wer(clip.reference, text) <= 0.2


@pytest.mark.slow
def test_a_looping_window_output_is_replaced_by_the_full_decode(monkeypatch) -> None:
    """The decoder's typical loop on a short window ("the the shop the shop") never reaches the caller."""
    stt, clip = default_stt(), librivox_clips()[1]
    looped = WindowResult("He was not an ill disposed young man young man young man young man", hit_bound=False)
    monkeypatch.setattr(stt_module, "decode_window", lambda *args: looped)
    text = stt.transcribe(clip.pcm).text
    assert "young man young man" not in text and wer(clip.reference, text) <= 0.2


@pytest.mark.slow
@pytest.mark.parametrize("route_rate", [16000, 8000])
def test_a_call_converts_line_audio_to_16_khz_once(route_rate: int, monkeypatch) -> None:
    """The engines' STT takes 16 kHz, so a VoLTE route is never resampled and an 8 kHz one exactly once."""
    stt, clip = default_stt(WHISPER_RATE), librivox_clips()[1]
    line = np.frombuffer(clip.pcm, "<i2").astype(np.float32)
    pcm = soxr.resample(line, LINE_RATE, route_rate).astype("<i2").tobytes() if route_rate != LINE_RATE else clip.pcm
    calls: list[tuple[int, int]] = []
    real = soxr.resample

    def counted(x: np.ndarray, in_rate: int, out_rate: int, *rest: object, **kw: object) -> np.ndarray:
        calls.append((in_rate, out_rate))
        return real(x, in_rate, out_rate, *rest, **kw)

    monkeypatch.setattr(soxr, "resample", counted)
    worker = TranscriptionWorker(stt, route_rate, "en-US")
    try:
        utterance = Utterance(0.0, pcm)
        result = worker.request(utterance).wait(30)
    finally:
        worker.close()
    assert result is not None and wer(clip.reference, result.text) <= 0.2
    assert calls == ([] if route_rate == WHISPER_RATE else [(route_rate, WHISPER_RATE)])


def test_engines_build_the_stt_for_16_khz_with_the_configured_window(monkeypatch) -> None:
    from cellcall.config import Settings
    from cellcall.engines.cache import Engines

    built: list[tuple] = []

    class Recorder:
        def __init__(self, *args) -> None:
            built.append(args)

    monkeypatch.setattr(stt_module, "WhisperTranscriber", Recorder)
    settings = Settings()
    settings.stt.window_s = 7.5
    Engines(settings).stt()
    assert built == [(settings.stt.model, settings.stt.threads, settings.stt.beam_size, WHISPER_RATE, settings.cache_dir(), 7.5)]


def test_degeneracy_detector_flags_loops_and_passes_normal_turns() -> None:
    normal = ["Yes.", "Could we move it to Friday at nine thirty?", "no no no", "Thank you, thank you very much."]
    for text in normal:
        assert not is_degenerate(WindowResult(text, hit_bound=False)), text
    assert is_degenerate(WindowResult("Friday at nine", hit_bound=True))
    assert has_repeated_phrase("I said to the shop to the shop")
    assert has_repeated_phrase("Could you repeat that, please? Could you repeat that,")  # base on a 5 s window
    assert not has_repeated_phrase("to the shop and back to a shop")
    assert is_degenerate(WindowResult("No, thank you. No, thank", hit_bound=False))
    assert compression_ratio("and then and then and then " * 4) > 1.8 > compression_ratio(normal[1])
    assert is_degenerate(WindowResult("you know, " * 12, hit_bound=False))
    assert is_degenerate(WindowResult("He was not an ill-s-e-e-e-e", hit_bound=False))  # tiny.en on a 5 s window
    assert not is_degenerate(WindowResult("Call 555-0000 or 1111.", hit_bound=False))


def test_window_grows_in_steps_and_long_turns_take_the_30_s_path() -> None:
    assert [window_for(d, 5.0) for d in (0.3, 5.0, 5.1, 12.0, 29.0, 30.5)] == [5.0, 5.0, 10.0, 15.0, 30.0, None]
    assert [window_for(d, 8.0) for d in (1.0, 8.5, 23.0, 25.0)] == [8.0, 16.0, 24.0, 30.0]
    assert window_for(2.0, 0.0) is None
    assert max_tokens_for(2.0) == 22 and max_tokens_for(0.0) == 8


def test_bad_input_gives_clear_errors(tmp_path) -> None:
    with pytest.raises(EngineError, match="even number of bytes"):
        whisper().transcribe(b"\0\0\0")
    with pytest.raises(EngineError, match="CTranslate2 folder"):
        WhisperTranscriber(str(tmp_path))
    with pytest.raises(EngineError, match="threads"):
        WhisperTranscriber(threads=0)
    with pytest.raises(EngineError, match="window_s"):
        WhisperTranscriber(window_s=-1)
    with pytest.raises(EngineError, match="no language"):
        default_stt().transcribe(librivox_clips()[1].pcm, language="xx-YY")
