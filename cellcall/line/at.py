"""The AT channel: one reader thread turns modem bytes into command responses and URCs.

Modelled on pySerial's `serial.threaded` reader/protocol: a single thread owns reads, splits
the stream into lines (any run of CR/LF ends a line, so `\\r\\r\\n` and blank lines are harmless),
and routes each line either to the command waiting for it or to the URC callback. URCs can
arrive in the middle of a command's response (RING between +CSQ and OK) and are still
dispatched as URCs. Echo (before ATE0) is recognised and dropped. The SMS `> ` prompt, which
has no line ending, is detected from the partial line.

URC callbacks run on the reader thread: they must be quick and must never send a command.
"""

from __future__ import annotations

import csv
import enum
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from cellcall.line import LineError
from cellcall.line.threads import stop_thread

log = logging.getLogger(__name__)

FINAL_OK = "OK"
_CODED_ERRORS = ("+CME ERROR:", "+CMS ERROR:")
# Call-setup results that end ATD/ATA; at any other time they are URCs.
_CALL_FINALS = ("NO CARRIER", "BUSY", "NO ANSWER", "NO DIALTONE")
_VOICE_CALL = re.compile(r"^VOICE CALL:\s*([A-Z]+)(?::\s*(\d+))?")
_BOOT = ("RDY", "+CPIN: READY", "SMS DONE", "PB DONE")
READ_CHUNK = 4096


class UrcKind(str, enum.Enum):
    RING = "ring"  # RING or +CRING: VOICE
    CLIP = "clip"  # args: (number,)
    VOICE_CALL = "voice_call"  # args: (state, duration digits or "")
    NO_CARRIER = "no_carrier"
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    MISSED_CALL = "missed_call"  # args: (time, number)
    DTMF = "dtmf"  # args: (digit,)
    CLCC = "clcc"  # args: the +CLCC fields
    CMTI = "cmti"  # args: (memory, index)
    BOOT = "boot"  # args: (the line,)


@dataclass(frozen=True)
class Urc:
    kind: UrcKind
    line: str
    args: tuple[str, ...] = ()


def parse_fields(rest: str) -> tuple[str, ...]:
    """Comma-separated AT fields, quotes removed: `1,0,3,0,0,"+1415...",145` -> ("1", ..., "+1415...", "145")."""
    return tuple(next(csv.reader([rest.strip()], skipinitialspace=True), []))


def parse_urc(line: str) -> Urc | None:
    """Classify one modem line as a URC, or None when it is not one."""
    simple = {"RING": UrcKind.RING, "NO CARRIER": UrcKind.NO_CARRIER, "BUSY": UrcKind.BUSY, "NO ANSWER": UrcKind.NO_ANSWER}
    if line in simple:
        return Urc(simple[line], line)
    if line.startswith("+CRING:"):
        return Urc(UrcKind.RING, line, (line[7:].strip(),))
    if line.startswith("+CLIP:"):
        fields = parse_fields(line[6:])
        return Urc(UrcKind.CLIP, line, (fields[0] if fields else "",))
    match = _VOICE_CALL.match(line)
    if match:
        return Urc(UrcKind.VOICE_CALL, line, (match.group(1), match.group(2) or ""))
    if line.startswith("MISSED_CALL:"):
        parts = line[12:].split()
        return Urc(UrcKind.MISSED_CALL, line, (parts[0] if parts else "", parts[-1] if len(parts) > 1 else ""))
    if line.startswith("+RXDTMF:"):
        return Urc(UrcKind.DTMF, line, (line[8:].strip(),))
    if line.startswith("+CLCC:"):
        return Urc(UrcKind.CLCC, line, parse_fields(line[6:]))
    if line.startswith("+CMTI:"):
        return Urc(UrcKind.CMTI, line, parse_fields(line[6:]))
    if line in _BOOT:
        return Urc(UrcKind.BOOT, line, (line,))
    return None


@dataclass
class ATResponse:
    """What a command got back: its information lines and the final result code."""

    command: str
    final: str
    lines: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.final == FINAL_OK

    def values(self, prefix: str) -> list[str]:
        """The text after `prefix` on each matching line, e.g. values("+CSQ:") -> ["21,99"]."""
        return [line[len(prefix) :].strip() for line in self.lines if line.startswith(prefix)]

    def check(self) -> ATResponse:
        """Self when OK, else an ATCommandError naming the command and the modem's answer."""
        if not self.ok:
            raise ATCommandError(f"{self.command} -> {self.final}")
        return self


class ATCommandError(LineError):
    """The modem answered a command with ERROR / +CME ERROR / a call-setup failure."""


class ATTimeout(LineError):
    """The modem did not finish a command in time."""


class SerialLike(Protocol):
    def read(self, size: int = 1) -> bytes: ...
    def write(self, data: bytes) -> int | None: ...


@dataclass
class _Pending:
    command: str
    prefix: str | None
    wants_prompt: bool
    done: threading.Event = field(default_factory=threading.Event)
    prompt: threading.Event = field(default_factory=threading.Event)
    lines: list[str] = field(default_factory=list)
    final: str | None = None
    skip_lines: set[str] = field(default_factory=set)

    @property
    def is_call_setup(self) -> bool:
        upper = self.command.upper()
        return upper.startswith("ATD") or upper == "ATA"


def _is_final_error(line: str) -> bool:
    return line == "ERROR" or line.startswith(_CODED_ERRORS)


