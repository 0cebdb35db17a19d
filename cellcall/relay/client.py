"""The appliance side of the relay: Transcriber, ChatModel and Synthesizer over the frame protocol.

Each request borrows one connection from a small pool (the voice loop transcribes, thinks and speaks
in different threads, so two or three run at once) and gives it back when its DONE arrived. Each
connection has one reader thread (owns the socket's read side, queues frames); the borrowing
request owns the write side. Every request has a deadline: no first answer, or a gap between
frames, longer than `timeout_s` raises RelayError and closes that connection, so the caller can
hand the turn to the local engines. The relay sends a PING every 0.5 s while an engine works without
output, so a long prefill is not taken for a stall. A cancel sends RESET and waits briefly for DONE.
"""

from __future__ import annotations

import json
import queue
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from cellcall.engines import ChatMessage, EngineError, Transcript
from cellcall.relay.protocol import (
    PROTOCOL_VERSION,
    Frame,
    FrameType,
    ProtocolError,
    decode_pcm,
    encode,
    encode_json,
    encode_pcm,
    read_frame,
)

POLL_S = 0.01  # how often a waiting request looks at its cancel event
RESET_WAIT_S = 0.5  # after RESET, how long the DONE may take before the connection is dropped
_CLOSED = object()


class RelayError(EngineError):
    """The relay is down, refused us, stalled or broke the protocol (the message never holds the token)."""


@dataclass(frozen=True)
class RelayAddress:
    host: str
    port: int
    tls: bool

    def __str__(self) -> str:
        return f"{'tls' if self.tls else 'tcp'}://{self.host}:{self.port}"


def parse_relay_url(url: str) -> RelayAddress:
    """`tcp://HOST:PORT` or `tls://HOST:PORT`; RelayError with an example otherwise."""
    parts = urlsplit(url.strip())
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme not in ("tcp", "tls") or not parts.hostname or port is None:
        raise RelayError(f"engines.relay {url!r} must look like tcp://192.168.1.20:8770 or tls://gpu.lan:8770")
    return RelayAddress(parts.hostname, port, parts.scheme == "tls")


class RelayConnection:
    """One authenticated connection; `hello` is the relay's HELLO (models and rates)."""

    def __init__(self, address: RelayAddress, token: str, call_id: str, timeout_s: float, ca: str = "") -> None:
        self.address, self.timeout_s = address, timeout_s
        try:
            sock = socket.create_connection((address.host, address.port), timeout=timeout_s)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if address.tls:
                context = ssl.create_default_context(cafile=ca or None)
                sock = context.wrap_socket(sock, server_hostname=address.host)
            sock.settimeout(None)
        except (OSError, ssl.SSLError) as exc:
            raise RelayError(f"relay {address} unreachable: {exc}") from None
        self._sock = sock
        self._frames: queue.Queue[object] = queue.Queue()
        self.broken = False
        threading.Thread(target=self._read, args=(sock.makefile("rb"),), name="relay-read", daemon=True).start()
        self.send(encode_json(FrameType.HELLO, {"version": PROTOCOL_VERSION, "token": token, "call_id": call_id}))
        reply = self.next_frame(time.monotonic() + timeout_s)
        if reply.type is not FrameType.HELLO:
            self.close()
            raise RelayError(f"relay {address} answered HELLO with {reply.type.name}")
        self.hello: dict[str, Any] = reply.json()

    def _read(self, reader: Any) -> None:
        try:
            while (frame := read_frame(reader)) is not None:
                self._frames.put(frame)
        except (OSError, ProtocolError, ValueError) as exc:
            self._frames.put(exc)
        self.broken = True  # e.g. the relay closed an idle connection: the pool must not lend it again
        self._frames.put(_CLOSED)

    def send(self, data: bytes) -> None:
        try:
            self._sock.sendall(data)
        except OSError as exc:
            self.close()
            raise RelayError(f"relay {self.address}: send failed: {exc}") from None

    def next_frame(self, deadline: float, cancel: threading.Event | None = None) -> Frame:
        """The next frame before `deadline`; an ERROR frame, a stall or a closed socket raise RelayError."""
        while True:
            if cancel is not None and cancel.is_set():
                raise _Cancelled
            left = deadline - time.monotonic()
            if left <= 0:
                self.close()
                raise RelayError(f"relay {self.address} stalled: no answer within {self.timeout_s:g} s")
            try:
                item = self._frames.get(timeout=min(left, POLL_S) if cancel is not None else left)
            except queue.Empty:
                continue
            if isinstance(item, Frame):
                if item.type is FrameType.ERROR:
                    self.close()
                    detail = item.json() if item.payload else {}
                    raise RelayError(f"relay {self.address} refused: {detail.get('code', '?')}: {detail.get('message', '')}")
                return item
            self.close()
            raise RelayError(f"relay {self.address} closed the connection" + (f": {item}" if isinstance(item, Exception) else ""))

    def reset(self) -> None:
        """Tell the relay to stop the running request and wait for its DONE (else drop the connection)."""
        try:
            self.send(encode(FrameType.RESET))
            deadline = time.monotonic() + RESET_WAIT_S
            while self.next_frame(deadline).type is not FrameType.DONE:
                pass
        except RelayError:
            self.close()

    def close(self) -> None:
        self.broken = True
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()


class _Cancelled(Exception):
    """The caller's cancel event was set while a request waited (internal)."""


