"""One call on the emulated modem: who, which way, its +CLCC state, and its far end.

Created and changed by the emulator under its lock (AT thread, ring thread and timers alike).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from cellcall.emulator.farend import FarEnd
from cellcall.emulator.scenario import Scenario


@dataclass
class ModemCall:
    number: str
    incoming: bool
    farend: FarEnd | None
    scenario: Scenario
    state: int  # +CLCC stat: 0 active, 2 dialing, 3 alerting, 4 incoming
    began_at: float | None = None
    flaky_spent: bool = False

    def clcc_line(self, stat: int | None = None) -> str:
        """The +CLCC line for this call, in its own state unless `stat` says otherwise."""
        status = self.state if stat is None else stat
        return f'+CLCC: 1,{int(self.incoming)},{status},0,0,"{self.number}",{145 if self.number.startswith("+") else 129}'

    def duration(self) -> str:
        """Time since BEGIN as the HHMMSS digits of VOICE CALL: END."""
        seconds = int(time.monotonic() - self.began_at) if self.began_at else 0
        return f"{seconds // 3600:02d}{seconds // 60 % 60:02d}{seconds % 60:02d}"

    def end_text(self, by_host: bool, quirky: bool) -> str:
        """VOICE CALL: END as the modem words it; `quirky` (end_without_duration) is how some firmware does."""
        if not quirky:
            return f"VOICE CALL: END: {self.duration()}"
        return "VOICE CALL: END" if by_host else f"VOICE CALL:END: {self.duration()}"
