"""Echo-aware barge-in gating: the agent's own voice leaking back must not interrupt it.

No stack in anchors.md cancels echo; phones leak the agent's voice back (typically -6 to -30 dB,
tens to hundreds of ms late) and naive barge-in interrupts itself. We know exactly what we played
and when, so we learn the echo path from the levels alone: its delay is the lag at which the
downlink's level envelope best follows our own (delay tolerant), its gain the median level
difference at that lag (gain tolerant, and robust to the caller talking now and then). A downlink
frame counts as the caller only when louder than the echo our own audio can cause at that moment
by `margin_db`. Until the path is learnt, a cautious bound is used: our loudest frame of the last
`window_ms` plus `initial_gain_db`.

With a canceller (voice.echo_canceller = "speex", cellcall.voice.aec) the downlink is cleaned first
and the gate judges what is left, so the learnt gain is the residual's and the caller gets through
sooner; the gate alone stays the fallback when the canceller has not converged.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from cellcall.line import FRAME_MS
from cellcall.voice.aec import SpeexCanceller
from cellcall.voice.audio import SILENCE_DBFS, dbfs, frames

LOUD_OWN_DB = -45.0  # own frames quieter than this say nothing about the echo path
SLOT_S = FRAME_MS / 1000.0


class EchoGate:
    """Tracks own playback, learns the echo path, and judges each downlink frame: caller or echo."""

    def __init__(
        self,
        sample_rate: int,
        margin_db: float = 10.0,
        window_ms: float = 400.0,
        initial_gain_db: float = -6.0,
        learn_every: int = 10,
        learn_after: int = 25,
        history_frames: int = 300,
        min_correlation: float = 0.5,
        tolerance_frames: int = 2,
        canceller: SpeexCanceller | None = None,
    ) -> None:
        self.canceller = canceller
        self.sample_rate = sample_rate
        self.margin_db = margin_db
        self.max_lag = int(window_ms / FRAME_MS)
        self.initial_gain_db = initial_gain_db
        self.learn_every = learn_every
        self.learn_after = learn_after  # frames of our own speech heard back before the first estimate
        self.min_correlation = min_correlation
        self.tolerance = tolerance_frames
        self.delay: int | None = None  # learnt echo delay, in 20 ms slots
        self.gain: float | None = None  # learnt echo gain, dB
        self._own: dict[int, float] = {}  # slot -> dBFS of our frame that played in it
        self._history: deque[tuple[int, float]] = deque(maxlen=history_frames)  # (slot, downlink dBFS)
        self._origin: float | None = None  # the downlink's frame clock: time of frame 0
        self._frames = 0
        self._since_learn = 0

    # ---- our side --------------------------------------------------------------------------------

    def played(self, start: float, pcm: bytes) -> None:
        """Register own audio that began to play at monotonic time `start` (the line's TX_STARTED)."""
        first = round(start / SLOT_S)
        for i, frame in enumerate(frames(pcm, self.sample_rate)):
            self._own[first + i] = dbfs(frame)
        if self.canceller is not None:
            self.canceller.played(first, pcm)

    def stop(self, at: float) -> None:
        """Playback was cut (barge-in): frames registered to play after `at` never reached the caller."""
        cut = round(at / SLOT_S)
        for slot in [s for s in self._own if s > cut]:
            del self._own[slot]
        if self.canceller is not None:
            self.canceller.stop(cut)

    # ---- the downlink ----------------------------------------------------------------------------

    def slot_of(self, arrival: float) -> int:
        """The slot of the downlink frame that arrived at `arrival`, on a jitter-free frame clock
        (a frame never arrives before it was spoken: the earliest arrival - index * 20 ms is the origin)."""
        origin = arrival - self._frames * SLOT_S
        if self._origin is None or origin < self._origin:
            self._origin = origin
        self._frames += 1
        return round((self._origin + (self._frames - 1) * SLOT_S) / SLOT_S)

    def expected_echo_db(self, slot: int) -> float:
        """The loudest echo our own audio can put into the downlink frame of `slot`."""
        if self.delay is None:
            own = self._own_max(slot - self.max_lag, slot)
            gain = self.initial_gain_db if self.gain is None else self.gain
        else:
            own = self._own_max(slot - self.delay - self.tolerance, slot - self.delay + self.tolerance)
            gain = self.gain if self.gain is not None else self.initial_gain_db
        return own + gain if own > SILENCE_DBFS else SILENCE_DBFS

    def clean(self, frame: bytes, slot: int) -> bytes:
        """The downlink frame with our own echo cancelled (as it is, without a canceller)."""
        return self.canceller.clean(frame, slot) if self.canceller is not None else frame

    def judge(self, level_db: float, speech: bool, arrival: float) -> bool:
        """One downlink frame (its dBFS, the VAD's verdict): True when it is the caller speaking."""
        return self.judge_slot(level_db, speech, self.slot_of(arrival))

    def judge_slot(self, level_db: float, speech: bool, slot: int) -> bool:
        """As `judge`, for a frame whose slot the caller already took (to clean it first)."""
        self._prune(slot)
        caller = speech and level_db > self.expected_echo_db(slot) + self.margin_db
        if not caller and self._own_max(slot - self.max_lag, slot) >= LOUD_OWN_DB:
            self._history.append((slot, level_db))  # the caller's own words never teach the echo path
            self._since_learn += 1
            if self._since_learn >= self.learn_every:
                self._learn()
        return caller

    def _own_max(self, low: int, high: int) -> float:
        return max((self._own[s] for s in range(low, high + 1) if s in self._own), default=SILENCE_DBFS)

    def _prune(self, slot: int) -> None:
        kept = self._history.maxlen or 0
        horizon = slot - self.max_lag - kept
        if len(self._own) > 4 * kept:
            for old in [s for s in self._own if s < horizon]:
                del self._own[old]

    def _learn(self) -> None:
        """Delay = lag of best envelope correlation; gain = median level difference at that lag."""
        self._since_learn = 0
        if len(self._history) < self.learn_after:
            return
        slots = np.fromiter((s for s, _ in self._history), dtype=np.int64)
        down = np.fromiter((level for _, level in self._history), dtype=np.float64)
        best, best_lag = self.min_correlation, None
        for lag in range(self.max_lag + 1):
            own = np.fromiter((self._own.get(int(s) - lag, SILENCE_DBFS) for s in slots), dtype=np.float64)
            mask = own >= LOUD_OWN_DB
            if mask.sum() < self.learn_after // 2 or down[mask].std() == 0 or own[mask].std() == 0:
                continue
            corr = float(np.corrcoef(down[mask], own[mask])[0, 1])
            if corr > best:
                best, best_lag = corr, lag
        if best_lag is None:
            if self.delay is None:
                # no lag follows our voice: the echo is under the line's noise; bound it by what we hear
                window = np.fromiter((self._own_max(int(s) - self.max_lag, int(s)) for s in slots), dtype=np.float64)
                self.gain = float(np.percentile(down - window, 90))
            return
        own = np.fromiter((self._own.get(int(s) - best_lag, SILENCE_DBFS) for s in slots), dtype=np.float64)
        mask = own >= LOUD_OWN_DB
        self.delay, self.gain = best_lag, float(np.median(down[mask] - own[mask]))
