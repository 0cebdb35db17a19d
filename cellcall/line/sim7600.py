"""Sim7600Line: the `Line` protocol over a SIM7600G-H's AT port and raw PCM port.

Threads, each with one job so the audio never waits on call control:
- at-reader (in ATChannel): responses and URCs; URC handlers only record state and queue events;
- audio-reader: reads the downlink continuously into a bounded frame queue (drop oldest, counted);
- uplink-writer (during a call): real-time paced uplink (pacing.py);
- control: the slow call-control steps that send commands (CPCMREG dance, dialling watch).

Facts obeyed (reference/modem.md): CPCMREG=0 before every call, =1 only after VOICE CALL: BEGIN
plus a short wait, verified with AT+CPCMREG? and retried; sample rate measured from the downlink;
a vanished port is a line error within a second; recovery re-opens BOTH ports.
"""

from __future__ import annotations

import enum
import logging
import os
import queue
import re
import select
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import serial

from cellcall.config import Settings
from cellcall.line import LineError, LineEvent, LineEventKind, LineStatus, frame_bytes
from cellcall.line.at import ATChannel, ATResponse, ATTimeout, Urc, UrcKind, parse_fields
from cellcall.line.framing import RateDetector, Reframer
from cellcall.line.pacing import PacedWriter, UplinkQueue
from cellcall.line.threads import stop_thread

log = logging.getLogger(__name__)

_NUMBER = re.compile(r"\+?[0-9]{2,20}")
_DTMF = re.compile(r"[0-9*#A-D]+")
_SMS_TEXT = re.compile(r"[\x20-\x7e\n]{1,160}")
SMS_MAX = 160


class CallState(str, enum.Enum):
    IDLE = "idle"
    DIALING = "dialing"  # ATD sent
    ALERTING = "alerting"  # +CLCC stat 3: the far end rings
    INCOMING = "incoming"  # RING seen, not answered
    ACTIVE = "active"  # VOICE CALL: BEGIN seen


@dataclass
class ModemOptions:
    """Timing knobs; defaults follow reference/modem.md."""

    command_timeout_s: float = 5.0
    answer_timeout_s: float = 45.0  # outbound: no BEGIN by then -> NO_ANSWER and hang up
    route_delay_s: float = 0.3  # after BEGIN, before AT+CPCMREG=1 (too early -> ERROR/freeze)
    route_attempts: int = 5
    rate_window_s: float = 0.25  # downlink measured this long to tell 8 from 16 kHz (they differ 2x)
    downlink_timeout_s: float = 2.0  # routed but no PCM by then -> reroute once, then ERROR
    reopen_timeout_s: float = 10.0
    reset_timeout_s: float = 30.0  # AT+CRESET: USB re-enumerates in 14-20 s on real hardware
    frame_queue: int = 100  # downlink frames held (2 s); the oldest is dropped beyond
    lead_ms: int = 60  # uplink bytes kept ahead of real time: absorbs scheduling hiccups, costs barge-in latency
    sms_timeout_s: float = 60.0


def modem_options(settings: Settings) -> ModemOptions:
    """The configured timing knobs; the rest keep the defaults above."""
    line = settings.line
    return ModemOptions(
        command_timeout_s=line.command_timeout_s,
        answer_timeout_s=line.answer_timeout_s,
        reset_timeout_s=line.reset_timeout_s,
    )


def _hhmmss_seconds(text: str) -> int | None:
    if len(text) != 6 or not text.isdigit():
        return None
    return int(text[:2]) * 3600 + int(text[2:4]) * 60 + int(text[4:])


