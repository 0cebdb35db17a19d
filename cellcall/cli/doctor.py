"""`cellcall doctor`: is this box ready to place calls? Modem ports, SIM, network, then the engines."""

from __future__ import annotations

from cellcall.config import Settings
from cellcall.line import LineStatus
from cellcall.line.factory import probe_line
from cellcall.priority import Grant, favour_calls


def line_report(status: LineStatus, kind: str) -> list[str]:
    """Human lines for the modem part; every unknown shows as "?" rather than being left out."""
    ports = " ".join(f"{name}={path}" for name, path in status.ports.items()) or "?"
    network = "registered" if status.registered else "NOT registered" if status.registered is False else "?"
    signal = f"{status.signal_dbm} dBm" if status.signal_dbm is not None else "?"
    lines = [
        f"line     {kind}: {'ready' if status.ready else 'NOT READY'}",
        f"ports    {ports}",
        f"modem    {status.model or '?'}",
        f"SIM      {status.sim or '?'}",
        f"network  {network}, operator {status.operator or '?'}, signal {signal}",
    ]
    if kind == "sip":  # no SIM or radio: the account, its registration and the codecs offered
        lines[2:] = [f"stack    {status.model or '?'}", f"SIP      {network} at {status.operator or '?'}"]
    if status.detail:
        lines.append(f"detail   {status.detail}")
    return lines


def priority_line(grant: Grant) -> str:
    """Whether calls will run ahead of other work here, and what to change when not."""
    if grant.granted:
        return f"priority ok: {grant.describe()}"
    return f"priority WARNING: {grant.describe()}; on a busy box calls slow down"


def run_doctor(
    settings: Settings, at_port: str | None = None, audio_port: str | None = None, engines: bool = True
) -> tuple[str, bool]:
    """The report text and whether everything is ready."""
    status = probe_line(settings, at_port, audio_port)
    lines, ok = line_report(status, settings.line.kind), status.ready
    lines.append(priority_line(favour_calls(settings.priority.call_nice)))  # a warning, not a failure: calls still work
    if settings.engines.relay:
        from cellcall.relay.doctor import check_relay

        relay_lines, relay_ok = check_relay(settings)
        lines += relay_lines
        ok = ok and relay_ok
    if engines:
        from cellcall.engines.health import check_engines  # loads models: only when asked

        for check in check_engines(settings):
            timing = f" (load {check.load_s:.1f} s)" if check.load_s is not None else ""
            lines.append(f"{check.name:<8} {'ok' if check.ok else 'FAILED'}: {check.detail}{timing}")
            ok = ok and check.ok
    return "\n".join(lines), ok
