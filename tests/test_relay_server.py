"""The relay server and the appliance's relay engines on loopback sockets, with small stand-in engines.

Real sockets and threads on 127.0.0.1; the engines are tests/relay_support.py's deterministic ones
(the slow tests in test_relay_e2e.py use the real models).
"""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
from relay_support import TOKEN, CountingStt, TickingLlm, ToneTts, relay_settings, running_relay

from cellcall.engines import ChatMessage, EngineError
from cellcall.relay.client import RelayChatModel, RelayError, RelayPool, RelaySynthesizer, RelayTranscriber, parse_relay_url
from cellcall.relay.failover import FailoverChatModel, FailoverTranscriber, RelayState
from cellcall.relay.protocol import PROTOCOL_VERSION, FrameType, encode, encode_json, read_frame
from cellcall.relay.server import RelayEngines, RelayServeError, RelayServer

HI = [ChatMessage("user", "hi")]


def raw_hello(port: int, token: str = TOKEN) -> tuple[socket.socket, object]:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    reader = sock.makefile("rb")
    sock.sendall(encode_json(FrameType.HELLO, {"version": PROTOCOL_VERSION, "token": token}))
    return sock, reader


def test_the_three_engines_cross_the_relay_intact() -> None:
    with running_relay(relay_settings()) as (_server, url):
        pool = RelayPool(url, TOKEN)
        assert pool.connect()["models"] == {"stt": "counting-stt", "tts": "tone-tts", "llm": "ticking-llm"}
        assert RelayTranscriber(pool).transcribe(b"\x01\x00" * 1600, "en").text == "1600 samples en"
        assert RelayTranscriber(pool, 8000).transcribe(b"\x01\x00" * 800).text == "1600 samples -"  # relay resamples
        assert "".join(RelayChatModel(pool).stream_chat(HI)) == "t0 t1 t2 t3 t4 "
        chunks = list(RelaySynthesizer(pool).synthesize("Hello."))
        assert [len(c) for c in chunks] == [1600, 1600, 1600]
        print(f"loopback PING round trip: {pool.ping() * 1000:.2f} ms")


def test_wrong_token_is_refused_without_echoing_any_token() -> None:
    with running_relay(relay_settings()) as (_server, url):
        with pytest.raises(RelayError) as err:
            RelayPool(url, "not-the-token-at-all-000000").connect()
        assert "unauthorized" in str(err.value)
        assert TOKEN not in str(err.value) and "not-the-token" not in str(err.value)


def test_reset_stops_generation_and_answers_done_at_once() -> None:
    llm = TickingLlm(count=10_000, tick_s=0.01)
    with running_relay(relay_settings(), RelayEngines(CountingStt(), ToneTts(), llm)) as (_server, url):
        pool = RelayPool(url, TOKEN)
        cancel = threading.Event()
        tokens = RelayChatModel(pool).stream_chat(HI, cancel)
        assert next(tokens) == "t0 "
        cancel.set()
        started = time.monotonic()
        assert list(tokens) == []  # RESET sent, DONE awaited
        stopped_ms = (time.monotonic() - started) * 1000
        deadline = time.monotonic() + 1.0
        while llm.cancelled_at is None and time.monotonic() < deadline:
            time.sleep(0.005)
        assert llm.cancelled_at is not None, "the relay's model was never told to stop"
        print(f"RESET -> DONE {stopped_ms:.1f} ms; model stopped {(llm.cancelled_at - started) * 1000:.1f} ms after cancel")
        assert stopped_ms < 50 and llm.cancelled_at - started < 0.05
        assert "".join(RelayChatModel(pool).stream_chat(HI)) != ""  # the connection serves the next request


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (b"\x7f\x00\x00\x00\x00", "bad-type"),
        (encode(FrameType.CHAT, b"{not json"), "bad-json"),
        (encode(FrameType.UTTERANCE, b"\x00"), "bad-audio"),
        (encode(FrameType.STT_TEXT, b"{}"), "bad-request"),
        (b"\x06\x7f\xff\xff\xff", "too-large"),
    ],
)
def test_a_malformed_frame_gets_error_and_closes_only_that_connection(frame: bytes, code: str) -> None:
    with running_relay(relay_settings(max_frame_bytes=64 * 1024)) as (server, url):
        pool = RelayPool(url, TOKEN)
        pool.connect()
        sock, reader = raw_hello(server.port)
        assert read_frame(reader).type is FrameType.HELLO
        sock.sendall(frame)
        error = read_frame(reader)
        assert error is not None and error.type is FrameType.ERROR and error.json()["code"] == code
        assert read_frame(reader) is None  # closed
        sock.close()
        assert "".join(RelayChatModel(pool).stream_chat(HI)) == "t0 t1 t2 t3 t4 "  # the other one goes on


