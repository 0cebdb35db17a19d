"""Far-end scenario files: what the emulated callee (or caller) does and says, validated up front.

A scenario is TOML so people can write one by hand; every mistake (unknown key, wrong type, missing
WAV) is reported with the file, the key and a "did you mean" before any call is placed, because a
scenario that fails half-way through a call is much harder to understand.
"""

from __future__ import annotations

import difflib
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

OUTCOMES = ("answer", "busy", "no-answer")
DTMF_DIGITS = set("0123456789*#ABCD")


class ScenarioError(ValueError):
    """A scenario file cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class Tone:
    """A plain tone (ring-back, voicemail beep) so scenarios need no audio files for signalling."""

    hz: float
    ms: int


@dataclass(frozen=True)
class Sound:
    """One thing the far end plays: text to render, a WAV file, a tone or hold music (exactly one)."""

    say: str | None = None
    wav: Path | None = None
    tone: Tone | None = None
    music_s: float | None = None  # seconds of synthetic hold music (chords that change every 0.4 s)

    @property
    def label(self) -> str:
        """A short human description for metrics and logs."""
        if self.say is not None:
            return self.say
        if self.wav is not None:
            return f"[wav {self.wav.name}]"
        if self.music_s is not None:
            return f"[music {self.music_s:g} s]"
        assert self.tone is not None
        return f"[tone {self.tone.hz:g} Hz {self.tone.ms} ms]"


@dataclass(frozen=True)
class ScenarioLine:
    """One step of the far end's script, taken in order."""

    sound: Sound | None = None
    dtmf: str | None = None  # keys the far end presses (the host sees +RXDTMF)
    wait_for_agent: bool = False  # speak only after the agent spoke and went quiet
    pause_s: float = 0.0  # extra pause before this step
    barge_in_after_ms: int | None = None  # talk over the agent this long after it started speaking
    backchannel: bool = False  # that talk is "mm-hm": listening, so the agent should go on, not stop
    hangup_mid_sentence: bool = False  # hang up part-way through this line
    wait_dtmf: str | None = None  # a phone menu: after the sound, wait for the agent to press these keys
    dtmf_wait_s: float = 6.0  # how long a menu waits for the keys after each play of its prompt (> 0)
    repeat: int = 3  # a menu plays its prompt this many times in all, then hangs up (>= 1)
    hangup: bool = False  # hang up now (after pause_s): a network announcement or a full mailbox ends so


@dataclass(frozen=True)
class Echo:
    """The agent's own uplink mixed back into the downlink, as a phone line's echo path does."""

    gain_db: float = -18.0
    delay_ms: int = 60


@dataclass(frozen=True)
class Noise:
    """Line noise (white, Gaussian) in the far end's audio, this many dB below its speech."""

    snr_db: float = 10.0


@dataclass(frozen=True)
class Scenario:
    """A whole far end: how the call is answered, what is said, when it ends."""

    name: str = "default"
    description: str = ""
    outcome: str = "answer"
    answer_delay_s: float = 1.0
    greeting: Sound | None = None
    lines: tuple[ScenarioLine, ...] = ()
    echo: Echo | None = None
    noise: Noise | None = None
    hangup_after_s: float | None = None
    hangup_when_done: bool = False
    silent: bool = False
    max_wait_s: float = 20.0  # wait_for_agent gives up after this long (so a mute agent cannot hang the script)
    quiet_ms: int = 600  # uplink quiet that ends the agent's turn
    ring_cycles: int = 5  # inbound: RING cycles before MISSED_CALL
    ring_interval_s: float = 3.0
    source: Path | None = field(default=None, compare=False)

    def sounds(self) -> list[Sound]:
        """Everything the far end may play, in order (rendered ahead of time)."""
        return ([self.greeting] if self.greeting else []) + [line.sound for line in self.lines if line.sound]


