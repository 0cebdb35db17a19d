"""cellcall.toml + CELLCALL_* environment + CLI flags -> one Settings object, with provenance.

Precedence, lowest first: built-in defaults, `~/.config/cellcall/cellcall.toml`, `./cellcall.toml`
(the first one found of the two is used), `CELLCALL_<SECTION>_<KEY>` environment variables, flags.
Dialling policy lives here and only here: goal files can never loosen it.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SECRET_MARKERS = ("token", "api_key", "password", "secret")
REDACTED = "***"


ECHO_CANCELLERS = ("none", "speex")
NICE_LEVELS = range(-20, 20)


class ConfigError(ValueError):
    """The configuration cannot be used; the message says which key and why."""


@dataclass
class LineSettings:
    kind: str = "emulator"  # emulator | sim7600 | sip ([line.sip])
    at_port: str = ""  # explicit path, else autodetect /dev/serial/by-id/*-if02-port0
    audio_port: str = ""  # explicit path, else autodetect /dev/serial/by-id/*-if04-port0
    scenario: str = "dentist"  # emulator far-end scenario: built-in name or path to a .toml
    command_timeout_s: float = 5.0
    answer_timeout_s: float = 45.0  # outbound: give up (no-answer) after this long without BEGIN
    reset_timeout_s: float = 30.0  # AT+CRESET: wait this long for the ports to re-enumerate (real: 14-20 s)


@dataclass
class SipSettings:
    """`[line.sip]`: the SIP account `line.kind = "sip"` registers and calls through."""

    domain: str = ""  # registrar / SIP domain, host[:port]
    proxy: str = ""  # outbound proxy host:port; empty = the domain itself
    username: str = ""
    password: str = ""  # or CELLCALL_SIP_PASSWORD; never logged or reported
    register: bool = True  # false: a trunk that authenticates by address (outbound only)
    register_interval_s: int = 300  # REGISTER refresh; a restarted registrar learns us again within this
    transport: str = "udp"  # udp | tcp | tls
    listen: str = ""  # local host:port for SIP; empty = any interface, a free port
    rtp_ports: str = "10000-20000"  # "lo-hi"
    codecs: list[str] = field(default_factory=lambda: ["pcmu", "pcma"])  # add "g722" for 16 kHz


@dataclass
class PolicySettings:
    default_country: str = "US"  # for numbers written without +country
    allow_emergency: bool = False
    allow_premium: bool = False
    allowlist: list[str] = field(default_factory=list)  # E.164 prefixes; empty = anyone
    denylist: list[str] = field(default_factory=list)  # E.164 prefixes
    max_calls_per_hour: int = 20
    max_calls_per_day: int = 100
    quiet_hours: str = ""  # "21:00-08:00" local time of `timezone`; empty = none
    timezone: str = ""  # IANA name; empty = the machine's local zone


@dataclass
class VoiceSettings:
    vad: str = "energy"  # energy | webrtc
    endpoint_silence_ms: int = 500  # silence that ends a caller's turn
    speculative_silence_ms: int = 120  # silence at which STT + LLM start speculatively (docs/benchmarks.md)
    min_speech_ms: int = 120  # shorter blips are not speech
    post_dial_delay_s: float = 4.0  # ignore carrier audio after answer until the far end speaks or this passes
    barge_in_ms: int = 60  # caller speech during playback that stops the agent (60 ms: stop in ~140 ms, measured)
    echo_margin_db: float = 6.0  # caller energy must exceed the expected echo (learnt delay + gain) by this much
    echo_canceller: str = "none"  # none | speex (libspeexdsp: subtract our own voice before the gate judges)
    silence_timeout_s: float = 20.0
    max_duration_s: float = 300.0
    goodbye_grace_s: float = 0.4  # after the last [HANGUP] audio plays, before AT+CHUP


@dataclass
class SttSettings:
    backend: str = "faster-whisper"  # faster-whisper | wyoming (a Wyoming ASR server at `wyoming`)
    wyoming: str = ""  # tcp://HOST:PORT of wyoming-faster-whisper, for backend wyoming
    model: str = "base"  # base | tiny.en | path to a CTranslate2 model folder
    threads: int = 1  # 2 threads spin-wait on a busy box: p90 8.3 s against 0.73 s with 1 (docs/benchmarks.md)
    beam_size: int = 1
    window_s: float = 8.0  # pad audio to this many seconds (CTranslate2 direct); 0 or 30 = transcribe(), 30 s


@dataclass
class TtsSettings:
    backend: str = "piper"  # piper | wyoming (a Wyoming TTS server at `wyoming`)
    wyoming: str = ""  # tcp://HOST:PORT of wyoming-piper, for backend wyoming
    voice: str = "joe"  # joe | path to a piper .onnx voice
    length_scale: float = 1.0


@dataclass
class LlmSettings:
    backend: str = "auto"  # auto | ollama | openai | embedded | anthropic
    model: str = "qwen2.5-0.5b"  # embedded: qwen2.5-0.5b | smollm2-135m | path to a .gguf
    ollama_model: str = "qwen2.5:0.5b"
    anthropic_model: str = "claude-haiku-4-5"  # anthropic backend; key from ANTHROPIC_API_KEY
    ollama_host: str = ""  # empty = OLLAMA_HOST or http://127.0.0.1:11434
    base_url: str = ""  # openai backend: e.g. http://127.0.0.1:8080/v1; anthropic: overrides ANTHROPIC_BASE_URL
    api_key: str = ""
    max_tokens: int = 120
    temperature: float = 0.4
    threads: int = 2
    context: int = 2048
    # the model's proposal for the report waits at most this long after the hang-up (the verdict and its
    # quotes come from code either way); a 0.5B model on 2 cores needs ~18 s, so the default keeps `run`
    # exiting and `watch` ready within ~2 s of NO CARRIER. 0 = the code-only report.
    summary_timeout_s: float = 1.5
    # prefill the next request's prompt while the caller speaks (a local model's cache); off for a paid
    # OpenAI-compatible API, where each warm is a request (the anthropic backend never warms)
    warm_while_listening: bool = True


@dataclass
class EnginesSettings:
    """`[engines]`: where the voice loop's STT, LLM and TTS run (docs: README "GPU relay")."""

    relay: str = ""  # tcp://HOST:PORT or tls://HOST:PORT (`cellcall relay serve`); empty = local engines
    relay_fallback: str = "warm"  # warm: local engines load while it rings | lazy: on first failure | none: end the call
    relay_timeout_s: float = 3.0  # connect, and first answer of each request; a stalled stream fails after this
    relay_ca: str = ""  # PEM CA bundle for a tls:// relay with its own certificate; empty = the system's


