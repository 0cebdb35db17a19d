"""`cellcall relay serve`: STT, LLM and TTS for several appliances over the frame protocol.

Threads: the accept loop owns the listening socket; each connection has a reader thread (owns the
socket's read side, answers HELLO, queues requests, turns RESET into "cancel + DONE now") and a
worker thread (owns the running request: runs the engine and writes its frames). Writes go through
`_Connection.send`, under one lock, and a request that was reset writes nothing more, so the
client sees DONE within a few ms of its RESET whatever the engine is still busy with. The engines
are shared by every connection (each serialises its own model; see stt, tts, llm modules).
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import queue
import socket
import ssl
import threading
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from cellcall.config import Settings
from cellcall.engines import ChatMessage, ChatModel, EngineError, Synthesizer, Transcriber
from cellcall.priority import favour_calls
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
from cellcall.serve.auth import ListenAddress, ServeError, parse_listen

log = logging.getLogger("cellcall.relay")
REQUESTS = (FrameType.UTTERANCE, FrameType.CHAT, FrameType.SPEAK, FrameType.PING)
MAX_CHAT_TOKENS = 1024
HEARTBEAT_S = 0.5  # a PING this often while an engine works without output
_END = object()


class RelayServeError(ServeError):
    """The relay cannot start: bad --listen, no token off loopback, missing TLS files."""


@dataclass
class RelayEngines:
    """What the relay runs: the three engines (shared by all connections) and their names."""

    stt: Transcriber
    tts: Synthesizer
    llm: ChatModel

    def models(self) -> dict[str, str]:
        return {kind: str(getattr(engine, "name", type(engine).__name__)) for kind, engine in vars(self).items()}


def load_relay_engines(settings: Settings) -> RelayEngines:
    """Local engines on this box's CPU or CUDA, per [relay] stt_device / stt_model / llm_model / llm_gpu_layers."""
    from cellcall.engines.llm import make_chat_model
    from cellcall.engines.llm.embedded import EmbeddedChatModel
    from cellcall.engines.models import gguf_model
    from cellcall.engines.stt import WHISPER_RATE, WhisperTranscriber
    from cellcall.engines.tts import PiperSynthesizer

    relay, stt, llm, cache = settings.relay, settings.stt, settings.llm, settings.cache_dir()
    if relay.stt_device not in ("cpu", "cuda"):
        raise EngineError(f"relay.stt_device must be cpu or cuda, got {relay.stt_device!r}")
    transcriber = WhisperTranscriber(
        relay.stt_model or stt.model, stt.threads, stt.beam_size, WHISPER_RATE, cache, stt.window_s, relay.stt_device
    )
    synthesizer = PiperSynthesizer(settings.tts.voice, 8000, settings.tts.length_scale)
    if llm.backend == "embedded" or relay.llm_model:
        model = gguf_model(relay.llm_model or llm.model, cache)
        chat: ChatModel = EmbeddedChatModel(model, llm.threads, llm.context, relay.llm_gpu_layers)
    else:
        chat = make_chat_model(llm, cache)
    return RelayEngines(transcriber, synthesizer, chat)


def _messages(data: dict) -> list[ChatMessage]:
    raw = data.get("messages")
    if not isinstance(raw, list) or not raw:
        raise ProtocolError("bad-request", "CHAT needs a non-empty messages list")
    out = []
    for item in raw:
        if not isinstance(item, dict) or not isinstance(item.get("role"), str) or not isinstance(item.get("content"), str):
            raise ProtocolError("bad-request", "each message needs a role and a content string")
        out.append(ChatMessage(item["role"], item["content"]))
    return out


