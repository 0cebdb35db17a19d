"""The relay's wire format: frames `[type:1][length:4, big-endian][payload]` over TCP or TLS.

One connection carries one request at a time (HELLO first, then UTTERANCE, CHAT, SPEAK or PING,
each answered by its frames and a DONE or an ERROR); RESET may arrive while a request runs and is
answered by that request's DONE at once. Binary payloads (PCM) carry their sample rate in front;
everything else is UTF-8 JSON or text. The reader enforces the size limit before it allocates, so
a hostile length field costs nothing.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, BinaryIO

PROTOCOL_VERSION = 1
HEADER = struct.Struct(">BI")
RATE = struct.Struct(">I")
DEFAULT_MAX_FRAME = 4 * 1024 * 1024  # 4 MiB: two minutes of 16 kHz PCM


class FrameType(IntEnum):
    UTTERANCE = 0x01  # [rate:4][lang_len:1][lang][s16le PCM] -> STT_TEXT, DONE
    STT_TEXT = 0x02  # JSON {"text", "audio_s", "compute_s"}
    AUDIO_CHUNK = 0x03  # [rate:4][s16le PCM], one or more per sentence
    DONE = 0x04  # the request is over (also the answer to RESET); JSON {"relay_ms"} or empty
    RESET = 0x05  # the caller barged in: stop the running request
    HELLO = 0x06  # JSON; client: {"version", "token", "call_id"}; relay: {"version", "models", "tts_rate", "stt_rate"}
    ERROR = 0x07  # JSON {"code", "message"}; after a protocol error the relay closes the connection
    CHAT = 0x08  # JSON {"messages", "max_tokens", "temperature", "warm", "schema"} -> TOKEN..., DONE
    TOKEN = 0x09  # UTF-8 text of one generated token
    SPEAK = 0x0A  # JSON {"text"} -> AUDIO_CHUNK..., DONE (text-only TTS: openings, replies)
    PING = 0x0B  # empty -> DONE (round trip for `cellcall doctor` and the bench)


class ProtocolError(ValueError):
    """The peer sent something that is not a valid frame; `code` goes into the ERROR frame."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Frame:
    type: FrameType
    payload: bytes = b""

    def json(self) -> dict[str, Any]:
        """The payload as a JSON object; ProtocolError if it is not one."""
        try:
            data = json.loads(self.payload.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ProtocolError("bad-json", f"{self.type.name} payload is not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ProtocolError("bad-json", f"{self.type.name} payload must be a JSON object")
        return data


def encode(kind: FrameType, payload: bytes = b"") -> bytes:
    return HEADER.pack(kind, len(payload)) + payload


def encode_json(kind: FrameType, data: dict[str, Any]) -> bytes:
    return encode(kind, json.dumps(data, separators=(",", ":")).encode("utf-8"))


def encode_pcm(kind: FrameType, rate: int, pcm: bytes, language: str | None = None) -> bytes:
    """UTTERANCE (with its language) or AUDIO_CHUNK (without)."""
    head = RATE.pack(rate)
    if kind is FrameType.UTTERANCE:
        lang = (language or "").encode("utf-8")[:255]
        head += bytes([len(lang)]) + lang
    return encode(kind, head + pcm)


def decode_pcm(frame: Frame, max_rate: int = 192_000) -> tuple[int, str | None, bytes]:
    """(rate, language, pcm) of an UTTERANCE or AUDIO_CHUNK; ProtocolError when malformed."""
    data = frame.payload
    if len(data) < RATE.size:
        raise ProtocolError("bad-audio", f"{frame.type.name} is shorter than its rate field")
    (rate,) = RATE.unpack_from(data)
    offset, language = RATE.size, None
    if frame.type is FrameType.UTTERANCE:
        if len(data) < offset + 1 or len(data) < offset + 1 + data[offset]:
            raise ProtocolError("bad-audio", "UTTERANCE language field runs past the frame")
        size = data[offset]
        try:
            language = data[offset + 1 : offset + 1 + size].decode("utf-8") or None
        except UnicodeDecodeError:
            raise ProtocolError("bad-audio", "UTTERANCE language is not UTF-8") from None
        offset += 1 + size
    pcm = data[offset:]
    if not 1000 <= rate <= max_rate:
        raise ProtocolError("bad-audio", f"sample rate {rate} Hz is out of range")
    if len(pcm) % 2:
        raise ProtocolError("bad-audio", "PCM must be s16le (an even number of bytes)")
    return rate, language, pcm


def _read_exact(stream: BinaryIO, size: int) -> bytes | None:
    """Exactly `size` bytes, or None at a clean end of stream before the first byte."""
    chunks, got = [], 0
    while got < size:
        chunk = stream.read(size - got)
        if not chunk:
            if got == 0:
                return None
            raise ProtocolError("truncated", f"the stream ended {size - got} bytes into a frame")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def read_frame(stream: BinaryIO, max_frame: int = DEFAULT_MAX_FRAME) -> Frame | None:
    """The next frame, or None when the peer closed between frames; ProtocolError when malformed."""
    header = _read_exact(stream, HEADER.size)
    if header is None:
        return None
    kind, length = HEADER.unpack(header)
    try:
        frame_type = FrameType(kind)
    except ValueError:
        raise ProtocolError("bad-type", f"unknown frame type 0x{kind:02x}") from None
    if length > max_frame:
        raise ProtocolError("too-large", f"{frame_type.name} frame of {length} bytes exceeds the {max_frame}-byte limit")
    payload = _read_exact(stream, length) if length else b""
    if payload is None:
        raise ProtocolError("truncated", f"the stream ended before the {frame_type.name} payload")
    return Frame(frame_type, payload)