@dataclass
class RelaySettings:
    """`[relay]`: `cellcall relay serve` (token also read by appliances: CELLCALL_RELAY_TOKEN)."""

    listen: str = "127.0.0.1:8770"
    token: str = ""  # required to listen off loopback; appliances send it in HELLO
    tls_cert: str = ""
    tls_key: str = ""
    max_clients: int = 16  # connections at once (an appliance opens one per concurrent request, 2-3 per call)
    max_frame_bytes: int = 4 * 1024 * 1024
    max_utterance_s: float = 60.0
    idle_timeout_s: float = 300.0  # a connection silent this long is closed
    stt_device: str = "cpu"  # cpu | cuda (faster-whisper on the GPU)
    stt_model: str = ""  # empty = stt.model; e.g. a larger CTranslate2 folder on the GPU box
    llm_model: str = ""  # empty = llm.model; e.g. a larger .gguf path
    llm_gpu_layers: int = -1  # llama.cpp layers on CUDA (embedded backend): -1 all on a CUDA build, 0 CPU only


@dataclass
class AgentSettings:
    style: str = "scripted"  # scripted: the planner's own words | guided: the model phrases each planned move


@dataclass
class PathSettings:
    goals: str = "goals"
    outbox: str = "outbox"
    cache: str = ""  # joined model files etc.; empty = ~/.cache/cellcall


@dataclass
class OutboxSettings:
    git: bool = False  # commit each finished call's folder
    audio: bool = True  # write audio.wav (caller and agent on two channels)


@dataclass
class InboundSettings:
    enabled: bool = True
    goal: str = "inbound.md"  # relative to the goals folder
    answer_after_rings: int = 2
    allow_callers: list[str] = field(default_factory=list)  # E.164 prefixes answered; empty = anyone
    deny_callers: list[str] = field(default_factory=list)  # E.164 prefixes rejected (hung up, recorded)


