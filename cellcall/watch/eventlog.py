"""One log line per runner event: readable when tailed by a person, parseable with `--json-log`.

File names and caller numbers are untrusted text, so every value is rendered on one line with
control characters escaped: a newline in a goal's name must not forge a second log entry.
Fields whose names look like secrets are redacted, whatever the caller passes.
Listeners (`cellcall serve`'s event stream) get each event too, in the emitting thread, after it is written.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TextIO

from cellcall.config import REDACTED, is_secret

Listener = Callable[[str, dict[str, object]], None]

_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t", '"': '\\"', "\\": "\\\\"}


def _as_text(value: object) -> str:
    return value.isoformat(timespec="seconds") if isinstance(value, datetime) else str(value)


def one_line(value: object) -> str:
    """The value as text on a single line: control characters shown as escapes."""
    text = _as_text(value)
    out = []
    for ch in text:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 32 or ord(ch) == 127 or 0x80 <= ord(ch) < 0xA0 or ch in "\u2028\u2029":
            out.append(f"\\x{ord(ch):02x}" if ord(ch) < 256 else f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "".join(out)


def _human_value(value: object) -> str:
    text = one_line(value)
    return f'"{text}"' if (not text or any(c in text for c in ' ="')) else text


class EventLog:
    """Writes `TIME EVENT key=value ...` (or one JSON object) per event, thread-safe."""

    def __init__(
        self,
        stream: TextIO | None = None,
        json_lines: bool = False,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self._json = json_lines
        self._clock = clock
        self._lock = threading.Lock()
        self._listeners: tuple[Listener, ...] = ()

    def add_listener(self, listener: Listener) -> None:
        """Hand every later event (name, redacted fields) to `listener`; it runs in the emitting thread, so it must not block."""
        with self._lock:
            self._listeners = (*self._listeners, listener)

    def remove_listener(self, listener: Listener) -> None:
        with self._lock:
            self._listeners = tuple(known for known in self._listeners if known is not listener)

    def emit(self, event: str, **fields: object) -> None:
        """Log one event; None-valued fields are left out."""
        now = self._clock()
        clean = {k: (REDACTED if is_secret(k) else v) for k, v in fields.items() if v is not None}
        if self._json:
            payload: dict[str, object] = {"time": now.isoformat(timespec="milliseconds"), "event": event}
            payload.update({k: v if isinstance(v, (int, float, bool)) else _as_text(v) for k, v in clean.items()})
            line = json.dumps(payload, ensure_ascii=True)  # ASCII: no U+2028 that splitlines() would break on
        else:
            parts = [now.isoformat(timespec="seconds"), one_line(event)]
            parts += [f"{one_line(k)}={_human_value(v)}" for k, v in clean.items()]
            line = " ".join(parts)
        with self._lock:
            self._stream.write(line + "\n")
            self._stream.flush()
            listeners = self._listeners
        for listener in listeners:
            try:
                listener(event, clean)
            except Exception:  # noqa: BLE001 - a listener's bug must never stop the runner that logs
                pass
