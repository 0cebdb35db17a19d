"""Misbehaviours of real SIM7600 modems and networks that the emulator can switch on, one by one."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Faults:
    """Misbehaviours of real modems and networks, switched on one by one in tests."""

    vanish_after_s: float | None = None  # ports disappear this long after the call is answered
    uplink_stall_after_s: float | None = None  # one-way audio: the modem stops consuming uplink
    volte_16k: bool = False  # downlink/uplink at 16 kHz (640 B/20 ms) despite CPCMFRM read-back
    doubled_crlf: bool = False  # URCs framed \r\r\n
    end_without_duration: bool = False  # host hang-up: "VOICE CALL: END"; remote: "VOICE CALL:END: 000017"
    slow_ok_s: float = 0.0  # delay before each final result code
    flaky_cpcmreg: bool = False  # each call's first CPCMREG=1 says OK but does not route audio
    reenumerate_s: float = 2.0  # AT+CRESET / vanish: ports come back after this long (real: 14-20 s)