@dataclass
class OpenClawSettings:
    enabled: bool = False
    url: str = "http://127.0.0.1:18789"
    hooks_path: str = "/hooks"
    token: str = ""  # or CELLCALL_OPENCLAW_TOKEN
    mode: str = "wake"  # wake | mapped | cli
    mapped_name: str = "cellcall"
    cli_channel: str = ""
    cli_target: str = ""
    memory_notes: bool = False
    workspace: str = ""


@dataclass
class QueueSettings:
    """`[queue]`: `cellcall watch` becomes a worker of a shared NATS JetStream queue (docs: README "Fleet")."""

    url: str = ""  # nats://HOST:PORT or tls://HOST:PORT; empty = no queue, the goals folder is dialled locally
    line_name: str = ""  # this line's name for goals with `line:`; empty = the host name
    caller_id: str = ""  # this line's own number (E.164), for goals with `line: "+1..."`
    tls_ca: str = ""  # PEM CA bundle for a tls:// server with its own certificate
    claim_ttl_s: float = 30.0  # a claim not refreshed this long belongs to a dead worker
    fleet_max_calls_per_hour: int = 0  # across all lines; 0 = only each line's [policy]
    fleet_max_calls_per_day: int = 0
    token: str = ""  # or CELLCALL_QUEUE_TOKEN (the server's --auth token)
    user: str = ""  # or CELLCALL_QUEUE_USER, with password / CELLCALL_QUEUE_PASSWORD
    password: str = ""


@dataclass
class ApiSettings:
    listen: str = "127.0.0.1:8765"  # `cellcall serve --listen HOST:PORT`
    token: str = ""  # or CELLCALL_API_TOKEN; required to listen off loopback
    tls_cert: str = ""  # PEM files for HTTPS (`--cert`, `--key`)
    tls_key: str = ""
    rate_per_minute: int = 120  # requests per token per minute; 429 beyond
    sse_clients: int = 8  # open event streams at most; 503 beyond


@dataclass
class PrioritySettings:
    """`[priority]`: the live call's threads run ahead of other work on the box (cellcall/priority.py)."""

    call_nice: int = -10  # needs root, CAP_SYS_NICE or LimitNICE; refused, the call runs at 0 and says so
    background_nice: int = 10  # pushes and git commits, so that they never take the CPU from a call


@dataclass
class LogSettings:
    json: bool = False
    level: str = "info"


@dataclass
class Settings:
    line: LineSettings = field(default_factory=LineSettings)
    sip: SipSettings = field(default_factory=SipSettings)  # written [line.sip] in cellcall.toml
    policy: PolicySettings = field(default_factory=PolicySettings)
    voice: VoiceSettings = field(default_factory=VoiceSettings)
    stt: SttSettings = field(default_factory=SttSettings)
    tts: TtsSettings = field(default_factory=TtsSettings)
    llm: LlmSettings = field(default_factory=LlmSettings)
    engines: EnginesSettings = field(default_factory=EnginesSettings)
    relay: RelaySettings = field(default_factory=RelaySettings)
    agent: AgentSettings = field(default_factory=AgentSettings)
    paths: PathSettings = field(default_factory=PathSettings)
    outbox: OutboxSettings = field(default_factory=OutboxSettings)
    inbound: InboundSettings = field(default_factory=InboundSettings)
    openclaw: OpenClawSettings = field(default_factory=OpenClawSettings)
    api: ApiSettings = field(default_factory=ApiSettings)
    queue: QueueSettings = field(default_factory=QueueSettings)
    priority: PrioritySettings = field(default_factory=PrioritySettings)
    log: LogSettings = field(default_factory=LogSettings)
    sources: dict[str, str] = field(default_factory=dict, repr=False)  # "section.key" -> where it came from

    def cache_dir(self) -> Path:
        return Path(self.paths.cache).expanduser() if self.paths.cache else Path.home() / ".cache" / "cellcall"

    def source_of(self, dotted: str) -> str:
        return self.sources.get(dotted, "default")

    def effective(self, redact: bool = True) -> list[tuple[str, Any, str]]:
        """(section.key, value, source) rows for `cellcall config`; secrets redacted."""
        rows = []
        for section in _sections():
            for f in dataclasses.fields(getattr(self, section)):
                key = f"{section}.{f.name}"
                value = getattr(getattr(self, section), f.name)
                if redact and is_secret(f.name) and value:
                    value = REDACTED
                rows.append((key, value, self.source_of(key)))
        return rows


