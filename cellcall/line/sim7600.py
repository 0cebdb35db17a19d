"""Sim7600Line: the `Line` protocol over a SIM7600G-H's AT port and raw PCM port.

Threads, each with one job so the audio never waits on call control (pySerial `threaded` style):
- at-reader (in ATChannel): responses and URCs. URC handlers (`CallTracker`) only record call state
  and queue events: line events for the call (`_events`) and slow steps for the control thread
  (`_tasks`); they never send a command, stop audio or join a thread.
- line-control: the only thread that sends the slow call-control commands (CPCMREG dance, dialling
  watch) and the only one that starts and stops a call's audio (`CallAudio.begin_call`/`end_call`);
  other threads post those steps to it, so they run in order. Teardown stops it first, then owns
  the audio path.
- audio-reader and uplink-writer: owned by `CallAudio` (call_audio.py, which says who owns what).
- the caller's thread: the public methods (dial, answer, hangup, DTMF, SMS, status, recover).

Call state lives in `CallTracker` (call_state.py; changed only under its lock). `_lock` here guards
the lifecycle flags (`_closed`, `_failed`, `_resetting`); `_io_lock` the open/close of the ports.

Facts obeyed (reference/modem.md): CPCMREG=0 before every call, =1 only after VOICE CALL: BEGIN
plus a short wait, verified with AT+CPCMREG? and retried; sample rate measured from the downlink;
a vanished port is a line error within a second; recovery re-opens BOTH ports.
"""

from __future__ import annotations

import logging
import queue
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import TypeVar

import serial

from cellcall.line import LineError, LineEvent, LineEventKind, LineStatus
from cellcall.line.at import ATChannel, ATResponse, ATTimeout, parse_fields
from cellcall.line.call_audio import CallAudio
from cellcall.line.call_state import CallState, CallTracker
from cellcall.line.modem_options import ModemOptions, modem_options
from cellcall.line.modem_status import read_status
from cellcall.line.pacing import PacedWriter
from cellcall.line.pcm_route import enable_pcm
from cellcall.line.threads import stop_thread

__all__ = ["CallState", "ModemOptions", "Sim7600Line", "modem_options"]

log = logging.getLogger(__name__)
T = TypeVar("T")