def _with_heartbeats(frames: Iterator[bytes], cancel: threading.Event) -> Generator[bytes, None, None]:
    """`frames`, produced in a thread, with a PING whenever none came for HEARTBEAT_S (the client's
    stall deadline counts from the last frame, so a slow prefill is not mistaken for a dead relay)."""
    out: queue.Queue[object] = queue.Queue()

    def produce() -> None:
        try:
            for item in frames:
                out.put(item)
                if cancel.is_set():
                    break
        except Exception as exc:  # noqa: BLE001 - re-raised in the worker thread below
            out.put(exc)
        finally:
            close = getattr(frames, "close", None)
            if close is not None:
                close()
            out.put(_END)

    threading.Thread(target=produce, name="relay-engine", daemon=True).start()
    while True:
        try:
            item = out.get(timeout=HEARTBEAT_S)
        except queue.Empty:
            if cancel.is_set():
                return
            yield encode(FrameType.PING)
            continue
        if item is _END:
            return
        if isinstance(item, Exception):
            raise item
        assert isinstance(item, bytes)
        yield item


class _Connection:
    """One appliance connection: authenticated by HELLO, then requests one at a time."""

    def __init__(self, server: RelayServer, sock: socket.socket, peer: str) -> None:
        self.server, self.sock, self.peer = server, sock, peer
        self.reader = sock.makefile("rb")
        self._write = threading.Lock()
        self._requests: queue.Queue[Frame | None] = queue.Queue()
        self._cancel = threading.Event()  # the running request's; replaced per request under _write
        self._active = False  # a request is running and has not written its DONE
        self.call_id = ""

    def send(self, data: bytes, cancel: threading.Event | None = None) -> bool:
        """Write one frame unless the request it belongs to was reset; False when it was."""
        with self._write:
            if cancel is not None and cancel.is_set():
                return False
            self.sock.sendall(data)
            return True

    def serve(self) -> None:
        worker = threading.Thread(target=self._work, name=f"relay-work-{self.peer}", daemon=True)
        try:
            self.sock.settimeout(self.server.settings.relay.idle_timeout_s)
            self._hello()
            worker.start()
            self._read_requests()
        except ProtocolError as exc:
            log.info("relay %s: %s", self.peer, exc)
            self._error(exc.code, str(exc))
        except TimeoutError:
            self._error("idle", "idle timeout")
        except (OSError, ssl.SSLError) as exc:
            log.info("relay %s: connection lost: %s", self.peer, exc)
        finally:
            self._cancel.set()
            self._requests.put(None)
            if worker.is_alive():
                worker.join(5.0)
            self.drop()  # shutdown first: close() alone leaves the socket open while its reader file exists
            self.reader.close()
            self.sock.close()

    def drop(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _error(self, code: str, message: str) -> None:
        try:
            self.send(encode_json(FrameType.ERROR, {"code": code, "message": message}))
        except OSError:
            pass

    def _hello(self) -> None:
        frame = read_frame(self.reader, self.server.settings.relay.max_frame_bytes)
        if frame is None:
            raise ProtocolError("no-hello", "closed before HELLO")
        if frame.type is not FrameType.HELLO:
            raise ProtocolError("no-hello", f"the first frame must be HELLO, got {frame.type.name}")
        data = frame.json()
        if data.get("version") != PROTOCOL_VERSION:
            raise ProtocolError(
                "version", f"protocol version {data.get('version')!r} unsupported; this relay speaks {PROTOCOL_VERSION}"
            )
        token = self.server.settings.relay.token
        given = data.get("token", "")
        if token and not (isinstance(given, str) and hmac.compare_digest(given.encode("utf-8"), token.encode("utf-8"))):
            raise ProtocolError("unauthorized", "token refused")
        self.call_id = str(data.get("call_id", ""))[:64]
        engines = self.server.engines
        self.send(
            encode_json(
                FrameType.HELLO,
                {
                    "version": PROTOCOL_VERSION,
                    "models": engines.models(),
                    "stt_rate": engines.stt.sample_rate,
                    "tts_rate": engines.tts.sample_rate,
                },
            )
        )

    def _read_requests(self) -> None:
        limit = self.server.settings.relay.max_frame_bytes
        while (frame := read_frame(self.reader, limit)) is not None:
            if frame.type is FrameType.RESET:
                with self._write:
                    self._cancel.set()
                    if self._active:
                        self._active = False
                        self.sock.sendall(encode(FrameType.DONE))
                continue
            if frame.type not in REQUESTS:
                raise ProtocolError("bad-request", f"{frame.type.name} is not a request")
            self._check(frame)
            self._requests.put(frame)

    def _check(self, frame: Frame) -> None:
        """Validate a request before it is queued, so a malformed one closes the connection here."""
        if frame.type is FrameType.UTTERANCE:
            rate, _lang, pcm = decode_pcm(frame)
            limit = self.server.settings.relay.max_utterance_s
            if len(pcm) / 2 / rate > limit:
                raise ProtocolError("too-long", f"utterance of {len(pcm) / 2 / rate:.1f} s exceeds {limit:g} s")
        elif frame.type is FrameType.CHAT:
            data = frame.json()
            _messages(data)
            if not isinstance(data.get("schema", {}), dict):
                raise ProtocolError("bad-request", "CHAT schema must be a JSON object")
        elif frame.type is FrameType.SPEAK and not isinstance(frame.json().get("text"), str):
            raise ProtocolError("bad-request", "SPEAK needs a text string")

    def _work(self) -> None:
        while (frame := self._requests.get()) is not None:
            cancel, started = threading.Event(), time.perf_counter()
            with self._write:
                self._cancel, self._active = cancel, True
            try:
                with contextlib.closing(_with_heartbeats(self._run(frame, cancel), cancel)) as frames:
                    for out in frames:
                        if not self.send(out, cancel):
                            break  # reset: closing the generator stops the engine's stream too
            except (EngineError, ValueError) as exc:  # ValueError: a numeric field of the request
                self._finish(cancel, encode_json(FrameType.ERROR, {"code": "engine", "message": str(exc)}))
                continue
            except OSError:
                return
            self._finish(cancel, encode_json(FrameType.DONE, {"relay_ms": round((time.perf_counter() - started) * 1000, 3)}))

    def _finish(self, cancel: threading.Event, last: bytes) -> None:
        with self._write:
            if self._active and self._cancel is cancel:
                self._active = False
                try:
                    self.sock.sendall(last)
                except OSError:
                    pass

    def _run(self, frame: Frame, cancel: threading.Event) -> Generator[bytes, None, None]:
        engines = self.server.engines
        if frame.type is FrameType.PING:
            return
        if frame.type is FrameType.UTTERANCE:
            from cellcall.voice.audio import resample

            rate, language, pcm = decode_pcm(frame)
            if rate != engines.stt.sample_rate:
                pcm = resample(pcm, rate, engines.stt.sample_rate)
            result = engines.stt.transcribe(pcm, language)
            yield encode_json(FrameType.STT_TEXT, {"text": result.text, "audio_s": result.audio_s, "compute_s": result.compute_s})
        elif frame.type is FrameType.SPEAK:
            for pcm in engines.tts.synthesize(str(frame.json()["text"]), cancel):
                yield encode_pcm(FrameType.AUDIO_CHUNK, engines.tts.sample_rate, pcm)
        else:
            data = frame.json()
            messages = _messages(data)
            if data.get("warm"):
                engines.llm.warm(messages)
                return
            max_tokens = min(int(data.get("max_tokens", 160)), MAX_CHAT_TOKENS)
            temperature = float(data.get("temperature", 0.4))
            structured = getattr(engines.llm, "stream_json", None)  # the summary: a grammar from the schema
            if data.get("schema") and structured is not None:
                tokens = cast(Iterator[str], structured(messages, data["schema"], cancel, max_tokens))
            else:
                tokens = engines.llm.stream_chat(messages, cancel, max_tokens, temperature)
            for token in tokens:
                yield encode(FrameType.TOKEN, token.encode("utf-8"))


def check_listen(settings: Settings) -> ListenAddress:
    """The address to listen on; RelayServeError for a bad one, or off loopback without a long token."""
    relay = settings.relay
    try:
        address = parse_listen(relay.listen)
    except ServeError as exc:
        raise RelayServeError(str(exc)) from None
    if not address.loopback and not relay.token:
        raise RelayServeError(
            f"refusing to listen on {address.host}:{address.port} without a token: set CELLCALL_RELAY_TOKEN "
            "(or [relay] token in cellcall.toml), or listen on 127.0.0.1"
        )
    if relay.token and len(relay.token) < 16:
        raise RelayServeError("the relay token is too short: use at least 16 random characters (`openssl rand -hex 32`)")
    return address


class RelayServer:
    """Accepts appliances on `listen` until `stop()`; every connection gets its own threads."""

    def __init__(self, settings: Settings, engines: RelayEngines) -> None:
        relay = settings.relay
        address = check_listen(settings)
        self.settings, self.engines = settings, engines
        self._tls = self._tls_context(relay.tls_cert, relay.tls_key)
        self.tls = self._tls is not None
        self._sock = socket.create_server((address.host, address.port), reuse_port=False)
        self.port = self._sock.getsockname()[1]
        self._slots = threading.BoundedSemaphore(relay.max_clients)
        self._stopped = threading.Event()
        self._live: set[_Connection] = set()  # guarded by _live_lock; stop() closes them all
        self._live_lock = threading.Lock()

    @staticmethod
    def _tls_context(cert: str, key: str) -> ssl.SSLContext | None:
        if not cert and not key:
            return None
        if not (cert and key and Path(cert).is_file() and Path(key).is_file()):
            raise RelayServeError("TLS needs both --cert and --key, as readable PEM files")
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        return context

    def serve_forever(self) -> None:
        self._sock.settimeout(0.2)
        while not self._stopped.is_set():
            try:
                sock, addr = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._handle, args=(sock, f"{addr[0]}:{addr[1]}"), name="relay-conn", daemon=True).start()

    def _handle(self, sock: socket.socket, peer: str) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self._tls is not None:
            try:
                sock.settimeout(self.settings.relay.idle_timeout_s)
                sock = self._tls.wrap_socket(sock, server_side=True)
            except (OSError, ssl.SSLError) as exc:
                log.info("relay %s: TLS handshake failed: %s", peer, exc)
                sock.close()
                return
        if not self._slots.acquire(blocking=False):
            sock.sendall(encode_json(FrameType.ERROR, {"code": "busy", "message": "too many clients"}))
            sock.close()
            return
        connection = _Connection(self, sock, peer)
        with self._live_lock:
            self._live.add(connection)
        try:
            connection.serve()
        finally:
            with self._live_lock:
                self._live.discard(connection)
            self._slots.release()

    def stop(self) -> None:
        """Stop accepting and drop every connection (appliances fail over at once)."""
        self._stopped.set()
        self._sock.close()
        with self._live_lock:
            live = list(self._live)
        for connection in live:
            connection.drop()


def serve_relay(settings: Settings, announce: Callable[[str], None] = print) -> None:
    """Load the engines, then serve until Ctrl-C (what `cellcall relay serve` runs)."""
    check_listen(settings)  # before the models load: a refusal should not take seconds
    grant = favour_calls(settings.priority.call_nice)  # it serves live calls; the engines' threads inherit it
    engines = load_relay_engines(settings)
    server = RelayServer(settings, engines)
    scheme = "tls" if server.tls else "tcp"
    host = parse_listen(settings.relay.listen).host
    announce(
        f"relay listening on {scheme}://{host}:{server.port} ({'token required' if settings.relay.token else 'loopback, no token'})"
    )
    announce(f"models: {engines.models()}; {grant.describe()}")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
