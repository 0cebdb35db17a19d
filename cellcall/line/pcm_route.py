"""The CPCMREG dance that routes a call's audio to the PCM port (runs on the driver's control thread).

The modem accepts AT+CPCMREG=1 only some time after VOICE CALL: BEGIN, and acceptance is
asynchronous: so it is verified with AT+CPCMREG? and retried with backoff, and a failed try
resets the route (=0) so the next one starts clean.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from cellcall.line.at import ATResponse

Command = Callable[[str], ATResponse]


def enable_pcm(cmd: Command, attempts: int, wanted: Callable[[], bool], stop: threading.Event) -> bool:
    """AT+CPCMREG=1 until the modem says it is routed; False when `wanted()` turns false or `stop` is set."""
    backoff = 0.2
    for _ in range(attempts):
        if not wanted():
            return False
        if cmd("AT+CPCMREG=1").ok and pcm_routed(cmd, stop):
            return True
        if stop.wait(backoff):
            return False
        backoff = min(backoff * 2, 1.0)
    return False


def pcm_routed(cmd: Command, stop: threading.Event) -> bool:
    """AT+CPCMREG? says 1; acceptance is asynchronous, so ask a few times before giving up."""
    for _ in range(3):
        values = cmd("AT+CPCMREG?").values("+CPCMREG:")
        if values and values[0].split(",")[0].strip() == "1":
            return True
        stop.wait(0.15)
    cmd("AT+CPCMREG=0")
    return False