class RelayPool:
    """Idle authenticated connections to one relay, opened on demand, shared by the three engines."""

    def __init__(self, url: str, token: str, timeout_s: float = 3.0, ca: str = "") -> None:
        self.address = parse_relay_url(url)
        self._token, self._timeout_s, self._ca = token, timeout_s, ca
        self.call_id = uuid.uuid4().hex[:12]  # one id per appliance process: the relay logs and orders by it
        self._idle: list[RelayConnection] = []
        self._lock = threading.Lock()
        self.hello: dict[str, Any] = {}
        self.on_done: Callable[[float, float], None] | None = None  # (wall s, relay's own s) per request: the bench

    @property
    def timeout_s(self) -> float:
        return self._timeout_s

    def borrow(self) -> RelayConnection:
        with self._lock:
            while self._idle:
                connection = self._idle.pop()
                if not connection.broken:
                    return connection
        connection = RelayConnection(self.address, self._token, self.call_id, self._timeout_s, self._ca)
        self.hello = connection.hello
        return connection

    def give_back(self, connection: RelayConnection) -> None:
        if not connection.broken:
            with self._lock:
                self._idle.append(connection)

    def connect(self) -> dict[str, Any]:
        """Open one connection now (while the phone rings) and return the relay's HELLO."""
        connection = self.borrow()
        self.give_back(connection)
        return connection.hello

    def request(self, frame: bytes, cancel: threading.Event | None = None, first_s: float | None = None) -> Iterator[Frame]:
        """Send one request and yield its answer frames up to (not including) DONE; RESET on cancel."""
        connection = self.borrow()
        done = False
        try:
            sent = time.perf_counter()
            connection.send(frame)
            deadline = time.monotonic() + (first_s or self._timeout_s)
            while True:
                reply = connection.next_frame(deadline, cancel)
                if reply.type is FrameType.DONE:
                    done = True
                    if self.on_done is not None and reply.payload:
                        self.on_done(time.perf_counter() - sent, float(reply.json().get("relay_ms", 0.0)) / 1000)
                    return
                if reply.type is not FrameType.PING:  # PING from the relay: still working (a long prefill)
                    yield reply
                deadline = time.monotonic() + self._timeout_s
        except _Cancelled:
            connection.reset()
            done = True
        finally:
            if not done and not connection.broken:
                connection.reset()  # the reader stopped early (closed generator): the relay must stop too
            self.give_back(connection)

    def ping(self) -> float:
        """Round-trip seconds of one PING (authenticated connection already open)."""
        started = time.perf_counter()
        for _ in self.request(encode(FrameType.PING)):
            pass
        return time.perf_counter() - started


class RelayTranscriber:
    """Implements `Transcriber` on the relay: one UTTERANCE, one STT_TEXT."""

    def __init__(self, pool: RelayPool, sample_rate: int = 16000) -> None:
        self._pool, self.sample_rate = pool, sample_rate
        self.name = f"relay:{pool.address}"

    def transcribe(self, pcm: bytes, language: str | None = None) -> Transcript:
        started = time.perf_counter()
        audio_s = len(pcm) / 2 / self.sample_rate
        frames = self._pool.request(
            encode_pcm(FrameType.UTTERANCE, self.sample_rate, pcm, language), first_s=self._pool.timeout_s + audio_s
        )
        text = ""
        for frame in frames:
            if frame.type is FrameType.STT_TEXT:
                text = str(frame.json().get("text", ""))
        return Transcript(text, audio_s, time.perf_counter() - started)


class RelayChatModel:
    """Implements `ChatModel` on the relay: CHAT answered by TOKEN frames; cancel sends RESET."""

    def __init__(self, pool: RelayPool) -> None:
        self._pool = pool
        self.name = f"relay:{pool.address}"

    def stream_chat(
        self,
        messages: list[ChatMessage],
        cancel: threading.Event | None = None,
        max_tokens: int = 160,
        temperature: float = 0.4,
    ) -> Iterator[str]:
        request = {"messages": [vars(m) for m in messages], "max_tokens": max_tokens, "temperature": temperature}
        for frame in self._pool.request(encode_json(FrameType.CHAT, request), cancel or threading.Event()):
            if frame.type is FrameType.TOKEN:
                yield frame.payload.decode("utf-8", errors="replace")

    def stream_json(
        self, messages: list[ChatMessage], schema: dict[str, Any], cancel: threading.Event | None, max_tokens: int
    ) -> Iterator[str]:
        """Like `stream_chat` at temperature 0, held to `schema` where the relay's model can (llama.cpp)."""
        request = {"messages": [vars(m) for m in messages], "max_tokens": max_tokens, "temperature": 0.0, "schema": schema}
        for frame in self._pool.request(encode_json(FrameType.CHAT, request), cancel or threading.Event()):
            if frame.type is FrameType.TOKEN:
                yield frame.payload.decode("utf-8", errors="replace")

    def warm(self, messages: list[ChatMessage]) -> None:
        request = {"messages": [vars(m) for m in messages], "warm": True}
        for _ in self._pool.request(encode_json(FrameType.CHAT, request)):
            pass


class RelaySynthesizer:
    """Implements `Synthesizer` on the relay: SPEAK answered by AUDIO_CHUNK frames at `sample_rate`."""

    def __init__(self, pool: RelayPool, sample_rate: int = 8000) -> None:
        self._pool, self.sample_rate = pool, sample_rate
        self.name = f"relay:{pool.address}"

    def synthesize(self, text: str, cancel: threading.Event | None = None) -> Iterator[bytes]:
        from cellcall.voice.audio import resample

        for frame in self._pool.request(encode_json(FrameType.SPEAK, {"text": text}), cancel or threading.Event()):
            if frame.type is FrameType.AUDIO_CHUNK:
                rate, _lang, pcm = decode_pcm(frame)
                yield pcm if rate == self.sample_rate else resample(pcm, rate, self.sample_rate)


def describe(hello: dict[str, Any]) -> str:
    """One line of the relay's models for `cellcall doctor`."""
    models = hello.get("models") or {}
    return json.dumps(models, sort_keys=True) if models else "no models reported"
