"""The emulated SIM7600's settings and status answers, and the AT syntax its command handlers share.

Everything here is the part of the AT port that has no call in it: echo and result-code flags,
levels, identity, SIM, network and signal queries. The emulator's AT thread owns a `ModemSettings`
(under the emulator's lock) and replaces it on every power-on, as the real modem forgets them.
"""

from __future__ import annotations

import re
from collections.abc import Callable

IDENTITY = (
    "Manufacturer: SIMCOM INCORPORATED",
    "Model: SIMCOM_SIM7600G-H",
    "Revision: LE20B04SIM7600G22",
    "IMEI: 862636051234567",
    "+GCAP: +CGSM",
)
OPERATOR = "T-Mobile"
SIGNAL_CSQ = 21  # -71 dBm
CME_TEXT = {3: "operation not allowed", 4: "operation not supported", 30: "no network service"}


class AtError(Exception):
    """A command failed; the text is the final result code (ERROR, NO CARRIER, or a CME error)."""

    def __init__(self, code: int | str = 3) -> None:
        super().__init__(code)
        self.code = code


def split_commands(body: str) -> list[str]:
    """ "E0;+CVHU=0" -> ["E0", "+CVHU=0"]; a dial string keeps its ';' (it marks a voice call)."""
    if body.upper().startswith("D"):
        return [body]
    parts = [p.strip() for p in body.split(";")]
    return parts if any(parts) else [""]


def parse_extended(cmd: str) -> tuple[str, str, str]:
    """ "+CLVL=5" -> ("+CLVL", "=", "5"), "+CSQ=?" -> ("+CSQ", "=?", ""); AtError(4) when not a command."""
    match = re.fullmatch(r"(\+[A-Z]+)(=\?|\?|=(.*))?", cmd, flags=re.IGNORECASE)
    if not match:
        raise AtError(4)
    op = match.group(2) or ""
    return match.group(1).upper(), "=" if op.startswith("=") and op != "=?" else op, match.group(3) or ""


class AtInput:
    """Bytes from the host -> command lines, or an SMS text after the `> ` prompt (AT thread only)."""

    def __init__(self) -> None:
        self._rx = bytearray()

    def feed(self, data: bytes) -> None:
        self._rx += data

    def clear(self) -> None:
        self._rx.clear()

    def take_line(self) -> str | None:
        """The next line, stripped (maybe empty), or None until a CR or LF arrives."""
        end = next((i for i, b in enumerate(self._rx) if b in (0x0D, 0x0A)), None)
        if end is None:
            return None
        line = self._rx[:end].decode("ascii", "replace").strip()
        del self._rx[: end + 1]
        return line

    def take_sms(self) -> tuple[str, bool] | None:
        """(text, send) up to Ctrl-Z (send) or Esc (cancel), or None until one arrives."""
        end = next((i for i, b in enumerate(self._rx) if b in (0x1A, 0x1B)), None)
        if end is None:
            return None
        text, send = self._rx[:end].decode("utf-8", "replace"), self._rx[end] == 0x1A
        del self._rx[: end + 1]
        return text, send


def int_arg(text: str, low: int, high: int) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise AtError(4) from None
    if not low <= value <= high:
        raise AtError(4)
    return value


Handler = Callable[[str, str], list[str]]


class ModemSettings:
    """Flags, levels and status queries; `handle` answers the commands that are only about them."""

    def __init__(self) -> None:
        self.echo = True
        self.cvhu = 1
        self.clip = 0
        self.crc = 0
        self.clcc = 0
        self.cmee = 0
        self.cmgf = 0
        self.creg = 0
        self.cereg = 0
        self.cpcmfrm = 0
        self.levels = {"+CLVL": 4, "+CMICGAIN": 3, "+COUTGAIN": 4, "+CSDVC": 1, "+CSCLK": 0, "+CFUN": 1}
        self._handlers: dict[str, Handler] = {
            "+CVHU": lambda op, arg: self.flag("cvhu", "+CVHU", op, arg),
            "+CLIP": lambda op, arg: self.flag("clip", "+CLIP", op, arg, show="{},1"),
            "+CRC": lambda op, arg: self.flag("crc", "+CRC", op, arg),
            "+CMEE": lambda op, arg: self.flag("cmee", "+CMEE", op, arg, top=2),
            "+CMGF": lambda op, arg: self.flag("cmgf", "+CMGF", op, arg),
            "+CPCMFRM": lambda op, arg: self.flag("cpcmfrm", "+CPCMFRM", op, arg),
            "+CREG": lambda op, arg: self.flag("creg", "+CREG", op, arg, top=2, show="{},1"),
            "+CEREG": lambda op, arg: self.flag("cereg", "+CEREG", op, arg, top=2, show="{},1"),
            "+CSQ": lambda op, arg: ["+CSQ: (0-31,99),(0-7,99)"] if op == "=?" else [f"+CSQ: {SIGNAL_CSQ},99"],
            "+COPS": self._cops,
            "+CPIN": self._cpin,
            "+CGMI": lambda op, arg: ["SIMCOM INCORPORATED"],
            "+CGMM": lambda op, arg: ["SIMCOM_SIM7600G-H"],
            "+CGSN": lambda op, arg: ["862636051234567"],
            "+CNMI": lambda op, arg: ["+CNMI: 2,1,0,0,0"] if op == "?" else [],
            "+CPCMBANDWIDTH": lambda op, arg: ["+CPCMBANDWIDTH: 0,1"] if op == "?" else [],
        }

    def handle(self, name: str, op: str, arg: str) -> list[str] | None:
        """Information lines for `name` (e.g. "+CSQ") with `op` ("", "?", "=?", "="), None when not ours."""
        handler = self._handlers.get(name)
        if handler is not None:
            return handler(op, arg)
        if name in self.levels:
            return self._level(name, op, arg)
        return None

    def error_text(self, code: int | str) -> str:
        """The final result code for a failure, as AT+CMEE asks for it."""
        if isinstance(code, str):
            return code
        if self.cmee == 1:
            return f"+CME ERROR: {code}"
        if self.cmee == 2:
            return f"+CME ERROR: {CME_TEXT.get(code, 'unknown')}"
        return "ERROR"

    def flag(self, attr: str, name: str, op: str, arg: str, top: int = 1, show: str = "{}") -> list[str]:
        if op == "?":
            return [f"{name}: " + show.format(getattr(self, attr))]
        if op == "=?":
            return [f"{name}: (0-{top})"]
        if op == "=":
            setattr(self, attr, int_arg(arg.split(",")[0], 0, top))
            return []
        raise AtError(4)

    def _level(self, name: str, op: str, arg: str) -> list[str]:
        if op == "?":
            return [f"{name}: {self.levels[name]}"]
        if op == "=?":
            return [f"{name}: (0-8)"]
        self.levels[name] = int_arg(arg, 0, 8)
        return []

    def _cops(self, op: str, arg: str) -> list[str]:
        if op == "?":
            return [f'+COPS: 0,0,"{OPERATOR}",7']
        if op == "=?":
            return [f'+COPS: (2,"{OPERATOR}","{OPERATOR}","310260",7),,(0-4),(0-2)']
        return []

    def _cpin(self, op: str, arg: str) -> list[str]:
        if op == "=":
            raise AtError(3)  # the SIM has no PIN set
        return ["+CPIN: READY"]
