"""Busy CPU beside a benchmark, on purpose: a call must degrade gracefully when the box is busy.

`busy_load(n)` starts n processes that spin (separate processes: no shared GIL with the call) and kills
them by PID on the way out, whatever happens. The load average goes into every report beside the figures,
since figures taken while other work runs mean little without it.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator

# Other work at the default priority, even when the bench itself was favoured (children inherit nice).
SPIN = "import os\nos.setpriority(os.PRIO_PROCESS, 0, 0)\nwhile True:\n    pass\n"


@contextlib.contextmanager
def busy_load(n: int) -> Iterator[list[int]]:
    """n spinning processes for the duration of the block; yields their PIDs."""
    procs = [subprocess.Popen([sys.executable, "-c", SPIN], stdin=subprocess.DEVNULL) for _ in range(max(0, n))]
    try:
        yield [p.pid for p in procs]
    finally:
        for proc in procs:
            proc.kill()
        for proc in procs:
            proc.wait(timeout=10)


def load_text() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f} on {os.cpu_count()} cores"
