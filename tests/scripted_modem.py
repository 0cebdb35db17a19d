"""A pty that replays a recorded modem transcript (tests/data/modem/*.txt) to the host.

Transcript lines: `< bytes` is what the modem sends (Python escapes), `> text` is what the host
must send next (a command ended by CR, or SMS text ended by Ctrl-Z; the terminator is not written). The player checks every host
command against the transcript, so a test fails when the driver sends something unexpected.
"""

from __future__ import annotations

import codecs
import contextlib
import os
import select
import threading
import tty
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from cellcall.line.sim7600 import ModemOptions, Sim7600Line

DATA = Path(__file__).parent / "data" / "modem"


@dataclass
class Step:
    direction: str  # "<" modem -> host, ">" host -> modem
    data: bytes


def load(name: str) -> list[Step]:
    steps = []
    for raw in (DATA / name).read_text(encoding="utf-8").splitlines():
        if not raw or raw.startswith("#"):
            continue
        direction, text = raw[0], raw[2:]
        steps.append(Step(direction, codecs.decode(text, "unicode_escape").encode("latin-1")))
    return steps


@dataclass
class ScriptedModem:
    """Plays `steps` on the master side of a pty; `path` is the slave the driver opens."""

    steps: list[Step]
    mismatches: list[str] = field(default_factory=list)
    received: list[bytes] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.master, slave = os.openpty()
        tty.setraw(slave)
        self.path = os.ttyname(slave)
        self._slave = slave
        self._stop = threading.Event()
        self.done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> ScriptedModem:
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        for fd in (self.master, self._slave):
            try:
                os.close(fd)
            except OSError:
                pass

    def _read_unit(self) -> bytes | None:
        """One host unit: bytes up to CR or Ctrl-Z (terminator excluded)."""
        unit = b""
        while not self._stop.is_set():
            ready, _, _ = select.select([self.master], [], [], 0.05)
            if not ready:
                continue
            byte = os.read(self.master, 1)
            if byte in (b"\r", b"\x1a"):
                return unit
            unit += byte
        return None

    def _run(self) -> None:
        for step in self.steps:
            if step.direction == "<":
                os.write(self.master, step.data)
                continue
            unit = self._read_unit()
            if unit is None:
                return
            self.received.append(unit)
            if unit != step.data:
                self.mismatches.append(f"expected {step.data!r}, host sent {unit!r}")
                return
        self.done.set()


@contextlib.contextmanager
def scripted_line(transcript: str, options: ModemOptions | None = None) -> Iterator[tuple[Sim7600Line, ScriptedModem]]:
    """The driver on a recorded modem's AT port and a silent audio pty; everything closed afterwards."""
    modem = ScriptedModem(load(transcript)).start()
    audio_master, audio_slave = os.openpty()
    tty.setraw(audio_slave)
    line = Sim7600Line(modem.path, os.ttyname(audio_slave), options)
    try:
        yield line, modem
    finally:
        line.close()
        modem.close()
        os.close(audio_master)
        os.close(audio_slave)
