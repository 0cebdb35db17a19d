"""Downlink framing: unaligned reads from a real pty re-framed byte-exactly; rate detection."""

from __future__ import annotations

import os
import random
import threading
import tty

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cellcall.line import frame_bytes
from cellcall.line.framing import RateDetector, Reframer, nearest_rate


@given(st.lists(st.binary(min_size=0, max_size=1500), max_size=40))
def test_reframer_is_byte_exact_for_any_chunking(chunks: list[bytes]) -> None:
    reframer = Reframer(320)
    frames = [frame for chunk in chunks for frame in reframer.feed(chunk)]
    stream = b"".join(chunks)
    assert all(len(frame) == 320 for frame in frames)
    assert b"".join(frames) == stream[: len(frames) * 320]
    assert reframer.leftover == len(stream) % 320


def test_unaligned_pty_reads_reframed_byte_exactly() -> None:
    """Odd-sized writes on one end of a pty, whatever-sized reads on the other."""
    rng = random.Random(7)
    stream = rng.randbytes(64_000)  # 2 s of 16 kHz audio
    master, slave = os.openpty()
    tty.setraw(slave)

    def send() -> None:
        pos = 0
        while pos < len(stream):
            size = rng.choice([1, 3, 77, 319, 321, 641, 1001])
            pos += os.write(master, stream[pos : pos + size])

    sender = threading.Thread(target=send)
    sender.start()
    reframer = Reframer(frame_bytes(16000))
    frames, reads = [], []
    while sum(map(len, frames)) + reframer.leftover < len(stream):
        data = os.read(slave, rng.choice([5, 333, 4096]))
        reads.append(len(data))
        frames += reframer.feed(data)
    sender.join()
    os.close(master)
    os.close(slave)
    assert any(n % 2 for n in reads), "the test should exercise odd-sized reads"
    assert b"".join(frames) == stream and reframer.leftover == 0
    assert {len(f) for f in frames} == {640}


def test_reframer_rejects_odd_frame_sizes() -> None:
    with pytest.raises(ValueError, match="multiple of 2"):
        Reframer(321)


@pytest.mark.parametrize(("rate", "bytes_per_s"), [(8000, 16000), (16000, 32000)])
def test_rate_detector_from_unaligned_arrivals(rate: int, bytes_per_s: int) -> None:
    detector = RateDetector(window_s=0.4)
    now, decided = 100.0, None
    detector.feed(5000, now)  # an initial burst is not counted
    while decided is None:
        now += 0.013
        decided = detector.feed(round(bytes_per_s * 0.013) | 1, now)
    assert decided == rate
    assert detector.measured_bps == pytest.approx(bytes_per_s, rel=0.05)


def test_nearest_rate() -> None:
    assert nearest_rate(15_000) == 8000 and nearest_rate(30_500) == 16000


def test_downlink_queue_drops_the_oldest_frame_beyond_its_limit_and_times_out_empty() -> None:
    from cellcall.line.framing import DownlinkQueue

    frames = DownlinkQueue(limit=2)
    for frame in (b"a", b"b", b"c"):
        frames.push(frame)
    assert frames.dropped == 1
    assert [frames.read(0.0), frames.read(0.0), frames.read(0.01)] == [b"b", b"c", None]
    frames.push(b"d")
    frames.clear()
    assert frames.read(0.0) is None
