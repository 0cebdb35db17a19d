"""A fleet worker as its own process, for the SIGKILL test: `python fleet_worker_main.py ROOT URL LINE TTL_S`
(the token in CELLCALL_QUEUE_TOKEN).

It answers every call and holds it for a minute, so the test can kill it mid-call.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from fleet_support import ANSWERED, Worker

from cellcall.config import QueueSettings


def main() -> None:
    root, url, line, ttl = Path(sys.argv[1]), sys.argv[2], sys.argv[3], float(sys.argv[4])
    queue = QueueSettings(url=url, line_name=line, claim_ttl_s=ttl, token=os.environ["CELLCALL_QUEUE_TOKEN"])
    with Worker(root, queue, scenario=ANSWERED, hold_s=60.0):
        print("worker-ready", flush=True)
        while True:
            time.sleep(1)


if __name__ == "__main__":
    main()
