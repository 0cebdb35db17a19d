"""CallTracker: the call's state as the modem reports it (IDLE -> DIALING/ALERTING or INCOMING -> ACTIVE -> IDLE).

Every field is changed under `lock` (`changed` is notified on each change) by three kinds of
thread: the AT reader (the URC handlers below), the caller's thread (the driver's dial, answer and
hang-up) and the driver's control thread (the dialling watch's +CLCC). The URC handlers stay quick,
as `at.py` requires: they change state, put line events on the driver's queue, and hand the slow
steps (routing audio at BEGIN, stopping it when the call ends) to `on_begin` / `on_over`, which only
queue them for the driver's control thread. The ring timer thread only announces a ring.
"""

from __future__ import annotations

import enum
import logging
import threading
from collections.abc import Callable

from cellcall.line import LineEvent, LineEventKind
from cellcall.line.at import Urc, UrcKind

log = logging.getLogger(__name__)


class CallState(str, enum.Enum):
    IDLE = "idle"
    DIALING = "dialing"  # ATD sent
    ALERTING = "alerting"  # +CLCC stat 3: the far end rings
    INCOMING = "incoming"  # RING seen, not answered
    ACTIVE = "active"  # VOICE CALL: BEGIN seen


def _hhmmss_seconds(text: str) -> int | None:
    if len(text) != 6 or not text.isdigit():
        return None
    return int(text[:2]) * 3600 + int(text[2:4]) * 60 + int(text[4:])


class CallTracker:
    """Call state and ring bookkeeping; URCs in, line events and control-thread steps out."""

    def __init__(
        self,
        emit: Callable[[LineEvent], None],
        on_begin: Callable[[int], None],
        on_over: Callable[[], None],
    ) -> None:
        self._emit_event = emit
        self._on_begin_call = on_begin  # queues the CPCMREG dance for call `call_id` on the control thread
        self._on_over = on_over  # queues stopping the call's audio on the control thread
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)  # notified on every call-state change
        self.state = CallState.IDLE
        self.call_id = 0
        self.host_hangup = False
        self._caller: str | None = None
        self._ring_seq = 0
        self._ring_announced = True
        self._missed_sent = False

    def emit(self, kind: LineEventKind, detail: str = "", number: str | None = None) -> None:
        self._emit_event(LineEvent(kind, detail=detail, number=number))

    # ---- the driver's steps (caller's and control thread) ------------------------------------

    def begin(self, state: CallState) -> int:
        """A new call (dialled or answered) in `state`; returns its id."""
        with self.lock:
            self.host_hangup = False
            self.call_id += 1
            self.set(state)
            return self.call_id

    def set(self, state: CallState) -> None:
        with self.lock:
            self.state = state
            self.changed.notify_all()

    def is_current(self, call_id: int) -> bool:
        return self.call_id == call_id and self.state is not CallState.IDLE

    def hang_up_by_host(self) -> bool:
        """Mark the call as ended by us (its end is then not reported); False when already idle."""
        with self.lock:
            if self.state is CallState.IDLE:
                return False
            self.host_hangup = True
            return True

    # ---- URCs (AT reader thread: record, queue, never send a command) --------------------------

    def on_urc(self, urc: Urc) -> None:
        kind = urc.kind
        if kind is UrcKind.RING:
            self._on_ring()
        elif kind is UrcKind.CLIP:
            self._announce_ring(self._ring_seq, urc.args[0] or None)
        elif kind is UrcKind.VOICE_CALL:
            if urc.args[0] == "BEGIN":
                self._on_begin()
            elif urc.args[0] == "END":
                seconds = _hhmmss_seconds(urc.args[1])
                self._on_call_over(
                    LineEventKind.REMOTE_HANGUP, f"call ended after {seconds} s" if seconds is not None else "call ended"
                )
        elif kind is UrcKind.NO_CARRIER:
            self._on_call_over(LineEventKind.REMOTE_HANGUP, "NO CARRIER")
        elif kind is UrcKind.BUSY:
            self._on_call_over(LineEventKind.BUSY, "BUSY")
        elif kind is UrcKind.NO_ANSWER:
            self._on_call_over(LineEventKind.NO_ANSWER, "NO ANSWER")
        elif kind is UrcKind.MISSED_CALL:
            self._on_missed(urc.args[1] or None)
        elif kind is UrcKind.DTMF:
            self.emit(LineEventKind.DTMF, urc.args[0])
        elif kind is UrcKind.CLCC:
            self.on_clcc(urc.args)
        else:
            log.info("modem: %s", urc.line)

    def _on_ring(self) -> None:
        with self.lock:
            if self.state not in (CallState.IDLE, CallState.INCOMING):
                return  # call waiting is not supported: the current call goes on
            if self.state is CallState.IDLE:
                self._caller = None
                self._missed_sent = False
            self.set(CallState.INCOMING)
            self._ring_seq += 1
            self._ring_announced = False
            seq = self._ring_seq
        # +CLIP normally follows at once; announce without a number if it does not.
        timer = threading.Timer(0.5, self._announce_ring, args=(seq, None))
        timer.daemon = True
        timer.start()

    def _announce_ring(self, seq: int, number: str | None) -> None:
        """One INCOMING event per ring, with the caller's number when +CLIP gave it."""
        with self.lock:
            if number:
                self._caller = number
            if self._ring_announced or seq != self._ring_seq or self.state is not CallState.INCOMING:
                return
            self._ring_announced = True
            caller = self._caller
        self.emit(LineEventKind.INCOMING, "RING", number=caller)

    def _on_missed(self, number: str | None) -> None:
        with self.lock:
            already = self._missed_sent
            self._missed_sent = True
            if self.state is CallState.INCOMING:
                self.set(CallState.IDLE)
        if not already:
            self.emit(LineEventKind.MISSED, "MISSED_CALL", number=number or self._caller)

    def _on_begin(self) -> None:
        with self.lock:
            if self.state in (CallState.IDLE, CallState.ACTIVE):
                return
            self.set(CallState.ACTIVE)
            call_id = self.call_id
        self._on_begin_call(call_id)

    def _on_call_over(self, kind: LineEventKind, detail: str) -> None:
        with self.lock:
            previous = self.state
            if previous is CallState.IDLE:
                return  # e.g. NO CARRIER right after VOICE CALL: END
            self.set(CallState.IDLE)
            by_host = self.host_hangup
        self._on_over()
        if by_host:
            return
        if previous is CallState.INCOMING:
            self._on_missed(self._caller)
        else:
            self.emit(kind, detail)

    def on_clcc(self, fields: tuple[str, ...]) -> None:
        """+CLCC: id,dir,stat,...: an outbound call (dir 0) in stat 3 is alerting -> RINGING."""
        if len(fields) < 3 or fields[1] != "0" or fields[2] != "3":
            return
        with self.lock:
            if self.state is not CallState.DIALING:
                return
            self.set(CallState.ALERTING)
        self.emit(LineEventKind.RINGING, "alerting")
