"""Tell OpenClaw that a call ended: queue the push on disk, deliver it in the background, retry later.

`notify_call_finished` is called by the call and the watch runner when a call's reports are written. It
only writes a small file and starts a thread, so the caller never waits on the network; the push survives
a gateway that is down, a crash or a restart, and `deliver_pending` (run every 30 s by the thread that
`start_periodic_delivery` starts for `cellcall watch`, or by `cellcall openclaw flush`) sends what is left.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from cellcall.config import Settings
from cellcall.observe import CallObserver
from cellcall.openclaw.memory import append_memory_note
from cellcall.openclaw.payload import push_payload
from cellcall.openclaw.push import DELIVERED, REJECTED, RETRY, Outcome, deliver
from cellcall.openclaw.queue import FAILED, PENDING, PushQueue, QueueEntry
from cellcall.openclaw.queue import REJECTED as STATE_REJECTED
from cellcall.priority import run_in_background
from cellcall.record import CallRecord

log = logging.getLogger("cellcall.openclaw")

BACKGROUND_TIMEOUT_S = 5.0
BACKGROUND_RETRY_DELAYS_S = (0.5, 1.5)  # quick retries in the background thread before leaving it to the queue
BACKOFF_BASE_S = 5.0
BACKOFF_CAP_S = 600.0
EXIT_WAIT_S = 5.0  # at interpreter exit, give in-flight pushes this long in all
FLUSH_INTERVAL_S = 30.0

_in_flight: list[threading.Thread] = []
_in_flight_lock = threading.Lock()


@dataclass
class DeliveryReport:
    """What one pass over the queue did, per call id."""

    delivered: list[str] = field(default_factory=list)
    retrying: dict[str, str] = field(default_factory=dict)  # call id -> why; still queued
    rejected: dict[str, str] = field(default_factory=dict)  # call id -> why (token); kept, not retried
    failed: dict[str, str] = field(default_factory=dict)  # call id -> the gateway's reason; kept, not retried
    waiting: list[str] = field(default_factory=list)  # pending but not due yet (backoff) or gateway down this pass
    busy: bool = False  # another delivery held the queue for the whole wait

    @property
    def ok(self) -> bool:
        return not (self.retrying or self.rejected or self.failed or self.busy)


def describe_report(report: DeliveryReport) -> str:
    """One line per call id, for `cellcall openclaw flush`."""
    lines = [f"delivered {call_id}" for call_id in report.delivered]
    lines += [
        f"{label} {call_id}: {why}"
        for label, found in (("retrying", report.retrying), ("rejected", report.rejected), ("failed", report.failed))
        for call_id, why in found.items()
    ]
    lines += [f"waiting {call_id}" for call_id in report.waiting]
    if report.busy:
        lines.append("another delivery is running; try again in a moment")
    return "\n".join(lines) or "queue empty"


def queue_for(settings: Settings) -> PushQueue:
    return PushQueue(Path(settings.paths.outbox))


def notify_call_finished(settings: Settings, record: CallRecord, folder: Path) -> None:
    """Queue the push for this call and deliver it in the background; never raises, returns in milliseconds."""
    try:
        if settings.openclaw.memory_notes:
            append_memory_note(settings, record, folder)
        if not settings.openclaw.enabled:
            return
        queue_for(settings).put(QueueEntry(call_id=record.call_id, payload=push_payload(record, folder)))
        thread = threading.Thread(
            target=_deliver_in_background, args=(settings, record.call_id), name=f"openclaw-push-{record.call_id}", daemon=True
        )
        with _in_flight_lock:
            _in_flight[:] = [t for t in _in_flight if t.is_alive()] + [thread]
        thread.start()
    except Exception as exc:  # noqa: BLE001 - the call's own outcome matters more than the push
        log.warning("openclaw: could not queue the push for call %s: %s", record.call_id, exc)


def wait_for_deliveries(timeout_s: float = EXIT_WAIT_S) -> bool:
    """Wait for background pushes (a one-shot `cellcall run` calls this, and so does interpreter exit)."""
    deadline = time.monotonic() + timeout_s
    with _in_flight_lock:
        threads = list(_in_flight)
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    return not any(thread.is_alive() for thread in threads)


atexit.register(wait_for_deliveries)


def _deliver_in_background(settings: Settings, call_id: str) -> None:
    with run_in_background(settings.priority.background_nice):  # the next call may be live meanwhile
        for delay in (0.0, *BACKGROUND_RETRY_DELAYS_S):
            time.sleep(delay)
            report = deliver_pending(settings, timeout_s=BACKGROUND_TIMEOUT_S, only=call_id, force=True)
            if call_id not in report.retrying and not report.busy:
                return


def start_periodic_delivery(
    settings: Settings, stop: threading.Event, interval_s: float = FLUSH_INTERVAL_S
) -> threading.Thread | None:
    """For `cellcall watch`: a thread that sends due pushes every `interval_s` until `stop` is set.

    Its own thread, because a hung gateway may hold a pass for seconds and the runner must stay free to answer
    calls. Returns None when the push is off.
    """
    if not settings.openclaw.enabled:
        return None

    def loop() -> None:
        with run_in_background(settings.priority.background_nice):
            while not stop.wait(interval_s):
                try:
                    deliver_pending(settings)
                except Exception as exc:  # noqa: BLE001 - keep flushing; a broken queue file must not end the pushes
                    log.warning("openclaw: queue pass failed: %s", exc)

    thread = threading.Thread(target=loop, name="openclaw-queue", daemon=True)
    thread.start()
    return thread


def deliver_pending(
    settings: Settings, timeout_s: float = 5.0, *, retry_failed: bool = False, force: bool = False, only: str | None = None
) -> DeliveryReport:
    """Send every due push in the queue, oldest first.

    `timeout_s` bounds each request. After one "unreachable", the rest of the pass waits: the gateway is down.
    `retry_failed` resends rejected/failed entries too (after fixing the token); `force` ignores backoff.
    """
    report = DeliveryReport()
    queue = queue_for(settings)
    with queue.locked(wait_s=timeout_s) as got_lock:
        if not got_lock:
            report.busy = True
            return report
        gateway_down = False
        for entry in queue.entries():
            if only is not None and entry.call_id != only:
                continue
            if entry.state != PENDING and not retry_failed:
                (report.rejected if entry.state == STATE_REJECTED else report.failed)[entry.call_id] = entry.last_error
                continue
            if gateway_down or not (force or retry_failed or entry.due(time.time())):
                report.waiting.append(entry.call_id)
                continue
            outcome = deliver(settings.openclaw, entry.payload, timeout_s)
            _record(queue, entry, outcome, report)
            gateway_down = outcome.kind == RETRY
    return report


def _record(queue: PushQueue, entry: QueueEntry, outcome: Outcome, report: DeliveryReport) -> None:
    """Apply one attempt's outcome to the queue entry and the report, and log it (the token is already scrubbed)."""
    if outcome.kind == DELIVERED:
        queue.remove(entry.call_id)
        report.delivered.append(entry.call_id)
        log.info("openclaw: pushed call %s (%s)", entry.call_id, outcome.message)
        return
    entry.attempts += 1
    entry.last_error = outcome.message
    if outcome.kind == RETRY:
        entry.state = PENDING
        entry.next_attempt_at = time.time() + min(BACKOFF_BASE_S * 2 ** (entry.attempts - 1), BACKOFF_CAP_S)
        report.retrying[entry.call_id] = outcome.message
    else:
        entry.state = STATE_REJECTED if outcome.kind == REJECTED else FAILED
        (report.rejected if outcome.kind == REJECTED else report.failed)[entry.call_id] = outcome.message
    queue.put(entry)
    log.warning("openclaw: push for call %s not delivered (attempt %d): %s", entry.call_id, entry.attempts, outcome.message)


class PushToOpenClaw(CallObserver):
    """Pushes a finished call to OpenClaw: `cellcall run` and `watch` add it; benchmarks and evals do not."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def on_finished(self, record: CallRecord, folder: Path) -> None:
        notify_call_finished(self.settings, record, folder)