def is_secret(key: str) -> bool:
    """`api_key`, `token`, `relay_token` are secrets; `max_tokens` is not (whole words only)."""
    name = key.lower().rsplit(".", 1)[-1]
    return any(name == marker or name.endswith("_" + marker) for marker in SECRET_MARKERS)


def _sections() -> list[str]:
    return [f.name for f in dataclasses.fields(Settings) if f.name != "sources"]


def _field_types(section: str) -> dict[str, Any]:
    cls = type(getattr(Settings(), section))
    return typing.get_type_hints(cls)


def _suggest(word: str, options: list[str]) -> str:
    close = difflib.get_close_matches(word, options, n=1)
    return f' (did you mean "{close[0]}"?)' if close else ""


def _coerce(value: Any, kind: Any, where: str) -> Any:
    """Check a TOML value against the field type; convert strings from the environment."""
    origin = typing.get_origin(kind)
    if origin is list:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
        raise ConfigError(f"{where}: expected a list of strings")
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
            return value.lower() in ("1", "true", "yes", "on")
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if kind in (int, float):
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        try:
            return kind(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected a number, got {value!r}") from None
    if kind is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    return value


def _apply(settings: Settings, section: str, key: str, value: Any, source: str) -> None:
    sections = _sections()
    if section not in sections:
        raise ConfigError(f"{source}: unknown section [{section}]{_suggest(section, sections)}")
    types = _field_types(section)
    if key not in types:
        raise ConfigError(f"{source}: unknown key {section}.{key}{_suggest(key, list(types))}")
    setattr(getattr(settings, section), key, _coerce(value, types[key], f"{source}: {section}.{key}"))
    settings.sources[f"{section}.{key}"] = source


def find_config_file(cwd: Path | None = None) -> Path | None:
    """./cellcall.toml first, then ~/.config/cellcall/cellcall.toml."""
    for candidate in ((cwd or Path.cwd()) / "cellcall.toml", Path.home() / ".config" / "cellcall" / "cellcall.toml"):
        if candidate.is_file():
            return candidate
    return None


def load_settings(
    config_path: Path | None = None,
    env: dict[str, str] | None = None,
    overrides: dict[str, Any] | None = None,
) -> Settings:
    """Build the effective settings; `overrides` are CLI flags as {"section.key": value}."""
    settings = Settings()
    path = config_path or find_config_file()
    if config_path is not None and not config_path.is_file():
        raise ConfigError(f"config file not found: {config_path}")
    if path is not None:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
        for section, table in data.items():
            if not isinstance(table, dict):
                raise ConfigError(f"{path}: top-level key {section!r} must be a [section]")
            for key, value in table.items():
                if section == "line" and key == "sip" and isinstance(value, dict):  # [line.sip] -> sip.*
                    for sip_key, sip_value in value.items():
                        _apply(settings, "sip", sip_key, sip_value, f"file:{path}")
                    continue
                _apply(settings, section, key, value, f"file:{path}")
    for name, value in sorted((os.environ if env is None else env).items()):
        if not name.startswith("CELLCALL_") or name in ("CELLCALL_CONFIG",):
            continue
        section, _, key = name[len("CELLCALL_") :].lower().partition("_")
        _apply(settings, section, key, value, f"env:{name}")
    for dotted, value in (overrides or {}).items():
        if value is None:
            continue
        section, _, key = dotted.partition(".")
        _apply(settings, section, key, value, "flag")
    if settings.voice.echo_canceller not in ECHO_CANCELLERS:
        raise ConfigError(
            f"voice.echo_canceller: {settings.voice.echo_canceller!r} is not one of {', '.join(ECHO_CANCELLERS)}"
            f"{_suggest(settings.voice.echo_canceller, list(ECHO_CANCELLERS))}"
        )
    for key in ("call_nice", "background_nice"):
        if getattr(settings.priority, key) not in NICE_LEVELS:
            raise ConfigError(f"priority.{key}: {getattr(settings.priority, key)} is not a nice level (-20 to 19)")
    return settings
