"""Whisper on a short window: CTranslate2 called directly with the audio padded to a few seconds, not 30.

faster-whisper 1.2.1 pads every input to 30 s (its `generate_segments` trims/pads to 3000 mel
frames whatever `chunk_length` says), so a one-word turn costs as much encoder time as a 30 s one.
CTranslate2 itself accepts shorter features, so this module runs the encoder on a window just long
enough for the turn and decodes greedily with a length bound derived from the duration. Whisper's
decoder can loop on a short context; every output is checked (`is_degenerate`) and a degenerate one
is decoded again the normal way by the caller. Measured on a 2-core Xeon: base, 1-3 s clips on a
5 s window, 65 ms against 307 ms for tiny.en through `transcribe()` (shared/reference/latency-levers.md).
On 1-2 s turns a 5 s window makes base start the turn over (5 of 14 short phrases fell back), an 8 s
one did not, hence the 8 s default (docs/stt.md).

Stateless apart from the model it is given; the owning transcriber serialises calls.
"""

from __future__ import annotations

import math
import re
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from cellcall.engines import EngineError

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

WHISPER_RATE = 16000
FULL_WINDOW_S = 30.0  # Whisper's trained input length; longer turns take the transcribe() path
TOKENS_PER_S = 7  # bound on decoded tokens per second of audio (fast speech is ~4-5)
SPARE_TOKENS = 8
MAX_COMPRESSION_RATIO = 1.8  # looped text compresses well; real short turns stay near 1
MIN_REPEAT_WORDS = 3
_STUTTER = re.compile(r"(\D{1,4}?)\1{3,}")  # a short non-digit unit 4+ times: "ill-s-e-e-e-e"; digits repeat in numbers
_HOP = 160  # mel frame hop at 16 kHz


@dataclass(frozen=True)
class WindowResult:
    text: str
    hit_bound: bool  # the decoder used every token it was allowed: it was still going (a loop)


def window_for(duration_s: float, window_s: float) -> float | None:
    """Seconds to pad `duration_s` of audio to: the next multiple of `window_s`, None past 30 s."""
    if window_s <= 0 or duration_s > FULL_WINDOW_S:
        return None
    return min(FULL_WINDOW_S, max(1, math.ceil(duration_s / window_s)) * window_s)


def max_tokens_for(duration_s: float) -> int:
    """How many text tokens a decode of `duration_s` seconds may produce."""
    return int(TOKENS_PER_S * duration_s) + SPARE_TOKENS


def compression_ratio(text: str) -> float:
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


def _words(text: str) -> list[str]:
    return re.sub(r"[^\w' ]", " ", text.lower()).split()


def has_repeated_phrase(text: str, min_words: int = MIN_REPEAT_WORDS) -> bool:
    """A phrase of `min_words` words said twice anywhere ("could you repeat that, please? could you repeat").

    Real turns repeat a 3-word phrase rarely; a decoder that reached the end of the speech early
    starts the turn over, so this costs a fallback now and then and catches most loops."""
    words = _words(text)
    seen: set[tuple[str, ...]] = set()
    for start in range(len(words) - min_words + 1):
        gram = tuple(words[start : start + min_words])
        if gram in seen:
            return True
        seen.add(gram)
    return False


def restarts(text: str) -> bool:
    """The text starts over and is cut off: it ends with 2+ of its own first words ("no, thank you. no, thank")."""
    words = _words(text)
    return any(words[start:] == words[: len(words) - start] for start in range(2, len(words) - 1))


def has_stutter(text: str) -> bool:
    """The decoder looping on a few characters, too short for the compression ratio to notice."""
    return _STUTTER.search(text) is not None


def is_degenerate(result: WindowResult) -> bool:
    """The short-window output looks like a decoder loop, so it must be decoded again over 30 s.

    A false alarm only costs one 30 s decode (~0.5 s); a missed loop puts garbage in the LLM's prompt."""
    text = result.text
    looped = has_repeated_phrase(text) or restarts(text) or has_stutter(text)
    return result.hit_bound or looped or compression_ratio(text) > MAX_COMPRESSION_RATIO


def decode_window(model: WhisperModel, audio: np.ndarray, window_s: float, language: str, beam_size: int) -> WindowResult:
    """Transcribe 16 kHz float `audio` padded to `window_s` seconds, with the decode bounded by its length."""
    from ctranslate2 import StorageView
    from faster_whisper.tokenizer import Tokenizer

    try:
        tokenizer = Tokenizer(model.hf_tokenizer, model.model.is_multilingual, task="transcribe", language=language)
    except ValueError as exc:
        raise EngineError(f"whisper has no language {language!r}: {exc}") from exc
    frames = int(window_s * WHISPER_RATE) // _HOP
    frames -= frames % 2  # the encoder's stride-2 convolution wants an even frame count
    padded = np.zeros(frames * _HOP, dtype=np.float32)
    padded[: min(len(audio), len(padded))] = audio[: len(padded)]
    features = model.feature_extractor(padded, padding=0)[:, :frames]
    encoded = model.model.encode(StorageView.from_array(np.ascontiguousarray(features[None])), to_cpu=False)
    prompt = [*tokenizer.sot_sequence, tokenizer.no_timestamps]
    allowed = max_tokens_for(len(audio) / WHISPER_RATE)
    result = model.model.generate(encoded, [prompt], beam_size=beam_size, max_length=len(prompt) + allowed)[0]
    tokens = [t for t in result.sequences_ids[0] if t < tokenizer.eot]
    return WindowResult(tokenizer.decode(tokens).strip(), len(result.sequences_ids[0]) >= allowed)
