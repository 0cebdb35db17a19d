"""The fleet's dial ledger: calls per hour and per day across every line, reserved by compare-and-set.

One KV entry (`dials`) holds the dial times of the last day. A worker reserves a slot before it
dials: read, drop entries older than a day, check the fleet limits, append now, and update with
the revision it read; a conflict (another worker reserved meanwhile) retries, so two workers can
never both take the last slot. Each line's own [policy] limits still apply on top (policy.py).
Runs on the queue thread.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

KEY = "dials"
HOUR_S = 3600.0
DAY_S = 86400.0


@dataclass(frozen=True)
class FleetLimits:
    per_hour: int = 0  # 0 = no fleet-wide limit
    per_day: int = 0

    def wait_s(self, times: list[float], now: float) -> float:
        """Seconds until one more dial fits the limits (0 = now)."""
        waits = [0.0]
        for limit, window in ((self.per_hour, HOUR_S), (self.per_day, DAY_S)):
            recent = sorted(t for t in times if now - t < window)
            if limit and len(recent) >= limit:
                waits.append(recent[len(recent) - limit] + window - now)
        return max(waits)


async def _load(kv: KeyValue) -> tuple[int | None, list[float]]:
    try:
        entry = await kv.get(KEY)
    except KeyNotFoundError:
        return None, []
    return entry.revision, [float(t) for t in json.loads(entry.value or b"[]")]


async def hold_s(kv: KeyValue, limits: FleetLimits) -> float:
    """How long the fleet must wait before its next dial (0 = it may dial now)."""
    if not (limits.per_hour or limits.per_day):
        return 0.0
    _, times = await _load(kv)
    return limits.wait_s(times, time.time())


async def reserve(kv: KeyValue, limits: FleetLimits) -> float:
    """Record one dial if the limits allow it: 0.0 on success, else the seconds to wait."""
    while True:
        revision, times = await _load(kv)
        now = time.time()
        wait = limits.wait_s(times, now)
        if wait > 0:
            return wait
        kept = [t for t in times if now - t < DAY_S] + [now]
        try:
            if revision is None:
                await kv.create(KEY, json.dumps(kept).encode())
            else:
                await kv.update(KEY, json.dumps(kept).encode(), last=revision)
            return 0.0
        except KeyWrongLastSequenceError:
            continue  # another worker reserved first: read again