def command_prefix(command: str) -> str | None:
    """The response prefix a command's information lines carry: AT+CSQ -> "+CSQ:"."""
    match = re.match(r"AT(\+[A-Z]+)", command.upper())
    return f"{match.group(1)}:" if match else None


class ATChannel:
    """Commands with timeouts and URC dispatch over one serial port; one command at a time."""

    def __init__(
        self,
        port: SerialLike,
        on_urc: Callable[[Urc], None],
        on_error: Callable[[Exception], None] | None = None,
    ) -> None:
        self._port = port
        self._on_urc = on_urc
        self._on_error = on_error
        self._lock = threading.Lock()  # one command at a time
        self._state = threading.Lock()  # guards _pending
        self._pending: _Pending | None = None
        self._buffer = b""
        self._stop = threading.Event()
        self._dead: Exception | None = None
        self._thread = threading.Thread(target=self._run, name="at-reader", daemon=True)

    def start(self) -> ATChannel:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the reader thread (the caller closes the port afterwards)."""
        stop_thread(self._thread, self._stop)

    @property
    def alive(self) -> bool:
        return self._dead is None and not self._stop.is_set()

    def command(self, command: str, timeout: float = 5.0, prefix: str | None = None) -> ATResponse:
        """Send `command`, wait for its final result code; raise ATTimeout after `timeout` s."""
        return self._transact(command, timeout, prefix, payload=None)

    def command_with_prompt(self, command: str, payload: bytes, timeout: float = 60.0) -> ATResponse:
        """Send `command`, wait for the `> ` prompt, send `payload` (ending in Ctrl-Z), await the result."""
        return self._transact(command, timeout, command_prefix(command), payload=payload)

    def _transact(self, command: str, timeout: float, prefix: str | None, payload: bytes | None) -> ATResponse:
        with self._lock:
            if self._dead is not None:
                raise LineError(f"AT port is gone: {self._dead}")
            pending = _Pending(command, prefix or command_prefix(command), wants_prompt=payload is not None)
            with self._state:
                self._pending = pending
            try:
                self._write((command + "\r").encode("ascii"))
                if payload is not None:
                    if not pending.prompt.wait(timeout) or pending.done.is_set():
                        return self._finish(pending, timeout, "no > prompt")
                    pending.skip_lines.update(
                        part.strip() for part in payload.decode("utf-8", "replace").replace("\x1a", "").splitlines()
                    )
                    self._write(payload)
                if not pending.done.wait(timeout):
                    return self._finish(pending, timeout, "no final result")
                return self._finish(pending, timeout, "")
            finally:
                with self._state:
                    self._pending = None

    def _finish(self, pending: _Pending, timeout: float, missing: str) -> ATResponse:
        if self._dead is not None and pending.final is None:
            raise LineError(f"AT port is gone during {pending.command}: {self._dead}")
        if pending.final is None:
            raise ATTimeout(f"{pending.command}: {missing} within {timeout:g} s")
        return ATResponse(pending.command, pending.final, pending.lines)

    def _write(self, data: bytes) -> None:
        try:
            self._port.write(data)
        except Exception as exc:  # noqa: BLE001 - serial.SerialException, OSError: the port went away
            raise LineError(f"AT port write failed: {exc}") from exc

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self._port.read(READ_CHUNK)
            except Exception as exc:  # noqa: BLE001 - SerialException / OSError (EIO when the USB device vanishes)
                if not self._stop.is_set():
                    self._die(exc)
                return
            if data:
                self.feed(data)

    def _die(self, exc: Exception) -> None:
        self._dead = exc
        with self._state:
            pending = self._pending
        if pending is not None:
            pending.prompt.set()
            pending.done.set()
        if self._on_error is not None:
            self._on_error(exc)

    def feed(self, data: bytes) -> None:
        """Process received bytes (the reader thread calls this; tests may too)."""
        self._buffer += data
        *lines, self._buffer = re.split(rb"[\r\n]+", self._buffer)
        for raw in lines:
            line = raw.decode("utf-8", "replace").strip()
            if line:
                self._line(line)
        self._check_prompt()

    def _check_prompt(self) -> None:
        with self._state:
            pending = self._pending
        if pending is not None and pending.wants_prompt and self._buffer.strip() == b">":
            self._buffer = b""
            pending.prompt.set()

    def _line(self, line: str) -> None:
        with self._state:
            pending = self._pending
        if pending is not None and self._for_command(pending, line):
            return
        urc = parse_urc(line)
        if urc is not None:
            try:
                self._on_urc(urc)
            except Exception:  # a handler bug must not kill the only reader
                log.exception("URC handler failed for %r", line)
        elif pending is not None:
            pending.lines.append(line)
        else:
            log.debug("unsolicited line ignored: %r", line)

    def _for_command(self, pending: _Pending, line: str) -> bool:
        """Consume `line` when it belongs to the pending command (echo, result, prefixed info)."""
        if pending.done.is_set():
            return False
        if line.upper() == pending.command.upper() or line in pending.skip_lines:
            return True  # echo (before ATE0) or the echoed SMS text
        if line == FINAL_OK or _is_final_error(line) or (pending.is_call_setup and line in _CALL_FINALS):
            pending.final = line
            pending.done.set()
            pending.prompt.set()  # a command that fails before its prompt must not wait for it
            return True
        if pending.prefix and line.startswith(pending.prefix):
            pending.lines.append(line)
            return True
        return False
