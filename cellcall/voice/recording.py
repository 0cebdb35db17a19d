"""Both directions of a call on one timeline, for audio.wav (caller and agent on two channels).

The caller's track is the downlink frame after frame; its time origin is estimated from arrival
times (a frame never arrives before it was spoken, so the earliest `arrival - index * 20 ms` is the
origin). The agent's chunks are placed by when they started to play (the line's TX_STARTED) and cut
where a barge-in stopped them, so the file sounds like the call did, overlaps included.
"""

from __future__ import annotations

import threading

from cellcall.line import FRAME_MS


class Recorder:
    """Collects downlink frames and played uplink chunks; `tracks` lays them on one timeline."""

    def __init__(self, sample_rate: int, t0: float, max_seconds: float = 3600.0) -> None:
        self.sample_rate = sample_rate
        self.origin = t0  # monotonic time of the caller track's first sample (refined as frames arrive)
        self._max_bytes = int(max_seconds * sample_rate) * 2
        self._caller = bytearray()
        self._frames = 0
        self._agent: list[tuple[float, bytes]] = []
        self._lock = threading.Lock()

    def caller(self, frame: bytes, arrival: float) -> None:
        """Append one downlink frame that arrived at monotonic `arrival` (capped at max_seconds)."""
        with self._lock:
            if self._frames == 0 or arrival - self._frames * FRAME_MS / 1000.0 < self.origin:
                self.origin = arrival - (self._frames + 1) * FRAME_MS / 1000.0
            self._frames += 1
            if len(self._caller) < self._max_bytes:
                self._caller += frame

    def agent(self, start: float, pcm: bytes) -> None:
        """A chunk that started to play at monotonic `start`."""
        with self._lock:
            self._agent.append((start, pcm))

    def cut(self, at: float) -> None:
        """Playback stopped at `at` (barge-in): audio planned after it never played."""
        with self._lock:
            kept = []
            for start, pcm in self._agent:
                played = max(0, int((at - start) * self.sample_rate)) * 2
                if played > 0:
                    kept.append((start, pcm[:played]))
            self._agent = kept

    def tracks(self) -> tuple[bytes, bytes]:
        """(caller, agent) PCM from the same origin; the outbox pads the shorter one."""
        with self._lock:
            agent = bytearray()
            for start, pcm in self._agent:
                offset = max(0, int((start - self.origin) * self.sample_rate)) * 2
                end = min(offset + len(pcm), self._max_bytes)
                if end <= offset:
                    continue
                if len(agent) < end:
                    agent += bytes(end - len(agent))
                agent[offset:end] = pcm[: end - offset]
            return bytes(self._caller), bytes(agent)
