"""What a SIM7600 says about itself (ATI, SIM, registration, operator, signal) as a LineStatus.

A pure reading of AT answers, apart from the driver so `cellcall doctor`'s view can be followed
without the call machinery around it.
"""

from __future__ import annotations

from collections.abc import Callable

from cellcall.line import LineStatus
from cellcall.line.at import ATResponse, parse_fields


def read_status(cmd: Callable[[str], ATResponse], ports: dict[str, str]) -> LineStatus:
    """Ask the modem through `cmd` (one AT command -> its response) and summarise the answers."""
    model = next((line.split(":", 1)[1].strip() for line in cmd("ATI").lines if line.startswith("Model:")), None)
    cpin = cmd("AT+CPIN?")
    sim = cpin.values("+CPIN:")[0] if cpin.ok and cpin.values("+CPIN:") else cpin.final
    registered = any(registration(cmd(f"AT+{name}?").values(f"+{name}:")) for name in ("CEREG", "CREG"))
    operator = None
    cops = cmd("AT+COPS?").values("+COPS:")
    if cops:
        fields = parse_fields(cops[0])
        operator = fields[2] if len(fields) > 2 and fields[2] else None
    signal = None
    csq = cmd("AT+CSQ").values("+CSQ:")
    rssi = csq[0].split(",")[0].strip() if csq else ""
    if rssi.isdigit() and rssi != "99":
        signal = -113 + 2 * int(rssi)
    detail = "" if registered else "not registered on the network (CEREG/CREG)"
    return LineStatus(
        ready=sim == "READY" and registered,
        registered=registered,
        operator=operator,
        signal_dbm=signal,
        sim=sim,
        model=model,
        ports=ports,
        detail=detail if sim == "READY" else f"SIM: {sim}",
    )


def registration(values: list[str]) -> bool:
    """+CREG: 0,1 / +CEREG: 0,5 -> registered (home or roaming)."""
    fields = values[0].split(",") if values else []
    return len(fields) > 1 and fields[1].strip() in ("1", "5")