def test_an_utterance_over_the_length_limit_is_refused() -> None:
    with running_relay(relay_settings(max_utterance_s=1.0)) as (_server, url):
        with pytest.raises(RelayError, match="too-long"):
            RelayTranscriber(RelayPool(url, TOKEN)).transcribe(bytes(2 * 16000 * 2))


def test_requests_before_hello_and_bad_versions_are_refused() -> None:
    with running_relay(relay_settings()) as (server, _url):
        for first, code in ((encode(FrameType.PING), "no-hello"), (encode_json(FrameType.HELLO, {"version": 99}), "version")):
            with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
                sock.sendall(first)
                error = read_frame(sock.makefile("rb"))
                assert error is not None and error.json()["code"] == code


def test_clients_beyond_the_limit_are_told_busy_and_idle_ones_are_closed() -> None:
    with running_relay(relay_settings(max_clients=1, idle_timeout_s=0.3)) as (server, url):
        first = RelayPool(url, TOKEN)
        first.connect()
        with pytest.raises(RelayError, match="busy"):
            RelayPool(url, TOKEN).connect()
        sock, reader = raw_hello(server.port)  # refused too, then the first goes idle and is closed
        assert read_frame(reader).json()["code"] == "busy"
        sock.close()
        time.sleep(0.6)
        RelayPool(url, TOKEN).connect()  # the idle one was closed: its slot is free


def test_listening_off_loopback_needs_a_long_token() -> None:
    engines = RelayEngines(CountingStt(), ToneTts(), TickingLlm())
    for token, message in (("", "without a token"), ("short", "too short")):
        settings = relay_settings(token)
        settings.relay.listen = "0.0.0.0:0"
        with pytest.raises(RelayServeError, match=message):
            RelayServer(settings, engines)


def test_relay_urls_are_checked() -> None:
    assert str(parse_relay_url("tls://gpu.lan:8770")) == "tls://gpu.lan:8770"
    for bad in ("gpu.lan:8770", "http://gpu:1", "tcp://gpu", "tcp://gpu:notaport"):
        with pytest.raises(RelayError, match="must look like"):
            parse_relay_url(bad)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_relay_that_is_down_hands_the_request_to_the_local_engine() -> None:
    local = CountingStt()
    loads: list[int] = []

    def load_local() -> CountingStt:
        loads.append(1)
        return local

    state = RelayState()
    stt = FailoverTranscriber(
        RelayTranscriber(RelayPool(f"tcp://127.0.0.1:{free_port()}", TOKEN, 0.5)), load_local, state, "lazy"
    )
    assert stt.transcribe(b"\x00\x00" * 10).text == "10 samples -" and stt.last_served == "local"
    assert state.failures == 1 and not state.usable()
    stt.transcribe(b"\x00\x00" * 10)  # skipped straight to local: no second deadline
    assert state.failures == 1 and len(loads) == 2


