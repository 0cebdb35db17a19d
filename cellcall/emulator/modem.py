"""A SIM7600G-H on two pseudo-terminals: the AT port and the raw PCM audio port (reference/modem.md).

It stands in for the modem in tests, benchmarks and the demo, so it copies the real one's texts,
quirks and pacing rather than being convenient: echo until ATE0, boot URCs, AT+CPCMREG that errors
when sent too early and whose acceptance is asynchronous, a downlink that flows in real time in
unaligned chunks, an uplink consumed at exactly real time with back-pressure, ports that vanish on
AT+CRESET. A driver that works here given only the two port paths should work on the hardware.
The far end (what the callee says and hears) is a `FarEnd` playing a `Scenario`.

Threads: modem-at reads the AT port and runs each command under `_lock`; timers and modem-ring move
calls on, also under `_lock`, which guards every call and setting field (`_call`, `_settings`,
`_pcmreg`, SMS). modem-audio alone runs the route's `AudioPump` (pump.py), which the AT side
publishes and drops by assignment to `_pump`. `_tx_lock` keeps each AT reply whole.
"""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from cellcall.emulator.at_settings import (
    IDENTITY,
    AtError,
    AtInput,
    ModemSettings,
    int_arg,
    parse_extended,
    split_commands,
)
from cellcall.emulator.farend import FarEnd, FarEndFactory, FarEndMetrics
from cellcall.emulator.faults import Faults
from cellcall.emulator.modem_call import ModemCall
from cellcall.emulator.ptyport import PtyPort
from cellcall.emulator.pump import AudioPump, run_audio_clock
from cellcall.emulator.scenario import Scenario
from cellcall.emulator.sounds import Render, default_render

__all__ = ["Faults", "ModemEmulator"]

log = logging.getLogger(__name__)

BOOT_URCS = ("RDY", "+CPIN: READY", "SMS DONE", "PB DONE")
BY_ID = "usb-SimTech__Incorporated_SimTech__Incorporated_0123456789ABCDEF-if0{}-port0"
PCMREG_MIN_AFTER_BEGIN_S = 0.1  # CPCMREG=1 sooner than this after BEGIN is refused
PCMREG_ACCEPT_S = 0.15  # asynchronous acceptance: AT+CPCMREG? reads 0 until then
AUDIO_START_S = 0.25  # downlink starts this long after acceptance
ALERTING_AFTER_S = 0.4
BOOT_URC_DELAY_S = 0.3