_TOP_KEYS = {
    "name", "description", "outcome", "answer_delay_s", "greeting", "lines", "echo", "noise", "hangup_after_s",
    "hangup_when_done", "silent", "max_wait_s", "quiet_ms", "ring_cycles", "ring_interval_s",
}  # fmt: skip
_SOUND_KEYS = {"say", "wav", "tone", "music"}
_LINE_KEYS = _SOUND_KEYS | {
    "dtmf", "wait_for_agent", "pause_s", "barge_in_after_ms", "hangup_mid_sentence", "wait_dtmf", "dtmf_wait_s",
    "repeat", "hangup", "backchannel",
}  # fmt: skip
_TONE_KEYS = {"hz", "ms"}
_MUSIC_KEYS = {"s"}
_ECHO_KEYS = {"gain_db", "delay_ms"}
_NOISE_KEYS = {"snr_db"}


class _Reader:
    """Typed access to one TOML table with error messages that say where the problem is."""

    def __init__(self, table: Any, where: str, allowed: set[str]) -> None:
        if not isinstance(table, dict):
            raise ScenarioError(f"{where}: expected a table, got {type(table).__name__}")
        for key in table:
            if key not in allowed:
                close = difflib.get_close_matches(key, sorted(allowed), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else f" (allowed: {', '.join(sorted(allowed))})"
                raise ScenarioError(f"{where}: unknown key {key!r}{hint}")
        self.table = table
        self.where = where

    def _get(self, key: str, types: tuple[type, ...], label: str) -> Any:
        value = self.table.get(key)
        if value is None:
            return None
        if isinstance(value, bool) and bool not in types or not isinstance(value, types):
            raise ScenarioError(f"{self.where}.{key}: expected {label}, got {value!r}")
        return value

    def text(self, key: str) -> str | None:
        value = self._get(key, (str,), "text")
        if value is not None and not value.strip():
            raise ScenarioError(f"{self.where}.{key}: must not be empty")
        return value

    def flag(self, key: str) -> bool:
        return bool(self._get(key, (bool,), "true or false"))

    def number(self, key: str, minimum: float = 0.0, maximum: float = 3600.0) -> float | None:
        value = self._get(key, (int, float), "a number")
        if value is not None and not minimum <= value <= maximum:
            raise ScenarioError(f"{self.where}.{key}: {value} is outside {minimum:g}..{maximum:g}")
        return None if value is None else float(value)

    def positive(self, key: str, maximum: float) -> float | None:
        """A number above 0 (0 itself is refused: a zero-length wait or sound is a typo, not a choice)."""
        value = self._get(key, (int, float), "a number")
        if value is not None and not 0 < value <= maximum:
            raise ScenarioError(f"{self.where}.{key}: {value} is outside 0..{maximum:g} (it must be more than 0)")
        return None if value is None else float(value)

    def integer(self, key: str, minimum: int, maximum: int) -> int | None:
        value = self._get(key, (int,), "a whole number")
        if value is not None and not minimum <= value <= maximum:
            raise ScenarioError(f"{self.where}.{key}: {value} is outside {minimum}..{maximum}")
        return value


def _sound(table: dict[str, Any], where: str, base: Path | None, required: bool) -> Sound | None:
    """The one sound a table names (say / wav / tone / music), resolving WAV paths next to the file."""
    present = [key for key in ("say", "wav", "tone", "music") if key in table]
    if len(present) > 1:
        raise ScenarioError(f"{where}: give only one of say, wav, tone, music (got {', '.join(present)})")
    if not present:
        if required:
            raise ScenarioError(f"{where}: needs one of say, wav, tone, music")
        return None
    if present[0] == "music":
        seconds = _Reader(table["music"], f"{where}.music", _MUSIC_KEYS).positive("s", 600.0)
        if seconds is None:
            raise ScenarioError(f"{where}.music: needs s (seconds)")
        return Sound(music_s=seconds)
    reader = _Reader({k: table[k] for k in present}, where, _SOUND_KEYS)
    if present[0] == "say":
        return Sound(say=reader.text("say"))
    if present[0] == "wav":
        raw = reader.text("wav")
        assert raw is not None
        path = Path(raw).expanduser()
        if not path.is_absolute() and base is not None:
            path = base / path
        if not path.is_file():
            raise ScenarioError(f"{where}.wav: no such file {path}")
        return Sound(wav=path)
    tone = _Reader(table["tone"], f"{where}.tone", _TONE_KEYS)
    hz = tone.number("hz", 50.0, 3800.0)
    ms = tone.integer("ms", 20, 60_000)
    if hz is None or ms is None:
        raise ScenarioError(f"{where}.tone: needs hz and ms")
    return Sound(tone=Tone(hz=hz, ms=ms))


def _line(table: Any, where: str, base: Path | None) -> ScenarioLine:
    reader = _Reader(table, where, _LINE_KEYS)
    dtmf = reader.text("dtmf")
    if dtmf is not None and not set(dtmf.upper()) <= DTMF_DIGITS:
        raise ScenarioError(f"{where}.dtmf: {dtmf!r} has keys outside 0-9 * # A-D")
    hangup = reader.flag("hangup")
    sound = _sound(table, where, base, required=dtmf is None and not hangup)
    barge = reader.integer("barge_in_after_ms", 0, 60_000)
    wait = reader.flag("wait_for_agent")
    if barge is not None and wait:
        raise ScenarioError(f"{where}: barge_in_after_ms and wait_for_agent exclude each other")
    backchannel = reader.flag("backchannel")
    if backchannel and barge is None:
        raise ScenarioError(f"{where}: backchannel is said over the agent, so it needs barge_in_after_ms")
    cut = reader.flag("hangup_mid_sentence")
    if cut and sound is None:
        raise ScenarioError(f"{where}: hangup_mid_sentence needs something to say")
    wait_dtmf = reader.text("wait_dtmf")
    if wait_dtmf is not None and not set(wait_dtmf.upper()) <= DTMF_DIGITS:
        raise ScenarioError(f"{where}.wait_dtmf: {wait_dtmf!r} has keys outside 0-9 * # A-D")
    if wait_dtmf is not None and sound is None:
        raise ScenarioError(f"{where}: wait_dtmf needs a prompt to play (say, wav, tone or music)")
    if wait_dtmf is not None and cut:
        raise ScenarioError(f"{where}: a wait_dtmf prompt plays out, so it cannot have hangup_mid_sentence")
    for key in ("dtmf_wait_s", "repeat"):
        if key in table and wait_dtmf is None:
            raise ScenarioError(f"{where}.{key}: only a menu line (wait_dtmf) waits for keys or repeats")
    if hangup and sound is not None:
        raise ScenarioError(f"{where}: hangup ends the call, so it goes on a line of its own (with pause_s)")
    return ScenarioLine(
        sound=sound,
        dtmf=dtmf.upper() if dtmf else None,
        wait_for_agent=wait,
        pause_s=reader.number("pause_s", 0.0, 600.0) or 0.0,
        barge_in_after_ms=barge,
        backchannel=backchannel,
        hangup_mid_sentence=cut,
        wait_dtmf=wait_dtmf.upper() if wait_dtmf else None,
        dtmf_wait_s=_or(reader.positive("dtmf_wait_s", 120.0), 6.0),
        repeat=int(_or(reader.integer("repeat", 1, 20), 3)),
        hangup=hangup,
    )


def parse_scenario(data: dict[str, Any], source: Path | None = None, default_name: str = "scenario") -> Scenario:
    """A validated Scenario from already-parsed TOML; `source` anchors relative WAV paths and messages."""
    where = str(source) if source else default_name
    base = source.parent if source else None
    top = _Reader(data, where, _TOP_KEYS)
    outcome = top.text("outcome") or "answer"
    if outcome not in OUTCOMES:
        close = difflib.get_close_matches(outcome, OUTCOMES, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ScenarioError(f"{where}.outcome: {outcome!r} is not one of {', '.join(OUTCOMES)}{hint}")
    raw_lines = data.get("lines", [])
    if not isinstance(raw_lines, list):
        raise ScenarioError(f"{where}.lines: expected an array of tables ([[lines]])")
    lines = tuple(_line(item, f"{where}.lines[{i}]", base) for i, item in enumerate(raw_lines))
    ended = next((i for i, line in enumerate(lines[:-1]) if line.hangup), None)
    if ended is not None:
        raise ScenarioError(f"{where}.lines[{ended}]: hangup ends the call, so the lines after it would never play")
    silent = top.flag("silent")
    greeting = _sound(data["greeting"], f"{where}.greeting", base, True) if "greeting" in data else None
    if silent and (lines or greeting):
        raise ScenarioError(f"{where}: a silent far end cannot have lines or a greeting")
    if outcome != "answer" and (lines or greeting or silent):
        raise ScenarioError(f"{where}: outcome {outcome!r} never answers, so it cannot have lines, greeting or silent")
    echo = None
    if "echo" in data:
        echo_reader = _Reader(data["echo"], f"{where}.echo", _ECHO_KEYS)
        echo = Echo(
            gain_db=_or(echo_reader.number("gain_db", -60.0, 0.0), -18.0),
            delay_ms=int(_or(echo_reader.integer("delay_ms", 0, 2000), 60)),
        )
    noise = None
    if "noise" in data:
        noise_reader = _Reader(data["noise"], f"{where}.noise", _NOISE_KEYS)
        noise = Noise(snr_db=_or(noise_reader.number("snr_db", -10.0, 60.0), 10.0))
    hangup_when_done = top.flag("hangup_when_done")
    if hangup_when_done and not lines:
        raise ScenarioError(f"{where}: hangup_when_done needs at least one line")
    return Scenario(
        name=top.text("name") or default_name,
        description=top.text("description") or "",
        outcome=outcome,
        answer_delay_s=_or(top.number("answer_delay_s", 0.0, 600.0), 1.0),
        greeting=greeting,
        lines=lines,
        echo=echo,
        noise=noise,
        hangup_after_s=top.number("hangup_after_s", 0.1, 86_400.0),
        hangup_when_done=hangup_when_done,
        silent=silent,
        max_wait_s=_or(top.number("max_wait_s", 0.5, 3600.0), 20.0),
        quiet_ms=int(_or(top.integer("quiet_ms", 100, 10_000), 600)),
        ring_cycles=int(_or(top.integer("ring_cycles", 1, 100), 5)),
        ring_interval_s=_or(top.number("ring_interval_s", 0.1, 60.0), 3.0),
        source=source,
    )


def _or(value: float | int | None, default: float) -> float:
    return default if value is None else value


def builtin_names() -> list[str]:
    """Names of the scenarios shipped in the cellcall.emulator.scenarios package."""
    folder = resources.files("cellcall.emulator.scenarios")
    return sorted(p.name[: -len(".toml")] for p in folder.iterdir() if p.name.endswith(".toml"))


def load_scenario(name_or_path: str | Path) -> Scenario:
    """A built-in scenario by name (e.g. "dentist") or a scenario file by path.

    `extends = "other"` (a built-in name or a path next to the file) starts from another scenario's
    keys, so a variant such as the echo line says only what differs from the dentist.
    """
    data, source, default_name = _load_table(name_or_path, seen=())
    return parse_scenario(data, source=source, default_name=default_name)


def _load_table(name_or_path: str | Path, seen: tuple[Path, ...]) -> tuple[dict[str, Any], Path, str]:
    text_name = str(name_or_path)
    path = Path(text_name).expanduser()
    if text_name.endswith(".toml") or path.exists():
        if not path.is_file():
            raise ScenarioError(f"scenario file not found: {path}")
        source = path.resolve()
        raw = path.read_text(encoding="utf-8")
        default_name = path.stem
    else:
        names = builtin_names()
        if text_name not in names:
            close = difflib.get_close_matches(text_name, names, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ScenarioError(f"no built-in scenario {text_name!r}: {hint}built-ins are {', '.join(names)}")
        resource = resources.files("cellcall.emulator.scenarios") / f"{text_name}.toml"
        source = Path(str(resource))
        raw = resource.read_text(encoding="utf-8")
        default_name = text_name
    try:
        data = tomllib.loads(raw)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{source}: not valid TOML: {exc}") from None
    base = data.pop("extends", None)
    if base is None:
        return data, source, default_name
    if not isinstance(base, str):
        raise ScenarioError(f"{source}.extends: expected a scenario name or path, got {base!r}")
    if source in seen:
        raise ScenarioError(f"{source}: extends itself through {' -> '.join(map(str, seen))}")
    base_ref = base if not base.endswith(".toml") or Path(base).is_absolute() else str(source.parent / base)
    parent, _, _ = _load_table(base_ref, seen + (source,))
    parent.pop("name", None)
    return parent | data, source, default_name
