"""Acoustic echo cancellation with speexdsp (BSD-3-Clause, Debian's libspeexdsp1), through ctypes.

The agent knows every sample it played and when (the line's TX_STARTED), so the downlink can have
the agent's own voice subtracted before the VAD, the echo gate and the recogniser hear it: speex's
adaptive filter (MDF) learns the echo path, delay included, up to its tail length, and its
preprocessor suppresses what the filter leaves. The echo gate still judges the residual, so a
canceller that has not converged yet never lets the agent interrupt itself.

Owned by the voice loop's thread: `played`/`stop` come from the playback (on that thread), `clean`
from the frame loop.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from functools import cache

import numpy as np

from cellcall.config import ECHO_CANCELLERS
from cellcall.line import FRAME_MS

TAIL_MS = 200  # echo paths on phone lines: tens to a couple of hundred ms
SPEEX_ECHO_SET_SAMPLING_RATE = 24
SPEEX_PREPROCESS_SET_ECHO_STATE = 24
SPEEX_PREPROCESS_SET_DENOISE = 0


class CancellerUnavailable(RuntimeError):
    """libspeexdsp is not installed (apt install libspeexdsp1)."""


@cache
def _lib() -> ctypes.CDLL:
    name = ctypes.util.find_library("speexdsp")
    if name is None:
        raise CancellerUnavailable("voice.echo_canceller = speex needs libspeexdsp (apt install libspeexdsp1)")
    lib = ctypes.CDLL(name)
    lib.speex_echo_state_init.restype = ctypes.c_void_p
    lib.speex_echo_state_init.argtypes = [ctypes.c_int, ctypes.c_int]
    lib.speex_echo_state_destroy.argtypes = [ctypes.c_void_p]
    lib.speex_echo_cancellation.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p]
    lib.speex_echo_ctl.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p]
    lib.speex_preprocess_state_init.restype = ctypes.c_void_p
    lib.speex_preprocess_state_init.argtypes = [ctypes.c_int, ctypes.c_int]
    lib.speex_preprocess_state_destroy.argtypes = [ctypes.c_void_p]
    lib.speex_preprocess_ctl.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p]
    lib.speex_preprocess_run.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    return lib


class SpeexCanceller:
    """One call's echo canceller: feed it what played (by 20 ms slot) and clean each downlink frame."""

    def __init__(self, sample_rate: int, tail_ms: int = TAIL_MS) -> None:
        lib = _lib()
        self.lib = lib
        self.frame_samples = sample_rate * FRAME_MS // 1000
        self._echo = lib.speex_echo_state_init(self.frame_samples, sample_rate * tail_ms // 1000)
        rate = ctypes.c_int(sample_rate)
        lib.speex_echo_ctl(self._echo, SPEEX_ECHO_SET_SAMPLING_RATE, ctypes.byref(rate))
        self._pre = lib.speex_preprocess_state_init(self.frame_samples, sample_rate)
        lib.speex_preprocess_ctl(self._pre, SPEEX_PREPROCESS_SET_ECHO_STATE, ctypes.c_void_p(self._echo))
        off = ctypes.c_int(0)  # the line's own noise is the VAD's business; only the echo is removed
        lib.speex_preprocess_ctl(self._pre, SPEEX_PREPROCESS_SET_DENOISE, ctypes.byref(off))
        self._silence = bytes(2 * self.frame_samples)
        self._out = ctypes.create_string_buffer(2 * self.frame_samples)
        self._own: dict[int, bytes] = {}  # slot -> the frame of our audio that played in it

    def played(self, first_slot: int, pcm: bytes) -> None:
        size = 2 * self.frame_samples
        for i in range(0, len(pcm) - len(pcm) % size, size):
            self._own[first_slot + i // size] = pcm[i : i + size]

    def stop(self, slot: int) -> None:
        for later in [s for s in self._own if s > slot]:
            del self._own[later]

    def clean(self, frame: bytes, slot: int) -> bytes:
        """The downlink frame of `slot` with our echo taken out (frames of another size pass as they are)."""
        if len(frame) != 2 * self.frame_samples:
            return frame
        reference = self._own.pop(slot, self._silence)
        for old in [s for s in self._own if s < slot - 50]:
            del self._own[old]
        self.lib.speex_echo_cancellation(self._echo, frame, reference, self._out)
        self.lib.speex_preprocess_run(self._pre, self._out)
        return self._out.raw

    def close(self) -> None:
        if self._echo:
            self.lib.speex_echo_state_destroy(self._echo)
            self.lib.speex_preprocess_state_destroy(self._pre)
            self._echo = self._pre = None


def make_canceller(kind: str, sample_rate: int) -> SpeexCanceller | None:
    """The configured canceller (voice.echo_canceller), or None for "none"."""
    if kind not in ECHO_CANCELLERS:
        raise ValueError(f"voice.echo_canceller must be one of {', '.join(ECHO_CANCELLERS)}, not {kind!r}")
    return SpeexCanceller(sample_rate) if kind == "speex" else None


def residual_db(before: bytes, after: bytes) -> float:
    """How much quieter `after` is than `before`, in dB (for the benchmark and the tests)."""
    a = np.frombuffer(before, dtype="<i2").astype(np.float64)
    b = np.frombuffer(after, dtype="<i2").astype(np.float64)
    return float(10 * np.log10((np.mean(a * a) + 1e-9) / (np.mean(b * b) + 1e-9)))