def test_a_stalled_relay_fails_over_after_the_deadline() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:  # accepts, never answers
        url = f"tcp://127.0.0.1:{listener.getsockname()[1]}"
        llm = FailoverChatModel(RelayChatModel(RelayPool(url, TOKEN, 1.0)), TickingLlm, RelayState(), "warm")
        started = time.monotonic()
        assert "".join(llm.stream_chat(HI)) == "t0 t1 t2 t3 t4 " and llm.last_served == "local"
        assert time.monotonic() - started < 3.0


def test_fallback_none_raises_instead_of_loading_local_engines() -> None:
    def never() -> CountingStt:
        raise AssertionError("relay_fallback none must not load a local engine")

    stt = FailoverTranscriber(
        RelayTranscriber(RelayPool(f"tcp://127.0.0.1:{free_port()}", TOKEN, 0.3)), never, RelayState(), "none"
    )
    with pytest.raises(EngineError, match="relay_fallback is none"):
        stt.transcribe(b"\x00\x00")


def test_a_relay_that_dies_mid_stream_ends_that_reply_and_the_next_is_local() -> None:
    llm_engine = TickingLlm(count=10_000, tick_s=0.005)
    with running_relay(relay_settings(), RelayEngines(CountingStt(), ToneTts(), llm_engine)) as (server, url):
        llm = FailoverChatModel(RelayChatModel(RelayPool(url, TOKEN, 0.5)), TickingLlm, RelayState(), "warm")
        tokens = llm.stream_chat(HI)
        assert next(tokens) == "t0 " and llm.last_served == "relay"
        server.stop()
        rest = list(tokens)
        assert len(rest) < 10_000
        assert "".join(llm.stream_chat(HI)) == "t0 t1 t2 t3 t4 " and llm.last_served == "local"


def test_doctor_reports_the_relay_its_models_and_a_round_trip_and_a_refused_token() -> None:
    from cellcall.relay.doctor import check_relay

    with running_relay(relay_settings()) as (_server, url):
        settings = relay_settings()
        settings.engines.relay = url
        lines, ok = check_relay(settings)
        assert ok and "token accepted" in lines[0] and "counting-stt" in lines[1] and lines[2].startswith("rtt")
        settings.relay.token = "another-long-token-000000000000"
        lines, ok = check_relay(settings)
        assert not ok and "unauthorized" in lines[0] and "another-long" not in "\n".join(lines)


