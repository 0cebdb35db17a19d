"""SipLine: the `Line` protocol over a SIP account (a provider, Asterisk, FreeSWITCH, kamailio).

Thread ownership:
- the caller's thread (the call or watch loop) only calls Line methods; they hand work to the
  stack thread and read the event / frame queues;
- `sip-stack` (stack.py) owns baresip's Runtime, UserAgent and Call objects and `_call`, `_state`,
  `_registered`: every baresip callback runs there and turns into a LineEvent on `_events`;
- `sip-media` (media.py), one per established call, owns that call's audio stream.

Outcomes follow SIP: 486/600 busy; 408/480 or no final answer within `answer_timeout_s`
(CANCEL sent) no answer; any other 4xx-6xx an ERROR whose detail is "SIP <code> <reason>";
a BYE from the far end, or no downlink audio for `media_timeout_s`, a remote hang-up. A
registration lost while idle is an ERROR, so `cellcall watch` closes the line and re-opens it
with its backoff (and says so in `cellcall status`). The password never reaches a log or an
error: baresip's Account redacts itself, and registration errors carry only the SIP status.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import queue
import re
from collections.abc import Callable, Coroutine
from typing import Any

import baresip
from baresip.call import Call
from baresip.runtime import Runtime
from baresip.ua import UserAgent

from cellcall.line import LineError, LineEvent, LineEventKind, LineStatus
from cellcall.line.framing import DownlinkQueue
from cellcall.line.pacing import UplinkQueue
from cellcall.line.sip.media import MediaPump
from cellcall.line.sip.options import SipOptions, network_text, peer_number
from cellcall.line.sip.stack import StackThread

log = logging.getLogger(__name__)

_NUMBER = re.compile(r"\+?[0-9]{2,20}")
_DTMF = re.compile(r"[0-9*#A-D]+")
BUSY_CODES = (486, 600)
NO_ANSWER_CODES = (408, 480)
REGISTER_TIMEOUT_S = 10.0
COMMAND_TIMEOUT_S = 5.0
FRAME_QUEUE = 100  # downlink frames held (2 s); the oldest is dropped beyond


class SipState(str, enum.Enum):
    IDLE = "idle"
    DIALING = "dialing"
    INCOMING = "incoming"
    ACTIVE = "active"


class SipLine:
    """A registered (or trunk-style) SIP user agent behind the Line protocol."""

    def __init__(self, options: SipOptions) -> None:
        self.options = options
        self.sample_rate = 8000
        self._events: queue.Queue[LineEvent] = queue.Queue()
        self._downlink = DownlinkQueue(FRAME_QUEUE)
        self._txq = UplinkQueue(self.sample_rate)
        self._stack: StackThread | None = None
        self._runtime: Runtime | None = None
        self._ua: UserAgent | None = None
        self._call: Call | None = None
        self._state = SipState.IDLE
        self._host_hangup = False
        self._registered: bool | None = None
        self._registration_detail = ""
        self._lost_pending = False
        self._pump: MediaPump | None = None
        self._codec = ""

    # ---- lifecycle ---------------------------------------------------------------------------

    def open(self) -> None:
        if self._stack is not None:
            return
        self._stack = StackThread()
        try:
            self._stack.run(self._start(), REGISTER_TIMEOUT_S + COMMAND_TIMEOUT_S)
        except LineError:
            self._shutdown()
            raise

    async def _start(self) -> None:
        opts = self.options
        extra = f"rtp_ports {opts.rtp_ports[0]}-{opts.rtp_ports[1]}\n"
        if opts.listen:
            extra += f"sip_listen {opts.listen}\n"
        config = baresip.Config(net_interface=opts.listen_host, max_concurrent_calls=1, extra_config_text=extra)
        runtime = Runtime()
        try:
            await runtime.start(config)
        except baresip.BaresipError as exc:
            raise LineError(f"the SIP stack did not start: {exc}") from None
        self._runtime = runtime
        account = baresip.Account(
            user=opts.username,
            domain=opts.domain,
            password=opts.password,
            registrar=opts.proxy or None,
            reg_interval=opts.register_interval_s if opts.register else 0,
            transport=opts.transport,  # type: ignore[arg-type]  # validated in sip_options
            audio_codecs=opts.stack_codecs(),
        )
        try:
            self._ua = await UserAgent.create(runtime, account)
        except baresip.BaresipError as exc:
            raise LineError(f"the SIP account was refused by the stack: {exc}") from None
        self._ua.on(self._on_ua_event)
        self._ua.on_incoming(self._on_incoming)
        if opts.register:
            await self._register()

    async def _register(self) -> None:
        assert self._ua is not None
        try:
            await self._ua.register(timeout=REGISTER_TIMEOUT_S)
        except baresip.RegistrationError as exc:
            self._registered = False
            raise LineError(_registration_problem(exc, self.options)) from None
        self._registered = True
        self._registration_detail = ""

    def close(self) -> None:
        if self._stack is None:
            return
        if self._state is not SipState.IDLE:
            try:
                self.hangup()
            except LineError as exc:
                log.warning("hang-up during close failed: %s", exc)
        self._shutdown()

    def _shutdown(self) -> None:
        self._stop_media()
        stack, self._stack = self._stack, None
        if stack is not None:
            stack.stop(self._release)
        self._state = SipState.IDLE

    async def _release(self) -> None:
        ua, runtime = self._ua, self._runtime
        self._ua = self._runtime = None
        if ua is not None and self._registered:
            try:
                await ua.unregister(timeout=2.0)
            except baresip.BaresipError as exc:
                log.info("SIP unregister on close: %s", exc)
        if runtime is not None:
            await runtime.close()

    def __enter__(self) -> SipLine:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def status(self) -> LineStatus:
        opts = self.options
        ports = {"sip": f"sip:{opts.username}@{opts.domain};transport={opts.transport}", "codecs": ",".join(opts.codecs)}
        if opts.proxy:
            ports["proxy"] = opts.proxy
        if self._codec:
            ports["call codec"] = self._codec
        model = f"SIP (baresip-python {baresip.__version__})"
        if self._stack is None:
            return LineStatus(
                ready=False, registered=self._registered, operator=opts.domain, model=model, ports=ports, detail="line not open"
            )
        registered = self._registered if opts.register else None
        ready = registered is not False
        detail = "" if ready else f"not registered: {self._registration_detail or 'registration lost'}"
        return LineStatus(
            ready=ready,
            registered=registered,
            operator=opts.domain,
            model=model,
            ports=ports,
            detail=detail,
        )

    # ---- call control (caller's thread) -------------------------------------------------------

    def dial(self, number: str) -> None:
        if not isinstance(number, str) or not _NUMBER.fullmatch(number):
            raise LineError(f"not a dialable number: {number!r} (digits with an optional leading +)")
        self._stack_run(self._dial(number))

    async def _dial(self, number: str) -> None:
        if self._state is not SipState.IDLE:
            raise LineError(f"cannot dial: a call is already {self._state.value}")
        assert self._ua is not None
        try:
            call = await self._ua.dial(self.options.uri_for(number))
        except (baresip.BaresipError, ValueError) as exc:
            raise LineError(f"the SIP stack refused to dial: {exc}") from None
        self._adopt(call, SipState.DIALING)
        asyncio.get_running_loop().create_task(self._await_outcome(call))

    async def _await_outcome(self, call: Call) -> None:
        try:
            await call.wait_established(timeout=self.options.answer_timeout_s)
        except baresip.CallTimeout:  # wait_established sent the CANCEL
            self._finish(call, LineEventKind.NO_ANSWER, f"no answer within {self.options.answer_timeout_s:g} s")
        except baresip.CallFailed as exc:
            kind, detail = _failure_outcome(exc)
            self._finish(call, kind, detail)

    def answer(self) -> None:
        self._stack_run(self._answer())

    async def _answer(self) -> None:
        call = self._call
        if self._state is not SipState.INCOMING or call is None:
            raise LineError(f"no incoming call to answer (line is {self._state.value})")
        try:
            await call.answer()
        except baresip.BaresipError as exc:
            raise LineError(f"could not answer: {exc} (the caller may have hung up)") from None

    def hangup(self) -> None:
        if self._state is SipState.IDLE or self._stack is None:
            return
        self._host_hangup = True
        self._stop_media()
        self._stack_run(self._hangup())

    async def _hangup(self) -> None:
        call, self._call = self._call, None
        self._state = SipState.IDLE
        if call is not None:
            try:
                await call.hangup()
            except baresip.StaleHandleError:
                pass  # already gone
        self._report_lost_registration()

    def send_dtmf(self, digits: str) -> None:
        """RFC 4733 telephone-events to the far end during an answered call."""
        if not isinstance(digits, str) or not _DTMF.fullmatch(digits):
            raise LineError(f"not DTMF digits: {digits!r} (0-9, *, #, A-D)")
        if self._state is not SipState.ACTIVE or self._call is None:
            raise LineError("DTMF needs an answered call")
        call = self._call
        self._stack_run(call.send_dtmf(digits), timeout=COMMAND_TIMEOUT_S + 0.3 * len(digits))

    def _stack_run(self, coro: Coroutine[Any, Any, object], timeout: float = COMMAND_TIMEOUT_S) -> None:
        if self._stack is None:
            coro.close()
            raise LineError("the line is not open")
        try:
            self._stack.run(coro, timeout)
        except baresip.BaresipError as exc:
            raise LineError(f"SIP: {exc}") from None

    # ---- stack callbacks (sip-stack thread) -----------------------------------------------------

    def _adopt(self, call: Call, state: SipState) -> None:
        self._call, self._state, self._host_hangup, self._codec = call, state, False, ""
        call.on(lambda event: self._on_call_event(call, event))
        call.on_dtmf(lambda digit: self._emit(LineEventKind.DTMF, digit.digit))

    def _on_incoming(self, call: Call) -> None:
        if self._state is not SipState.IDLE:
            self._spawn(call.reject())  # one call at a time, as on the modem
            return
        self._adopt(call, SipState.INCOMING)
        asyncio.get_running_loop().create_task(self._ring(call, peer_number(call.peer)))

    async def _ring(self, call: Call, number: str | None) -> None:
        """One INCOMING per ring interval while the INVITE waits, as the modem's RING repeats."""
        while self._call is call and self._state is SipState.INCOMING:
            self._emit(LineEventKind.INCOMING, "INVITE", number=number)
            await asyncio.sleep(self.options.ring_interval_s)

    def _on_call_event(self, call: Call, event: baresip.StackEvent) -> None:
        if call is not self._call:
            return
        kind = event.event
        if kind is baresip.Event.CALL_RINGING and self._state is SipState.DIALING:
            self._emit(LineEventKind.RINGING, "180 Ringing")
        elif kind is baresip.Event.CALL_ESTABLISHED:
            self._state = SipState.ACTIVE
            self._spawn(self._start_media(call))
        elif kind is baresip.Event.CALL_CLOSED:
            reason = network_text(event.text) or "call ended"
            if self._state is SipState.INCOMING:
                self._finish(call, LineEventKind.MISSED, f"caller gave up: {reason}", peer_number(call.peer))
            elif self._state is SipState.ACTIVE:
                self._finish(call, LineEventKind.REMOTE_HANGUP, f"the far end hung up ({reason})")
            # DIALING: _await_outcome reports the final answer

    def _finish(self, call: Call, kind: LineEventKind, detail: str, number: str | None = None) -> None:
        """The call is over: clear it, stop media, and report `kind` unless the host hung up."""
        if call is not self._call:
            return
        self._call, self._state = None, SipState.IDLE
        self._stop_media()
        if not self._host_hangup:
            self._emit(kind, detail, number=number)
        self._report_lost_registration()

    async def _start_media(self, call: Call) -> None:
        """Wait for the negotiated streams, take their rate, start the pump, then report ANSWERED."""
        for _ in range(100):
            try:
                info = call.audio.info()
                if info.rx_ready and info.tx_ready:
                    break
            except baresip.AudioNotActive:
                pass
            await asyncio.sleep(0.02)
        else:
            self._emit(LineEventKind.ERROR, "SIP call answered but no audio stream within 2 s")
            await self._hangup()
            return
        if call is not self._call:
            return
        self.sample_rate = info.rx_sample_rate if info.rx_sample_rate in (8000, 16000) else 8000
        self._codec = f"{info.rx_sample_rate} Hz"
        self._txq.set_sample_rate(self.sample_rate)
        self._downlink.clear()
        self._pump = MediaPump(
            call.audio,
            self.sample_rate,
            self._txq,
            self._push_frame,
            self._on_tx,
            lambda why: self._stack_call(lambda: self._media_died(call, why)),
            self.options.media_timeout_s,
        ).start()
        self._emit(LineEventKind.ANSWERED, "200 OK")

    def _media_died(self, call: Call, why: str) -> None:
        if call is not self._call:
            return
        self._finish(call, LineEventKind.REMOTE_HANGUP, why)
        self._spawn(call.hangup())

    def _on_ua_event(self, event: baresip.StackEvent) -> None:
        if event.event is baresip.Event.REGISTER_OK:  # also the stack's own retry succeeding after a loss
            self._registered, self._registration_detail, self._lost_pending = True, "", False
        elif event.event is baresip.Event.REGISTER_FAIL and self._registered:
            self._registered = False
            self._registration_detail = network_text(event.text) or "no reason given"
            self._lost_pending = True
            if self._state is SipState.IDLE:
                self._report_lost_registration()

    def _report_lost_registration(self) -> None:
        """A lost registration is reported once the line is idle: a call in progress goes on."""
        if self._lost_pending and self._state is SipState.IDLE:
            self._lost_pending = False
            self._emit(LineEventKind.ERROR, f"SIP registration lost: {self._registration_detail}")

    def _spawn(self, coro: Coroutine[Any, Any, object]) -> None:
        if self._stack is not None:
            self._stack.spawn(coro)
        else:
            coro.close()

    def _stack_call(self, fn: Callable[[], object]) -> None:
        if self._stack is not None:
            self._stack.call_soon(fn)

    # ---- events and audio (any thread) ----------------------------------------------------------

    def _emit(self, kind: LineEventKind, detail: str = "", number: str | None = None, tag: object | None = None) -> None:
        self._events.put(LineEvent(kind, detail=detail, number=number, tag=tag))

    def next_event(self, timeout: float) -> LineEvent | None:
        try:
            return self._events.get(timeout=timeout)
        except queue.Empty:
            return None

    def _on_tx(self, tags: list[object], went_idle: bool) -> None:
        for tag in tags:
            self._emit(LineEventKind.TX_STARTED, tag=tag)
        if went_idle:
            self._emit(LineEventKind.TX_IDLE)

    def _push_frame(self, frame: bytes) -> None:
        self._downlink.push(frame)

    @property
    def frames_dropped(self) -> int:
        return self._downlink.dropped

    def read_frame(self, timeout: float) -> bytes | None:
        return self._downlink.read(timeout)

    def write(self, pcm: bytes, tag: object | None = None) -> None:
        self._txq.put(pcm, tag)

    def clear_tx(self) -> None:
        self._txq.clear()
        pump = self._pump
        if pump is not None:
            pump.flush()

    def tx_queued_ms(self) -> float:
        pump = self._pump
        lead = pump.pending_ms if pump is not None else 0.0
        return self._txq.queued_bytes * 1000 / (self.sample_rate * 2) + lead

    @property
    def media(self) -> MediaPump | None:
        """The running call's media pump (uplink send times), for benchmarks."""
        return self._pump

    def _stop_media(self) -> None:
        pump, self._pump = self._pump, None
        if pump is not None:
            pump.stop()
        self._txq.clear()


def _failure_outcome(exc: baresip.CallFailed) -> tuple[LineEventKind, str]:
    """A final non-2xx answer -> the Line outcome, with the SIP code and reason for the report."""
    status, reason = exc.status, network_text(exc.reason or str(exc))
    if status in BUSY_CODES:
        return LineEventKind.BUSY, f"SIP {status} {reason}"
    if status in NO_ANSWER_CODES:
        return LineEventKind.NO_ANSWER, f"SIP {status} {reason}"
    if status is None:
        return LineEventKind.ERROR, f"SIP call failed: {reason}"
    return LineEventKind.ERROR, f"SIP {status} {reason}"


def _registration_problem(exc: baresip.RegistrationError, options: SipOptions) -> str:
    """A clear, secret-free reason for a failed REGISTER."""
    status = getattr(exc, "status", None)
    where = f"sip:{options.username}@{options.domain}"
    if status in (401, 403, 407):
        return (
            f"SIP registration of {where} refused ({status}): check line.sip.username and line.sip.password "
            "(or CELLCALL_SIP_PASSWORD)"
        )
    return f"SIP registration of {where} failed: {exc}"