_NUMBER = re.compile(r"\+?[0-9]{2,20}")
_DTMF = re.compile(r"[0-9*#A-D]+")
_SMS_TEXT = re.compile(r"[\x20-\x7e\n]{1,160}")
SMS_MAX = 160


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
        self._on_close = on_close
        self._lock = threading.RLock()  # guards the lifecycle flags below
        self._events: queue.Queue[LineEvent] = queue.Queue()
        self._tasks: queue.Queue[Callable[[], None]] = queue.Queue()  # steps for the control thread
        self._calls = CallTracker(
            self._events.put,
            on_begin=lambda call_id: self._tasks.put(lambda: self._route_audio(call_id)),
            on_over=lambda: self._tasks.put(self._audio.end_call),
        )
        self._io_lock = threading.Lock()
        self._io_open = False
        self._failed = False
        self._resetting = False
        self._closed = False
        self._at: ATChannel | None = None
        self._at_serial: serial.Serial | None = None
        self._audio_serial: serial.Serial | None = None
        self._control: threading.Thread | None = None
        self._stop = threading.Event()
        self._audio = CallAudio(
            rate_window_s=self.options.rate_window_s,
            frame_queue=self.options.frame_queue,
            lead_ms=self.options.lead_ms,
            on_tx_started=lambda tag: self._emit(LineEventKind.TX_STARTED, tag=tag),
            on_tx_idle=lambda: self._emit(LineEventKind.TX_IDLE),
            on_lost=self._fail,
        )

    @property
    def sample_rate(self) -> int:
        """8000 or 16000: measured from the downlink of the current (or last) call."""
        return self._audio.sample_rate

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
        if self._calls.state is not CallState.IDLE and self._io_open and not self._failed:
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
            self._at_serial, self._audio_serial = at_serial, audio
            self._at = ATChannel(at_serial, self._calls.on_urc, self._on_port_error).start()
            self._audio.attach(audio)
            self._control = threading.Thread(target=self._run_tasks, args=(self._stop,), name="line-control", daemon=True)
            self._control.start()
            self._io_open = True

    def _close_io(self) -> None:
        """Stop every thread and close both ports; idempotent, safe from any thread but the readers.

        The control thread ends first: from then on this (teardown) thread owns the audio path.
        """
        with self._io_lock:
            if not self._io_open:
                return
            self._io_open = False
            self._stop.set()
        if self._at is not None:
            self._at.stop()
        if self._control is not None:
            stop_thread(self._control, self._stop)
        self._audio.detach()
        for port in (self._at_serial, self._audio_serial):
            try:
                if port is not None:
                    port.close()
            except (serial.SerialException, OSError):
                pass
        self._calls.set(CallState.IDLE)

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
        return read_status(self._cmd, ports)

    # ---- call control ----------------------------------------------------------------------

    def dial(self, number: str) -> None:
        if not isinstance(number, str) or not _NUMBER.fullmatch(number):
            raise LineError(f"not a dialable number: {number!r} (digits with an optional leading +)")
        state = self._calls.state
        if state is not CallState.IDLE:
            raise LineError(f"cannot dial: a call is already {state.value}")
        self._cmd("AT+CPCMREG=0")  # reset before each call, or later calls fail to route audio
        call_id = self._calls.begin(CallState.DIALING)
        response = self._cmd(f"ATD{number};")
        if not response.ok:
            self._calls.set(CallState.IDLE)
            outcome = {"BUSY": LineEventKind.BUSY, "NO ANSWER": LineEventKind.NO_ANSWER}.get(response.final)
            if outcome is None:
                raise LineError(f"the modem refused to dial: ATD -> {response.final}")
            self._emit(outcome, response.final)
            return
        self._tasks.put(lambda: self._watch_dialing(call_id))

    def answer(self) -> None:
        state = self._calls.state
        if state is not CallState.INCOMING:
            raise LineError(f"no incoming call to answer (line is {state.value})")
        self._cmd("AT+CPCMREG=0")
        self._calls.begin(CallState.INCOMING)
        response = self._cmd("ATA")
        if not response.ok:
            self._calls.set(CallState.IDLE)
            raise LineError(f"could not answer: ATA -> {response.final} (the caller may have hung up)")

    def hangup(self) -> None:
        if not self._calls.hang_up_by_host():
            return
        self._to_control(self._audio.end_call)
        try:
            if not self._cmd("AT+CHUP").ok:
                self._cmd("ATH")  # honoured because init set AT+CVHU=0
        finally:
            self._calls.set(CallState.IDLE)

    def send_dtmf(self, digits: str) -> None:
        """Play DTMF digits to the far end (AT+VTS, one per digit) during a call."""
        if not isinstance(digits, str) or not _DTMF.fullmatch(digits):
            raise LineError(f"not DTMF digits: {digits!r} (0-9, *, #, A-D)")
        if self._calls.state is not CallState.ACTIVE:
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

    def _current(self, call_id: int) -> bool:
        return self._calls.is_current(call_id) and not self._stop.is_set()

    def _watch_dialing(self, call_id: int) -> None:
        """Poll AT+CLCC while dialling (RINGING when alerting); hang up after answer_timeout_s."""
        deadline = time.monotonic() + self.options.answer_timeout_s
        while True:
            with self._calls.lock:
                if not self._current(call_id) or self._calls.state not in (CallState.DIALING, CallState.ALERTING):
                    return
            if time.monotonic() >= deadline:
                self.hangup()
                self._emit(LineEventKind.NO_ANSWER, f"no answer within {self.options.answer_timeout_s:g} s")
                return
            try:
                for fields in self._cmd("AT+CLCC").values("+CLCC:"):
                    self._calls.on_clcc(parse_fields(fields))
            except ATTimeout:
                pass
            with self._calls.lock:
                self._calls.changed.wait(0.5)

    def _route_audio(self, call_id: int) -> None:
        """The CPCMREG dance after BEGIN; ANSWERED once PCM flows, else ERROR and hang up."""
        if self._stop.wait(self.options.route_delay_s) or not self._current(call_id):
            return
        self._audio.begin_call()  # capture from the very first downlink byte the routing brings
        if not self._enable_pcm(call_id):
            reason = f"audio not routed: AT+CPCMREG=1 did not take after {self.options.route_attempts} attempts"
        else:
            flowing = self._audio.wait_rate(self.options.downlink_timeout_s) or self._reroute(call_id)
            if flowing and self._current(call_id):
                self._emit(LineEventKind.ANSWERED, f"audio routed at {self.sample_rate} Hz")
                return
            reason = f"audio routed but no downlink PCM within {self.options.downlink_timeout_s:g} s"
        if not self._current(call_id):
            self._audio.end_call()  # the call ended while audio was being routed
            return
        self._emit(LineEventKind.ERROR, reason)
        self.hangup()

    def _enable_pcm(self, call_id: int) -> bool:
        return enable_pcm(self._cmd, self.options.route_attempts, lambda: self._current(call_id), self._stop)

    def _reroute(self, call_id: int) -> bool:
        """Recovery ladder step (control thread): CPCMREG 0 then 1 when routed audio does not flow."""
        log.warning("no downlink audio: re-routing PCM (CPCMREG 0 -> 1)")
        self._cmd("AT+CPCMREG=0")
        self._audio.begin_call()
        return self._enable_pcm(call_id) and self._audio.wait_rate(self.options.downlink_timeout_s)

    def _on_port_error(self, exc: Exception) -> None:
        self._fail(f"modem port vanished: {exc}")

    def _fail(self, reason: str) -> None:
        """A port died: one ERROR event, then tear everything down (unless a reset expects it)."""
        with self._lock:
            if self._failed or self._resetting or not self._io_open:
                return
            self._failed = True
            self._calls.set(CallState.IDLE)
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

    def _to_control(self, step: Callable[[], T]) -> Future[T]:
        """Run `step` on the control thread, which owns the call's audio, and return its future.

        On the control thread itself it runs at once; otherwise it queues behind the step in
        progress, so a call's audio starts and stops in the order its call-control steps ran.
        """
        result: Future[T] = Future()

        def run() -> None:
            try:
                result.set_result(step())
            except BaseException as exc:  # noqa: BLE001 - handed to whoever waits on the future
                result.set_exception(exc)

        if threading.current_thread() is self._control:
            run()
        else:
            self._tasks.put(run)
        return result

    def _wait_control(self, result: Future[T]) -> T:
        """The control step's result; LineError when the line closes before the step ran."""
        while True:
            try:
                return result.result(timeout=0.1)
            except TimeoutError:
                if self._stop.is_set():
                    raise LineError("the line closed before the control thread ran the step") from None

    # ---- audio (CallAudio owns it) ----------------------------------------------------------

    def read_frame(self, timeout: float) -> bytes | None:
        return self._audio.read_frame(timeout)

    def write(self, pcm: bytes, tag: object | None = None) -> None:
        self._audio.write(pcm, tag)

    def clear_tx(self) -> None:
        """Barge-in: drop the host queue and what the port's output buffer still holds."""
        if self._io_open:
            self._audio.clear_tx()

    def tx_queued_ms(self) -> float:
        return self._audio.tx_queued_ms()

    @property
    def uplink(self) -> PacedWriter | None:
        """The running uplink writer (bytes sent, underruns, max gap), for diagnostics and benchmarks."""
        return self._audio.uplink

    @property
    def frames_dropped(self) -> int:
        """Downlink frames dropped because nobody read them for `frame_queue` frames."""
        return self._audio.frames_dropped

    @property
    def downlink_bytes(self) -> int:
        return self._audio.downlink_bytes

    # ---- recovery --------------------------------------------------------------------------

    def recover(self) -> str:
        """Walk the recovery ladder; returns the step that worked: reopened, rerouted, reset, healthy."""
        if not self._healthy():
            if self._reopen(self.options.reopen_timeout_s):
                return "reopened"
        elif self._calls.state is CallState.ACTIVE:
            call_id = self._calls.call_id
            if self._wait_control(self._to_control(lambda: self._reroute(call_id))):
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
