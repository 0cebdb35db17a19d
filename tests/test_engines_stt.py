"""faster-whisper tiny.en on real human speech (LibriVox) at telephone quality."""

from __future__ import annotations

import statistics
import time

import numpy as np
import pytest
from speech import LINE_RATE, librivox_clips, wer, whisper

from cellcall.engines import EngineError, IncrementalTranscription, Transcriber
from cellcall.engines.stt import WhisperTranscriber, is_silence

FRAME = 320  # 20 ms of 8 kHz s16le
WER_BOUND = 0.25


@pytest.mark.slow
def test_librivox_telephone_quality_word_error_rate_is_bounded() -> None:
    stt = whisper()
    assert isinstance(stt, Transcriber)
    errors, rtfs = [], []
    for clip in librivox_clips():
        result = stt.transcribe(clip.pcm)
        errors.append(wer(clip.reference, result.text))
        rtfs.append(result.compute_s / result.audio_s)
        assert result.audio_s == pytest.approx(clip.seconds)
        print(f"{clip.name}: WER {errors[-1]:.2f} RTF {rtfs[-1]:.2f} | {result.text}")
    mean_wer = statistics.mean(errors)
    print(f"mean WER {mean_wer:.3f} over {len(errors)} clips, median RTF {statistics.median(rtfs):.2f}")
    assert mean_wer <= WER_BOUND


def _feed_live(session: IncrementalTranscription, pcm: bytes, pace_s: float) -> None:
    for start in range(0, len(pcm), FRAME):
        session.feed(pcm[start : start + FRAME])
        time.sleep(pace_s)


@pytest.mark.slow
def test_incremental_final_text_matches_and_saves_time_after_end_of_speech() -> None:
    """Fed at line pace with 500 ms of trailing silence (the endpoint), as the voice loop does."""
    stt = whisper()
    clip = max(librivox_clips(), key=lambda c: c.seconds)
    silence = b"\0\0" * (LINE_RATE // 2)
    whole = stt.transcribe(clip.pcm + silence)
    session = stt.incremental()
    _feed_live(session, clip.pcm + silence, pace_s=0.02)
    final = session.finish()
    saved_ms = (whole.compute_s - final.compute_s) * 1000
    print(
        f"after end of speech: whole decode {whole.compute_s * 1000:.0f} ms, incremental finish "
        f"{final.compute_s * 1000:.0f} ms, saved {saved_ms:.0f} ms ({session.decodes} background decodes)"
    )
    assert wer(clip.reference, final.text) <= WER_BOUND
    assert session.decodes >= 1
    assert final.audio_s == pytest.approx(clip.seconds + 0.5)


@pytest.mark.slow
@pytest.mark.slow
def test_incremental_redecodes_when_speech_follows_the_last_decode() -> None:
    """Audio fed faster than any decode: finish() must not return a stale partial text."""
    stt = whisper()
    first, second = librivox_clips()[1], librivox_clips()[4]
    session = stt.incremental()
    session.feed(first.pcm + b"\0\0" * 2000)
    session.feed(second.pcm)
    final = session.finish()
    assert wer(f"{first.reference} {second.reference}", final.text) <= WER_BOUND


def test_incremental_cancel_drops_audio_and_stops() -> None:
    session = whisper().incremental()
    session.feed(librivox_clips()[1].pcm)
    session.cancel()
    session.feed(b"\0\0" * 800)
    assert session.finish().text == ""


def test_silence_detector_separates_speech_from_line_silence() -> None:
    speech = np.frombuffer(librivox_clips()[0].pcm, dtype="<i2").astype(np.float32) / 32768.0
    assert not is_silence(speech, LINE_RATE)
    assert is_silence(np.zeros(LINE_RATE, dtype=np.float32), LINE_RATE)
    hiss = np.random.default_rng(1).normal(0, 0.002, LINE_RATE).astype(np.float32)
    assert is_silence(hiss, LINE_RATE)


def test_bad_input_gives_clear_errors(tmp_path) -> None:
    with pytest.raises(EngineError, match="even number of bytes"):
        whisper().transcribe(b"\0\0\0")
    with pytest.raises(EngineError, match="CTranslate2 folder"):
        WhisperTranscriber(str(tmp_path))
    with pytest.raises(EngineError, match="threads"):
        WhisperTranscriber(threads=0)