def test_tls_relay_serves_a_client_that_trusts_its_certificate_only(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"]
        + ["-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    with running_relay(relay_settings(tls_cert=str(cert), tls_key=str(key))) as (_server, url):
        tls_url = url.replace("tcp://", "tls://")
        pool = RelayPool(tls_url, TOKEN, ca=str(cert))
        assert "".join(RelayChatModel(pool).stream_chat(HI)) == "t0 t1 t2 t3 t4 "
        with pytest.raises(RelayError, match="unreachable"):
            RelayPool(tls_url, TOKEN, 1.0).connect()  # the system's CAs do not know this certificate
        with pytest.raises(RelayError):
            RelayPool(url, TOKEN, 1.0).connect()  # plain TCP to a TLS relay


def test_tls_needs_both_files() -> None:
    settings = relay_settings(tls_cert="/nonexistent/cert.pem")
    with pytest.raises(RelayServeError, match="both --cert and --key"):
        RelayServer(settings, RelayEngines(CountingStt(), ToneTts(), TickingLlm()))


def test_served_label_is_one_word_when_all_agree() -> None:
    from cellcall.relay.engines import served_label

    assert served_label({"stt": "relay", "llm": "relay", "tts": "relay"}) == "relay"
    assert served_label({"stt": "relay", "llm": "local", "tts": ""}) == "stt=relay llm=local tts=-"


class SchemaLlm(TickingLlm):
    """A model that can hold its reply to a schema, like the embedded llama.cpp one."""

    def __init__(self) -> None:
        super().__init__()
        self.schemas: list[dict] = []

    def stream_json(self, messages, schema, cancel, max_tokens):
        self.schemas.append(schema)
        yield '{"summary": "ok"}'


def test_the_summary_keeps_its_json_schema_through_the_relay() -> None:
    from cellcall.engines.summary import SCHEMA, StructuredChatModel

    llm_engine = SchemaLlm()
    with running_relay(relay_settings(), RelayEngines(CountingStt(), ToneTts(), llm_engine)) as (_server, url):
        llm = FailoverChatModel(RelayChatModel(RelayPool(url, TOKEN)), TickingLlm, RelayState(), "warm")
        assert isinstance(llm, StructuredChatModel)
        assert "".join(llm.stream_json(HI, SCHEMA, None, 200)) == '{"summary": "ok"}' and llm.last_served == "relay"
        assert llm_engine.schemas == [SCHEMA]


def test_engines_with_a_relay_use_it_and_load_nothing_local_when_lazy() -> None:
    from cellcall.config import load_settings
    from cellcall.engines.cache import Engines

    with running_relay(relay_settings()) as (_server, url):
        env = {"CELLCALL_ENGINES_RELAY": url, "CELLCALL_ENGINES_RELAY_FALLBACK": "lazy", "CELLCALL_RELAY_TOKEN": TOKEN}
        settings = load_settings(env=env)
        assert settings.engines.relay == url and settings.source_of("relay.token") == "env:CELLCALL_RELAY_TOKEN"
        engines = Engines(settings)
        engines.preload()
        assert engines.stt().transcribe(b"\x00\x00" * 4).text == "4 samples -"
        assert "".join(engines.llm().stream_chat(HI)) == "t0 t1 t2 t3 t4 "
        assert b"".join(engines.tts().synthesize("Hi.")) and engines.served_by() == dict.fromkeys(("stt", "llm", "tts"), "relay")
        time.sleep(0.2)  # the preload thread has run
        assert all(getattr(engines, name)._future is None for name in ("_stt", "_tts", "_llm"))
        assert TOKEN not in repr(settings.effective())


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("relay_fallback", "sometimes", "relay_fallback"),
        ("relay", "gpu.lan:8770", "must look like"),
        ("relay_timeout_s", 0.1, "at least"),
    ],
)
def test_bad_relay_settings_are_engine_errors(key: str, value: object, message: str) -> None:
    from cellcall.config import Settings
    from cellcall.engines.cache import Engines

    settings = Settings()
    settings.engines.relay = "tcp://127.0.0.1:8770"
    setattr(settings.engines, key, value)
    with pytest.raises(EngineError, match=message):
        Engines(settings)


def test_a_connection_the_relay_closed_while_idle_is_not_lent_again() -> None:
    with running_relay(relay_settings(idle_timeout_s=0.3)) as (_server, url):
        pool = RelayPool(url, TOKEN)
        stt = FailoverTranscriber(RelayTranscriber(pool), CountingStt, RelayState(), "warm")
        stt.transcribe(b"\x00\x00")
        time.sleep(0.8)  # the relay closes the idle connection
        stt.transcribe(b"\x00\x00")
        assert stt.last_served == "relay"  # a fresh connection, not a failover


def test_latency_report_says_which_engines_served_each_reply() -> None:
    from datetime import UTC, datetime

    from cellcall.outbox import render_latency
    from cellcall.record import CallRecord, CallStatus, Direction, TurnLatency

    record = CallRecord("abc", "dentist", None, Direction.OUTBOUND, CallStatus.COMPLETED, datetime.now(UTC))
    record.latency = [
        TurnLatency(1, first_audio_ms=900, served_by="relay"),
        TurnLatency(2, first_audio_ms=1500, served_by="local"),
    ]
    text = render_latency(record)
    assert "Engines that served each reply (engines.relay): 1 relay; 2 local." in text
    record.latency = [TurnLatency(1, first_audio_ms=900)]
    assert "Engines that served" not in render_latency(record)