class ModemEmulator:
    """The SIM7600G-H: AT port + audio port on ptys, call control, and a scenario-driven far end."""

    def __init__(
        self,
        scenario: Scenario | None = None,
        faults: Faults | None = None,
        render: Render | None = None,
        farend: FarEndFactory = FarEnd,
    ) -> None:
        self.scenario = scenario or Scenario()
        self.farend = farend  # builds each answered call's far end (a scripted one unless told otherwise)
        self.faults = faults or Faults()
        self.render = render
        self._dir = Path(tempfile.mkdtemp(prefix="cellcall-modem-"))
        self._at = PtyPort(self._dir / BY_ID.format(2))
        self._audio = PtyPort(self._dir / BY_ID.format(4))
        self.at_port = str(self._at.link)
        self.audio_port = str(self._audio.link)
        self.at_log: list[tuple[float, str, str]] = []
        self.metrics = FarEndMetrics(scenario=self.scenario.name)
        self.done = threading.Event()
        self.vanished_at: float | None = None  # monotonic time the ports last vanished (timer thread writes)
        self.sms_sent: list[tuple[str, str]] = []  # (number, text) of every AT+CMGS
        self._lock = threading.RLock()
        self._tx_lock = threading.Lock()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._timers: list[threading.Timer] = []
        self._rx = AtInput()
        self._call: ModemCall | None = None
        self._pump: AudioPump | None = None
        self._sms_to: str | None = None
        self._sms_count = 0
        self._booted = False
        self._reset_settings()

    # ---- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        """Enumerate the ports and start the AT and audio threads (boot URCs follow the host's open).

        A scenario that speaks loads the default voice now, so a missing TTS fails here, clearly.
        """
        if self.render is None and any(s.say for s in self.scenario.sounds()):
            self.render = default_render()
        self._power_on()
        for target, name in ((self._at_loop, "modem-at"), (self._audio_loop, "modem-audio")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Remove the device and end every thread; safe to call twice."""
        self._stopping.set()
        for timer in self._timers:
            timer.cancel()
        with self._lock:
            self._end_call(by="stopped", urcs=())
        for thread in self._threads:
            thread.join(timeout=2)
        self._at.vanish()
        self._audio.vanish()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> ModemEmulator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- what a test or the far end does ----------------------------------------------------------

    def incoming_call(self, number: str, scenario: Scenario | None = None) -> None:
        """Someone calls the modem: RING / +CLIP cycles until ATA, or MISSED_CALL when nobody answers."""
        if not re.fullmatch(r"\+?[0-9*#]{1,20}", number):
            raise ValueError(f"not a phone number: {number!r}")
        with self._lock:
            if self._call is not None:
                raise RuntimeError("the emulated modem already has a call")
            call = self._new_call(number, True, scenario or self.scenario)
        threading.Thread(target=self._ring, args=(call,), name="modem-ring", daemon=True).start()

    # ---- ports and timers -----------------------------------------------------------------------

    def _power_on(self) -> None:
        self._at.appear()
        self._audio.appear()
        self._booted = False

    def _boot_urcs(self) -> None:
        """RDY and friends, sent once per power-on when the host first has the AT port open."""
        with self._lock:
            for text in BOOT_URCS:
                self._urc(text)

    def _power_cycle(self, lost_call: bool) -> None:
        """Ports vanish (USB re-enumeration); the modem comes back after `reenumerate_s` with boot URCs."""
        with self._lock:
            self.vanished_at = time.monotonic()
            self._at.vanish()  # first: whoever sees the call end must find the device already gone
            self._audio.vanish()
            if lost_call:
                self._end_call(by="lost", urcs=())
            self._rx.clear()
            self._reset_settings()
        self._later(self.faults.reenumerate_s, self._power_on)

    def _later(self, delay: float, action: Callable[..., None], *args: object) -> None:
        if self._stopping.is_set():
            return
        timer = threading.Timer(delay, self._guarded, (action, *args))
        timer.daemon = True
        self._timers = [t for t in self._timers if t.is_alive()] + [timer]
        timer.start()

    def _guarded(self, action: Callable[..., None], *args: object) -> None:
        if not self._stopping.is_set():
            action(*args)

    def _reset_settings(self) -> None:
        self._settings = ModemSettings()
        self._pcmreg = 0
        self._pcm_stale = False  # CPCMREG left at 1 from a previous call: audio will not route until =0
        self._sms_to = None

    # ---- AT port ------------------------------------------------------------------------------------

    def _at_loop(self) -> None:
        while not self._stopping.is_set():
            if not self._booted and self._at.host_attached():
                self._booted = True
                # After the host's open() has flushed its input, as a modem finishing its boot would.
                self._later(BOOT_URC_DELAY_S, self._boot_urcs)
            if not self._at.wait_readable(0.02):
                continue
            data = self._at.read(4096)
            if data:
                self._receive(data)
            else:
                time.sleep(0.01)

    def _receive(self, data: bytes) -> None:
        if self._settings.echo:
            self._at.write(data)
        self._rx.feed(data)
        while True:
            if self._sms_to is not None:
                sms = self._rx.take_sms()
                if sms is None:
                    return
                self._finish_sms(*sms)
                continue
            line = self._rx.take_line()
            if line is None:
                return
            if line:
                self._command(line)

    def _command(self, line: str) -> None:
        self.at_log.append((time.monotonic(), "rx", line))
        if not line.upper().startswith("AT"):
            return  # a real modem ignores lines that are not commands
        info: list[str] = []
        final = "OK"
        with self._lock:
            try:
                for part in split_commands(line[2:]):
                    info += self._execute(part)
            except AtError as exc:
                final = self._settings.error_text(exc.code)
            except Exception:  # an emulator bug must not kill the AT port: answer ERROR and say why in the log
                log.exception("emulated modem failed on %r", line)
                final = "ERROR"
            prompt = self._sms_to is not None
        if info:
            self._send("\r\n" + "\r\n".join(info) + "\r\n", info)
        if prompt:
            self._send("\r\n> ", ["> "])
            return
        if self.faults.slow_ok_s:
            time.sleep(self.faults.slow_ok_s)
        self._send(f"\r\n{final}\r\n", [final])

    def _execute(self, cmd: str) -> list[str]:
        """One command without its AT prefix; returns information lines or raises AtError."""
        upper = cmd.upper()
        if upper.startswith("D"):
            return self._dial(cmd[1:])
        basic = re.fullmatch(r"(E|I|H|A|Z|V|&F|&W|Q)(\d?)", upper)
        if upper == "":
            return []
        if basic:
            return self._basic(basic.group(1), basic.group(2))
        name, op, arg = parse_extended(cmd)
        handler = getattr(self, "_cmd_" + name[1:].lower(), None)
        if handler is not None:
            return handler(op, arg.strip())
        answer = self._settings.handle(name, op, arg)
        if answer is None:
            raise AtError(4)
        return answer

    def _basic(self, letter: str, digit: str) -> list[str]:
        if letter == "E":
            self._settings.echo = digit != "0"
        elif letter == "I":
            return list(IDENTITY)
        elif letter == "A":
            return self._answer()
        elif letter == "H":
            if self._settings.cvhu == 0 and self._call is not None:
                return self._host_hangup()
        elif letter in ("Z", "&F"):
            self._settings.echo = True
        return []

    def _cmd_clcc(self, op: str, arg: str) -> list[str]:
        if op == "":
            return [self._call.clcc_line()] if self._call is not None else []
        return self._settings.flag("clcc", "+CLCC", op, arg)

    # ---- call control ---------------------------------------------------------------------------

    def _dial(self, rest: str) -> list[str]:
        match = re.fullmatch(r"\s*(\+?[0-9*#]{1,20})\s*;", rest)
        if not match:
            raise AtError(4)  # no ';' is a data call, which this voice modem does not do
        if self._call is not None:
            raise AtError(3)
        scenario = self.scenario
        call = self._new_call(match.group(1), False, scenario)
        self._later(min(ALERTING_AFTER_S, scenario.answer_delay_s / 2), self._alerting, call)
        self._later(scenario.answer_delay_s, self._outcome, call)
        return []

    def _alerting(self, call: ModemCall) -> None:
        with self._lock:
            if self._call is call and call.state == 2:
                call.state = 3
                self._clcc_urc(call)

    def _outcome(self, call: ModemCall) -> None:
        with self._lock:
            if self._call is not call or call.state not in (2, 3):
                return
            if call.scenario.outcome == "busy":
                self._end_call(by="far_end", urcs=("BUSY",))
            elif call.scenario.outcome == "no-answer":
                self._end_call(by="far_end", urcs=("NO ANSWER",))
            else:
                self._urc("VOICE CALL: BEGIN")
                self._begin(call)

    def _answer(self) -> list[str]:
        call = self._call
        if call is None or call.state != 4:
            raise AtError("NO CARRIER")
        self._send("\r\nVOICE CALL: BEGIN\r\n", ["VOICE CALL: BEGIN"])
        self._begin(call)
        return []

    def _begin(self, call: ModemCall) -> None:
        call.state = 0
        call.began_at = time.monotonic()
        self._clcc_urc(call)
        if call.farend is not None:
            call.farend.answered()
        if self.faults.vanish_after_s is not None:
            self._later(self.faults.vanish_after_s, self._vanish_mid_call, call)

    def _vanish_mid_call(self, call: ModemCall) -> None:
        if self._call is call:
            self._power_cycle(lost_call=True)

    def _ring(self, call: ModemCall) -> None:
        for _ in range(call.scenario.ring_cycles):
            with self._lock:
                if self._call is not call or call.state != 4:
                    return
                self._urc("+CRING: VOICE" if self._settings.crc else "RING")
                if self._settings.clip:
                    self._urc(f'+CLIP: "{call.number}",145,,,"",0')
            if self._stopping.wait(call.scenario.ring_interval_s):
                return
        with self._lock:
            if self._call is call and call.state == 4:
                stamp = time.strftime("%I:%M%p")
                self._end_call(by="missed", urcs=(f"MISSED_CALL: {stamp} {call.number}",))

    def _cmd_chup(self, op: str, arg: str) -> list[str]:
        return self._host_hangup() if self._call is not None else []

    def _host_hangup(self) -> list[str]:
        call = self._call
        assert call is not None
        text = call.end_text(by_host=True, quirky=self.faults.end_without_duration)
        self._end_call(by="host", urcs=())
        return [text]

    def _remote_hangup(self, call: ModemCall) -> None:
        with self._lock:
            if self._call is not call:
                return
            text = call.end_text(by_host=False, quirky=self.faults.end_without_duration)
            self._end_call(by="far_end", urcs=(text, "NO CARRIER"))

    def _end_call(self, by: str, urcs: tuple[str, ...]) -> None:
        call = self._call
        if call is None:
            return
        self._call = None
        self._pump = None
        if self._pcmreg:
            self._pcm_stale = True
        if self._settings.clcc:
            self._urc(call.clcc_line(stat=6))
        for text in urcs:
            self._urc(text)
        if call.farend is not None:
            call.farend.ended(by)
        else:
            self.metrics.ended_at, self.metrics.ended_by = time.monotonic(), by
        self.done.set()

    def _new_call(self, number: str, incoming: bool, scenario: Scenario) -> ModemCall:
        """Make `number` the current call, with a far end that starts rendering its lines right away."""
        call = ModemCall(number, incoming, None, scenario, state=4 if incoming else 2)
        if scenario.outcome == "answer":
            call.farend = self.farend(
                scenario,
                self.render,
                hangup=lambda: self._remote_hangup(call),
                press=lambda digit: self._press(call, digit),
            )
            self.metrics = call.farend.metrics
        else:
            self.metrics = FarEndMetrics(scenario=scenario.name)
        self._call = call
        self.done.clear()
        self._clcc_urc(call)
        return call

    def _press(self, call: ModemCall, digit: str) -> None:
        with self._lock:
            if self._call is call and call.state == 0:
                self._urc(f"+RXDTMF: {digit}")

    def _cmd_vts(self, op: str, arg: str) -> list[str]:
        digits = arg.strip('"').upper()
        if op != "=" or not digits or not set(digits) <= set("0123456789*#ABCD"):
            raise AtError(4)
        call = self._call
        if call is None or call.state != 0:
            raise AtError(3)
        if call.farend is not None:
            call.farend.heard_dtmf(digits)
        return []

    def _clcc_urc(self, call: ModemCall) -> None:
        if self._settings.clcc:
            self._urc(call.clcc_line())

    # ---- audio routing --------------------------------------------------------------------------

    def _cmd_cpcmreg(self, op: str, arg: str) -> list[str]:
        if op == "?":
            return [f"+CPCMREG: {self._pcmreg}"]
        if op == "=?":
            return ["+CPCMREG: (0,1)"]
        if op != "=":
            raise AtError(4)
        value = int_arg(arg.split(",")[0], 0, 1)
        if value == 0:
            self._pcmreg = 0
            self._pcm_stale = False
            self._pump = None
            return []
        call = self._call
        if call is None or call.state != 0 or call.began_at is None:
            raise AtError(3)
        if time.monotonic() - call.began_at < PCMREG_MIN_AFTER_BEGIN_S:
            raise AtError(3)
        if self._pcm_stale or (self.faults.flaky_cpcmreg and not call.flaky_spent):
            call.flaky_spent = True
            return []  # OK, but nothing is routed and CPCMREG? stays as it was
        if self._pump is None:
            self._later(PCMREG_ACCEPT_S, self._route, call)
        return []

    def _route(self, call: ModemCall) -> None:
        with self._lock:
            if self._call is not call or self._pump is not None:
                return
            self._pcmreg = 1
            rate = 16000 if self._settings.cpcmfrm or self.faults.volte_16k else 8000
            t0 = time.monotonic() + AUDIO_START_S
            stall = self.faults.uplink_stall_after_s
            stall_at = None if stall is None or call.began_at is None else call.began_at + stall
            if call.farend is not None:
                call.farend.route(t0, rate)
            self._pump = AudioPump(call.farend, rate, t0, stall_at)

    def _audio_loop(self) -> None:
        run_audio_clock(self._audio, self._stopping, lambda: self._pump, self._drop_pump)

    def _drop_pump(self) -> None:
        self._pump = None

    # ---- SMS ------------------------------------------------------------------------------------

    def _cmd_cmgs(self, op: str, arg: str) -> list[str]:
        number = arg.strip().strip('"')
        if op != "=" or self._settings.cmgf != 1 or not re.fullmatch(r"\+?[0-9]{3,20}", number):
            raise AtError(4 if self._settings.cmgf == 1 else 3)
        self._sms_to = number
        return []

    def _finish_sms(self, text: str, send: bool) -> None:
        with self._lock:
            number, self._sms_to = self._sms_to, None
            if send and number is not None:
                self._sms_count += 1
                self.sms_sent.append((number, text))
                self._send(f"\r\n+CMGS: {self._sms_count}\r\n", [f"+CMGS: {self._sms_count}"])
        self._send("\r\nOK\r\n", ["OK"])

    def _cmd_creset(self, op: str, arg: str) -> list[str]:
        self._later(0.3, self._power_cycle, True)
        return []

    # ---- output ---------------------------------------------------------------------------------

    def _urc(self, text: str) -> None:
        eol = "\r\r\n" if self.faults.doubled_crlf else "\r\n"
        self._send(f"{eol}{text}{eol}", [text])

    def _send(self, raw: str, lines: list[str]) -> None:
        now = time.monotonic()
        with self._tx_lock:
            self.at_log.extend((now, "tx", line) for line in lines)
            self._at.write(raw.encode("ascii", "replace"))