class Sim7600Line:
    """A SIM7600G-H (or anything that behaves as reference/modem.md says) given its two port paths."""

    def __init__(
        self,
        at_port: str,
        audio_port: str,
        options: ModemOptions | None = None,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self.at_path = at_port
        self.audio_path = audio_port
        self.options = options or ModemOptions()
        self.sample_rate = 8000
        self._on_close = on_close
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)  # notified on every call-state change
        self._events: queue.Queue[LineEvent] = queue.Queue()
        self._frames: deque[bytes] = deque()
        self._frames_ready = threading.Condition()
        self._txq = UplinkQueue(self.sample_rate)
        self._state = CallState.IDLE
        self._call_id = 0
        self._host_hangup = False
        self._caller: str | None = None
        self._ring_seq = 0
        self._ring_announced = True
        self._missed_sent = False
        self._io_lock = threading.Lock()
        self._io_open = False
        self._failed = False
        self._resetting = False
        self._closed = False
        self._at: ATChannel | None = None
        self._at_serial: serial.Serial | None = None
        self._audio: serial.Serial | None = None
        self._writer: PacedWriter | None = None
        self._threads: list[threading.Thread] = []
        self._tasks: queue.Queue[Callable[[], None]] = queue.Queue()
        self._stop = threading.Event()
        self._audio_active = False
        self._detector = RateDetector(self.options.rate_window_s)
        self._reframer: Reframer | None = None
        self._held = bytearray()  # downlink bytes received while the rate is being measured
        self._rate_known = threading.Event()
        self.frames_dropped = 0
        self.downlink_bytes = 0

    # ---- lifecycle -------------------------------------------------------------------------

    def open(self) -> None:
        with self._lock:
            if self._io_open:
                return
            self._closed = False
        self._open_ports()
        try:
            self._init_modem()
        except LineError:
            self._close_io()
            raise

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if self._state is not CallState.IDLE and self._io_open and not self._failed:
            try:
                self.hangup()
            except LineError as exc:
                log.warning("hang-up during close failed: %s", exc)
        self._close_io()
        if self._on_close is not None:
            self._on_close()

    def __enter__(self) -> Sim7600Line:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _open_serial(self, path: str, role: str) -> serial.Serial:
        try:
            return serial.Serial(path, 115200, timeout=0.05, write_timeout=2, exclusive=True)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise LineError(f"cannot open the {role} port {path}: {exc}") from exc

    def _open_ports(self) -> None:
        at_serial = self._open_serial(self.at_path, "AT")
        try:
            audio = self._open_serial(self.audio_path, "audio")
        except LineError:
            at_serial.close()
            raise
        with self._io_lock:
            self._stop = threading.Event()
            self._failed = False
            self._at_serial, self._audio = at_serial, audio
            self._at = ATChannel(at_serial, self._on_urc, self._on_port_error).start()
            self._threads = [
                threading.Thread(target=self._read_audio, args=(audio, self._stop), name="audio-reader", daemon=True),
                threading.Thread(target=self._run_tasks, args=(self._stop,), name="line-control", daemon=True),
            ]
            for thread in self._threads:
                thread.start()
            self._io_open = True

    def _close_io(self) -> None:
        """Stop every thread and close both ports; idempotent, safe from any thread but the readers."""
        with self._io_lock:
            if not self._io_open:
                return
            self._io_open = False
            self._stop.set()
        self._stop_call_audio()
        if self._at is not None:
            self._at.stop()
        for thread in self._threads:
            stop_thread(thread, self._stop)
        for port in (self._at_serial, self._audio):
            try:
                if port is not None:
                    port.close()
            except (serial.SerialException, OSError):
                pass
        with self._lock:
            self._state = CallState.IDLE
            self._changed.notify_all()

    def _init_modem(self) -> None:
        self._ping(attempts=5)
        for command in ("ATE0", "AT+CVHU=0", "AT+CLIP=1"):
            self._cmd(command).check()
        self._cmd("AT+CPCMREG=0")  # ERROR outside a call is normal; it resets a stale route
        self._cmd("AT+CLCC=1")  # call-state URCs (alerting) where supported; dialling also polls
        if self._cmd("AT+CLCC").values("+CLCC:"):
            log.warning("a call was in progress at open; hanging it up")
            self._cmd("AT+CHUP")

    def _ping(self, attempts: int) -> None:
        for attempt in range(attempts):
            try:
                if self._cmd("AT", timeout=1.0).ok:
                    return
            except ATTimeout:
                pass
            if attempt + 1 < attempts:
                self._stop.wait(0.2 * (attempt + 1))
        raise LineError(f"the modem on {self.at_path} did not answer AT")

    def _cmd(self, command: str, timeout: float | None = None) -> ATResponse:
        if self._at is None or not self._io_open:
            raise LineError("the line is not open")
        return self._at.command(command, timeout or self.options.command_timeout_s)

    # ---- status ----------------------------------------------------------------------------

    def status(self) -> LineStatus:
        ports = {"at": self.at_path, "audio": self.audio_path}
        if not self._io_open:
            return LineStatus(ready=False, ports=ports, detail="line not open")
        model = next((line.split(":", 1)[1].strip() for line in self._cmd("ATI").lines if line.startswith("Model:")), None)
        cpin = self._cmd("AT+CPIN?")
        sim = cpin.values("+CPIN:")[0] if cpin.ok and cpin.values("+CPIN:") else cpin.final
        registered = any(self._registration(self._cmd(f"AT+{name}?").values(f"+{name}:")) for name in ("CEREG", "CREG"))
        operator = None
        cops = self._cmd("AT+COPS?").values("+COPS:")
        if cops:
            fields = parse_fields(cops[0])
            operator = fields[2] if len(fields) > 2 and fields[2] else None
        signal = None
        csq = self._cmd("AT+CSQ").values("+CSQ:")
        rssi = csq[0].split(",")[0].strip() if csq else ""
        if rssi.isdigit() and rssi != "99":
            signal = -113 + 2 * int(rssi)
        detail = "" if registered else "not registered on the network (CEREG/CREG)"
        return LineStatus(
            ready=sim == "READY" and registered,
            registered=registered,
            operator=operator,
            signal_dbm=signal,
            sim=sim,
            model=model,
            ports=ports,
            detail=detail if sim == "READY" else f"SIM: {sim}",
        )

    @staticmethod
    def _registration(values: list[str]) -> bool:
        """+CREG: 0,1 / +CEREG: 0,5 -> registered (home or roaming)."""
        fields = values[0].split(",") if values else []
        return len(fields) > 1 and fields[1].strip() in ("1", "5")

    # ---- call control ----------------------------------------------------------------------

    def dial(self, number: str) -> None:
        if not isinstance(number, str) or not _NUMBER.fullmatch(number):
            raise LineError(f"not a dialable number: {number!r} (digits with an optional leading +)")
        with self._lock:
            if self._state is not CallState.IDLE:
                raise LineError(f"cannot dial: a call is already {self._state.value}")
        self._cmd("AT+CPCMREG=0")  # reset before each call, or later calls fail to route audio
        with self._lock:
            self._begin_call(CallState.DIALING)
            call_id = self._call_id
        response = self._cmd(f"ATD{number};")
        if not response.ok:
            self._set_state(CallState.IDLE)
            outcome = {"BUSY": LineEventKind.BUSY, "NO ANSWER": LineEventKind.NO_ANSWER}.get(response.final)
            if outcome is None:
                raise LineError(f"the modem refused to dial: ATD -> {response.final}")
            self._emit(outcome, response.final)
            return
        self._tasks.put(lambda: self._watch_dialing(call_id))

    def answer(self) -> None:
        with self._lock:
            if self._state is not CallState.INCOMING:
                raise LineError(f"no incoming call to answer (line is {self._state.value})")
        self._cmd("AT+CPCMREG=0")
        with self._lock:
            self._begin_call(CallState.INCOMING)
        response = self._cmd("ATA")
        if not response.ok:
            self._set_state(CallState.IDLE)
            raise LineError(f"could not answer: ATA -> {response.final} (the caller may have hung up)")

    def hangup(self) -> None:
        with self._lock:
            if self._state is CallState.IDLE:
                return
            self._host_hangup = True
        self._stop_call_audio()
        try:
            if not self._cmd("AT+CHUP").ok:
                self._cmd("ATH")  # honoured because init set AT+CVHU=0
        finally:
            self._set_state(CallState.IDLE)

    def send_dtmf(self, digits: str) -> None:
        """Play DTMF digits to the far end (AT+VTS, one per digit) during a call."""
        if not isinstance(digits, str) or not _DTMF.fullmatch(digits):
            raise LineError(f"not DTMF digits: {digits!r} (0-9, *, #, A-D)")
        if self._state is not CallState.ACTIVE:
            raise LineError("DTMF needs an answered call")
        for digit in digits:
            self._cmd(f"AT+VTS={digit}").check()

    def send_sms(self, number: str, text: str) -> int:
        """Send a text-mode SMS; returns the network's message reference (+CMGS: n)."""
        if not isinstance(number, str) or not _NUMBER.fullmatch(number):
            raise LineError(f"not a number an SMS can go to: {number!r}")
        if not isinstance(text, str) or not _SMS_TEXT.fullmatch(text):
            raise LineError(f"SMS text must be 1-{SMS_MAX} printable ASCII characters (newlines allowed)")
        self._cmd("AT+CMGF=1").check()
        if self._at is None:
            raise LineError("the line is not open")
        response = self._at.command_with_prompt(
            f'AT+CMGS="{number}"', text.encode("ascii") + b"\x1a", self.options.sms_timeout_s
        ).check()
        reference = response.values("+CMGS:")
        return int(reference[0]) if reference and reference[0].isdigit() else -1

    def _begin_call(self, state: CallState) -> None:
        self._host_hangup = False
        self._call_id += 1
        self._set_state(state)

    def _set_state(self, state: CallState) -> None:
        with self._lock:
            self._state = state
            self._changed.notify_all()

    def _current(self, call_id: int) -> bool:
        return self._call_id == call_id and self._state is not CallState.IDLE and not self._stop.is_set()

    def _watch_dialing(self, call_id: int) -> None:
        """Poll AT+CLCC while dialling (RINGING when alerting); hang up after answer_timeout_s."""
        deadline = time.monotonic() + self.options.answer_timeout_s
        while True:
            with self._lock:
                if not self._current(call_id) or self._state not in (CallState.DIALING, CallState.ALERTING):
                    return
            if time.monotonic() >= deadline:
                self.hangup()
                self._emit(LineEventKind.NO_ANSWER, f"no answer within {self.options.answer_timeout_s:g} s")
                return
            try:
                for fields in self._cmd("AT+CLCC").values("+CLCC:"):
                    self._on_clcc(parse_fields(fields))
            except ATTimeout:
                pass
            with self._lock:
                self._changed.wait(0.5)

    def _route_audio(self, call_id: int) -> None:
        """The CPCMREG dance after BEGIN; ANSWERED once PCM flows, else ERROR and hang up."""
        if self._stop.wait(self.options.route_delay_s) or not self._current(call_id):
            return
        self._start_call_audio()  # capture from the very first downlink byte the routing brings
        if not self._enable_pcm(call_id):
            reason = f"audio not routed: AT+CPCMREG=1 did not take after {self.options.route_attempts} attempts"
        else:
            flowing = self._rate_known.wait(self.options.downlink_timeout_s) or self._reroute(call_id)
            if flowing and self._current(call_id):
                self._emit(LineEventKind.ANSWERED, f"audio routed at {self.sample_rate} Hz")
                return
            reason = f"audio routed but no downlink PCM within {self.options.downlink_timeout_s:g} s"
        if not self._current(call_id):
            self._stop_call_audio()  # the call ended while audio was being routed
            return
        self._emit(LineEventKind.ERROR, reason)
        self.hangup()

    def _enable_pcm(self, call_id: int) -> bool:
        backoff = 0.2
        for _ in range(self.options.route_attempts):
            if not self._current(call_id):
                return False
            if self._cmd("AT+CPCMREG=1").ok and self._pcm_routed():
                return True
            if self._stop.wait(backoff):
                return False
            backoff = min(backoff * 2, 1.0)
        return False

    def _pcm_routed(self) -> bool:
        """AT+CPCMREG? says 1; acceptance is asynchronous, so ask a few times before giving up."""
        for _ in range(3):
            values = self._cmd("AT+CPCMREG?").values("+CPCMREG:")
            if values and values[0].split(",")[0].strip() == "1":
                return True
            self._stop.wait(0.15)
        self._cmd("AT+CPCMREG=0")
        return False

    def _reroute(self, call_id: int) -> bool:
        """Recovery ladder step: CPCMREG 0 then 1 when routed audio does not flow."""
        log.warning("no downlink audio: re-routing PCM (CPCMREG 0 -> 1)")
        self._cmd("AT+CPCMREG=0")
        self._start_call_audio()
        return self._enable_pcm(call_id) and self._rate_known.wait(self.options.downlink_timeout_s)

    # ---- URCs (reader thread: record, queue, never send a command) ----------------------------

    def _on_urc(self, urc: Urc) -> None:
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
            self._emit(LineEventKind.DTMF, urc.args[0])
        elif kind is UrcKind.CLCC:
            self._on_clcc(urc.args)
        else:
            log.info("modem: %s", urc.line)

    def _on_ring(self) -> None:
        with self._lock:
            if self._state not in (CallState.IDLE, CallState.INCOMING):
                return  # call waiting is not supported: the current call goes on
            if self._state is CallState.IDLE:
                self._caller = None
                self._missed_sent = False
            self._set_state(CallState.INCOMING)
            self._ring_seq += 1
            self._ring_announced = False
            seq = self._ring_seq
        # +CLIP normally follows at once; announce without a number if it does not.
        timer = threading.Timer(0.5, self._announce_ring, args=(seq, None))
        timer.daemon = True
        timer.start()

    def _announce_ring(self, seq: int, number: str | None) -> None:
        """One INCOMING event per ring, with the caller's number when +CLIP gave it."""
        with self._lock:
            if number:
                self._caller = number
            if self._ring_announced or seq != self._ring_seq or self._state is not CallState.INCOMING:
                return
            self._ring_announced = True
            caller = self._caller
        self._emit(LineEventKind.INCOMING, "RING", number=caller)

    def _on_missed(self, number: str | None) -> None:
        with self._lock:
            already = self._missed_sent
            self._missed_sent = True
            if self._state is CallState.INCOMING:
                self._set_state(CallState.IDLE)
        if not already:
            self._emit(LineEventKind.MISSED, "MISSED_CALL", number=number or self._caller)

    def _on_begin(self) -> None:
        with self._lock:
            if self._state in (CallState.IDLE, CallState.ACTIVE):
                return
            self._set_state(CallState.ACTIVE)
            call_id = self._call_id
        self._tasks.put(lambda: self._route_audio(call_id))

    def _on_call_over(self, kind: LineEventKind, detail: str) -> None:
        with self._lock:
            previous = self._state
            if previous is CallState.IDLE:
                return  # e.g. NO CARRIER right after VOICE CALL: END
            self._set_state(CallState.IDLE)
            by_host = self._host_hangup
        self._stop_call_audio()
        if by_host:
            return
        if previous is CallState.INCOMING:
            self._on_missed(self._caller)
        else:
            self._emit(kind, detail)

    def _on_clcc(self, fields: tuple[str, ...]) -> None:
        """+CLCC: id,dir,stat,...: an outbound call (dir 0) in stat 3 is alerting -> RINGING."""
        if len(fields) < 3 or fields[1] != "0" or fields[2] != "3":
            return
        with self._lock:
            if self._state is not CallState.DIALING:
                return
            self._set_state(CallState.ALERTING)
        self._emit(LineEventKind.RINGING, "alerting")

    def _on_port_error(self, exc: Exception) -> None:
        self._fail(f"modem port vanished: {exc}")

    def _fail(self, reason: str) -> None:
        """A port died: one ERROR event, then tear everything down (unless a reset expects it)."""
        with self._lock:
            if self._failed or self._resetting or not self._io_open:
                return
            self._failed = True
            self._set_state(CallState.IDLE)
        self._emit(LineEventKind.ERROR, reason)
        threading.Thread(target=self._close_io, name="line-teardown", daemon=True).start()

    def _emit(self, kind: LineEventKind, detail: str = "", number: str | None = None, tag: object | None = None) -> None:
        self._events.put(LineEvent(kind, detail=detail, number=number, tag=tag))

    def next_event(self, timeout: float) -> LineEvent | None:
        try:
            return self._events.get(timeout=timeout)
        except queue.Empty:
            return None

    def _run_tasks(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                task = self._tasks.get(timeout=0.1)
            except queue.Empty:
                continue
            try:
                task()
            except LineError as exc:  # a vanished port is reported by the readers
                log.warning("call control step failed: %s", exc)

    # ---- audio -----------------------------------------------------------------------------

    def _read_audio(self, port: serial.Serial, stop: threading.Event) -> None:
        """Downlink reader: select + read, never blocked by anything else; EIO means the port vanished."""
        fd = port.fileno()
        while not stop.is_set():
            try:
                ready, _, _ = select.select([fd], [], [], 0.05)
                if not ready:
                    continue
                data = os.read(fd, 4096)
            except (OSError, ValueError) as exc:
                if not stop.is_set():
                    self._fail(f"audio port vanished: {exc}")
                return
            if not data:
                if not stop.is_set():
                    self._fail("audio port vanished: end of file")
                return
            self._on_downlink(data, time.monotonic())

    def _on_downlink(self, data: bytes, now: float) -> None:
        if not self._audio_active:
            return
        writer = self._writer
        if self.downlink_bytes == 0 and writer is not None:
            # The modem's PCM clock starts with the first downlink bytes; before that it drops
            # uplink, so the uplink's clock (and its lead) starts here too.
            writer.start()
        self.downlink_bytes += len(data)
        if self._reframer is None:
            self._held += data
            rate = self._detector.feed(len(data), now)
            if rate is None:
                return
            self._set_sample_rate(rate)
            data = bytes(self._held)
            self._held.clear()
        for frame in self._reframer.feed(data):  # type: ignore[union-attr]
            self._push_frame(frame)

    def _set_sample_rate(self, rate: int) -> None:
        self.sample_rate = rate
        self._reframer = Reframer(frame_bytes(rate))
        if self._writer is not None:
            self._writer.set_byte_rate(rate * 2)
        self._rate_known.set()

    def _push_frame(self, frame: bytes) -> None:
        with self._frames_ready:
            if len(self._frames) >= self.options.frame_queue:
                self._frames.popleft()
                self.frames_dropped += 1
            self._frames.append(frame)
            self._frames_ready.notify()

    def read_frame(self, timeout: float) -> bytes | None:
        with self._frames_ready:
            if not self._frames_ready.wait_for(lambda: bool(self._frames), timeout):
                return None
            return self._frames.popleft()

    def _start_call_audio(self) -> None:
        """(Re)start measuring the downlink and pacing the uplink for the current call."""
        self._stop_call_audio()
        with self._frames_ready:
            self._frames.clear()
        self._detector = RateDetector(self.options.rate_window_s)
        self._reframer = None
        self._held.clear()
        self._rate_known.clear()
        audio = self._audio
        if audio is None:
            raise LineError("the audio port is not open")
        fd = audio.fileno()
        self._writer = PacedWriter(
            self._txq,
            lambda data: self._write_some(fd, data),
            on_started=lambda tag: self._emit(LineEventKind.TX_STARTED, tag=tag),
            on_idle=lambda: self._emit(LineEventKind.TX_IDLE),
            on_error=lambda exc: self._fail(f"audio port vanished: {exc}"),
            byte_rate=self.sample_rate * 2,
            lead_ms=self.options.lead_ms,
        )
        self.downlink_bytes = 0
        self._audio_active = True

    def _stop_call_audio(self) -> None:
        self._audio_active = False
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.stop()
        self._txq.clear()

    @staticmethod
    def _write_some(fd: int, data: bytes) -> int:
        """Non-blocking write: what the port took (0 when its buffer is full)."""
        try:
            return os.write(fd, data)
        except BlockingIOError:
            return 0

    def write(self, pcm: bytes, tag: object | None = None) -> None:
        self._txq.put(pcm, tag)

    def clear_tx(self) -> None:
        """Barge-in: drop the host queue and what the port's output buffer still holds."""
        self._txq.clear()
        audio, writer = self._audio, self._writer
        if audio is None or not self._io_open:
            return
        try:
            flushed = audio.out_waiting
            audio.reset_output_buffer()
        except (serial.SerialException, OSError) as exc:
            log.warning("could not flush the audio port: %s", exc)
            return
        if writer is not None:
            writer.discard(flushed)

    def tx_queued_ms(self) -> float:
        writer = self._writer
        pending = writer.pending_bytes if writer is not None else 0
        return (self._txq.queued_bytes + pending) * 1000 / (self.sample_rate * 2)

    @property
    def uplink(self) -> PacedWriter | None:
        """The running uplink writer (bytes sent, underruns, max gap), for diagnostics and benchmarks."""
        return self._writer

    # ---- recovery --------------------------------------------------------------------------

    def recover(self) -> str:
        """Walk the recovery ladder; returns the step that worked: reopened, rerouted, reset, healthy."""
        if not self._healthy():
            if self._reopen(self.options.reopen_timeout_s):
                return "reopened"
        elif self._state is CallState.ACTIVE:
            if self._reroute(self._call_id):
                return "rerouted"
        else:
            return "healthy"
        self.reset_modem()
        return "reset"

    def _healthy(self) -> bool:
        if not self._io_open or self._failed:
            return False
        try:
            return self._cmd("AT", timeout=2.0).ok
        except LineError:
            return False

    def _reopen(self, timeout_s: float) -> bool:
        """Re-open BOTH ports and re-initialise, with backoff, until `timeout_s` runs out."""
        deadline = time.monotonic() + timeout_s
        backoff = 0.25
        while True:
            self._close_io()
            try:
                self.open()
                return True
            except LineError as exc:
                log.info("re-open failed (%s); retrying in %.2f s", exc, backoff)
            if time.monotonic() + backoff > deadline:
                return False
            time.sleep(backoff)
            backoff = min(backoff * 2, 2.0)

    def reset_modem(self) -> None:
        """AT+CRESET, wait for the USB device to re-enumerate at the same paths, re-open both ports."""
        deadline = time.monotonic() + self.options.reset_timeout_s
        with self._lock:
            self._resetting = True
        try:
            if self._io_open and not self._failed:
                self._cmd("AT+CRESET").check()
                self._wait_vanished(deadline)
            self._close_io()
            while not all(Path(p).exists() for p in (self.at_path, self.audio_path)):
                if time.monotonic() >= deadline:
                    raise LineError(f"the modem did not re-enumerate within {self.options.reset_timeout_s:g} s")
                time.sleep(0.2)
            if not self._reopen(max(0.0, deadline - time.monotonic())):
                raise LineError(f"the modem came back but did not answer within {self.options.reset_timeout_s:g} s")
        finally:
            with self._lock:
                self._resetting = False

    def _wait_vanished(self, deadline: float) -> None:
        """The reset is under way once the AT reader sees the port die or the path disappears."""
        while time.monotonic() < deadline:
            at = self._at
            if at is None or not at.alive or not Path(self.at_path).exists():
                return
            time.sleep(0.05)
