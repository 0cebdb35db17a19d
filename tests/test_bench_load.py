"""The deliberate load beside a benchmark: real spinning processes, gone by PID afterwards."""

from __future__ import annotations

import os
import time

from cellcall.bench.load import busy_load, load_text


def test_busy_load_spins_real_processes_and_kills_them_all() -> None:
    with busy_load(2) as pids:
        assert len(pids) == 2
        time.sleep(0.3)
        for pid in pids:
            with open(f"/proc/{pid}/stat") as stat:
                assert stat.read().split()[2] in "RS"  # running (or just scheduled out)
    time.sleep(0.1)
    for pid in pids:
        assert not os.path.exists(f"/proc/{pid}")  # killed and reaped
    assert load_text().startswith("load average ")
