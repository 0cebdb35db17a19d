"""Settings -> a Line: the real modem on its two ports, or the same driver on the built-in emulator.

The emulator kind runs the very same Sim7600Line against the emulated modem's two pty paths, so
everything above the line (and the driver itself) is exercised exactly as on the hardware.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from cellcall.config import Settings
from cellcall.line import Line, LineError, LineStatus
from cellcall.line.ports import resolve_ports
from cellcall.line.sim7600 import ModemOptions, Sim7600Line

if TYPE_CHECKING:
    from cellcall.line.emulator import Faults, ModemEmulator

KINDS = ("sim7600", "emulator")


def modem_options(settings: Settings) -> ModemOptions:
    line = settings.line
    return ModemOptions(
        command_timeout_s=line.command_timeout_s,
        answer_timeout_s=line.answer_timeout_s,
        reset_timeout_s=line.reset_timeout_s,
    )


def make_line(settings: Settings, at_port: str | None = None, audio_port: str | None = None) -> Line:
    """The line `settings.line.kind` names; explicit ports override the configured ones and autodetect."""
    kind = settings.line.kind
    if kind == "sim7600":
        at, audio = resolve_ports(at_port or settings.line.at_port or None, audio_port or settings.line.audio_port or None)
        return Sim7600Line(at, audio, modem_options(settings))
    if kind == "emulator":
        if at_port or audio_port:
            raise LineError("--at-port/--audio-port are for --line sim7600; the emulator makes its own ports")
        line, _ = start_emulated_line(settings)
        return line
    raise LineError(f"unknown line kind {kind!r}: choose one of {', '.join(KINDS)}")


def start_emulated_line(
    settings: Settings, scenario: str | None = None, faults: Faults | None = None
) -> tuple[Sim7600Line, ModemEmulator]:
    """Start the emulator with a scenario (built-in name or file) and a driver on its ports.

    Closing the line stops the emulator; the emulator is returned for inbound calls and metrics.
    """
    from cellcall.line.emulator import ModemEmulator
    from cellcall.line.scenario import ScenarioError, load_scenario

    try:
        loaded = load_scenario(scenario or settings.line.scenario)
    except (ScenarioError, OSError) as exc:
        raise LineError(f"emulator scenario: {exc}") from exc
    emulator = ModemEmulator(scenario=loaded, faults=faults)
    emulator.start()
    line = Sim7600Line(emulator.at_port, emulator.audio_port, modem_options(settings), on_close=emulator.stop)
    return line, emulator


def probe_line(settings: Settings, at_port: str | None = None, audio_port: str | None = None) -> LineStatus:
    """Open the configured line, read its status, close it (for `cellcall doctor`); never raises."""
    try:
        line = make_line(settings, at_port, audio_port)
    except LineError as exc:
        return LineStatus(ready=False, detail=str(exc))
    try:
        line.open()
        return line.status()
    except LineError as exc:
        return dataclasses.replace(line.status(), detail=str(exc))
    finally:
        line.close()
