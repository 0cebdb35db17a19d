"""The relay's frame format: encode/decode round trips, limits, and a fuzzed parser that never crashes."""

from __future__ import annotations

import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cellcall.relay.protocol import (
    HEADER,
    Frame,
    FrameType,
    ProtocolError,
    decode_pcm,
    encode,
    encode_json,
    encode_pcm,
    read_frame,
)


def frames_of(data: bytes, max_frame: int = 1 << 20) -> list[Frame]:
    stream, out = io.BytesIO(data), []
    while (frame := read_frame(stream, max_frame)) is not None:
        out.append(frame)
    return out


def test_header_is_type_then_big_endian_length() -> None:
    assert encode(FrameType.DONE) == b"\x04\x00\x00\x00\x00"
    assert encode(FrameType.TOKEN, b"hi") == b"\x09\x00\x00\x00\x02hi"


def test_utterance_carries_rate_language_and_pcm() -> None:
    pcm = bytes(range(200))
    (frame,) = frames_of(encode_pcm(FrameType.UTTERANCE, 8000, pcm, "en-US"))
    assert frame.type is FrameType.UTTERANCE and decode_pcm(frame) == (8000, "en-US", pcm)
    (chunk,) = frames_of(encode_pcm(FrameType.AUDIO_CHUNK, 22050, pcm))
    assert decode_pcm(chunk) == (22050, None, pcm)


def test_json_frames_round_trip_and_reject_non_objects() -> None:
    (frame,) = frames_of(encode_json(FrameType.HELLO, {"version": 1, "token": "x"}))
    assert frame.json() == {"version": 1, "token": "x"}
    with pytest.raises(ProtocolError) as err:
        Frame(FrameType.CHAT, b"[1, 2]").json()
    assert err.value.code == "bad-json"


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"\x7f\x00\x00\x00\x00", "bad-type"),
        (HEADER.pack(FrameType.UTTERANCE, 1 << 30), "too-large"),
        (b"\x04\x00\x00", "truncated"),
        (HEADER.pack(FrameType.TOKEN, 10) + b"abc", "truncated"),
    ],
)
def test_malformed_streams_raise_protocol_errors_with_a_code(data: bytes, code: str) -> None:
    with pytest.raises(ProtocolError) as err:
        frames_of(data)
    assert err.value.code == code


def test_oversized_length_is_refused_before_reading_the_payload() -> None:
    class NoPayload(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            assert size is None or size <= HEADER.size, "the reader asked for the oversized payload"
            return super().read(size)

    with pytest.raises(ProtocolError):
        read_frame(NoPayload(HEADER.pack(FrameType.SPEAK, 5000)), max_frame=4096)


@pytest.mark.parametrize(
    "payload", [b"\x00\x00", b"\x00\x00\x1f\x40\x09en", b"\x00\x00\x1f\x40\x00\x01", b"\x00\x00\x00\x05\x00"]
)
def test_bad_audio_payloads_are_protocol_errors(payload: bytes) -> None:
    with pytest.raises(ProtocolError) as err:
        decode_pcm(Frame(FrameType.UTTERANCE, payload))
    assert err.value.code == "bad-audio"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_fuzzed_bytes_parse_or_raise_protocol_error_only(data: bytes) -> None:
    try:
        for frame in frames_of(data, max_frame=32):
            assert len(frame.payload) <= 32
            if frame.type in (FrameType.UTTERANCE, FrameType.AUDIO_CHUNK):
                decode_pcm(frame)
            elif frame.payload:
                frame.json()
    except ProtocolError as exc:
        assert exc.code


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(list(FrameType)), st.binary(max_size=40)), max_size=8))
def test_any_sequence_of_frames_round_trips(items: list[tuple[FrameType, bytes]]) -> None:
    data = b"".join(encode(kind, payload) for kind, payload in items)
    assert frames_of(data) == [Frame(kind, payload) for kind, payload in items]
