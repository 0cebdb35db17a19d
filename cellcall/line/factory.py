"""Settings -> a Line: the real modem on its two ports, or the same driver on the built-in emulator.

The emulator kind runs the very same Sim7600Line against the emulated modem's two pty paths
(`cellcall.emulator.line`), so everything above the line, the driver included, runs as on the hardware.
Explicit ports always mean a real modem behind them, whatever `line.kind` says. The sip kind is a
SIP account (`[line.sip]`, cellcall.line.sip), built unopened like the modem.
"""

from __future__ import annotations

import dataclasses

from cellcall.config import Settings
from cellcall.line import Line, LineError, LineStatus
from cellcall.line.ports import resolve_ports
from cellcall.line.sim7600 import Sim7600Line, modem_options

KINDS = ("sim7600", "emulator", "sip")


def make_line(settings: Settings, at_port: str | None = None, audio_port: str | None = None) -> Line:
    """The line `settings.line.kind` names; explicit ports mean the modem behind them."""
    kind = settings.line.kind
    if kind not in KINDS:
        raise LineError(f"unknown line kind {kind!r}: choose one of {', '.join(KINDS)}")
    if kind == "sip" and not (at_port or audio_port):
        from cellcall.line.sip import SipLine, sip_options  # baresip loads only for SIP

        return SipLine(sip_options(settings))
    if kind == "sim7600" or at_port or audio_port:
        at, audio = resolve_ports(at_port or settings.line.at_port or None, audio_port or settings.line.audio_port or None)
        return Sim7600Line(at, audio, modem_options(settings))
    from cellcall.emulator.line import start_emulated_line

    line, _ = start_emulated_line(settings)
    return line


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
