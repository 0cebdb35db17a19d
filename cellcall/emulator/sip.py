"""The emulator's far ends over a real SIP call on loopback: `bench calls --line sip`, `eval --line sip`.

The agent gets a real SipLine that dials the far end's user agent directly at its loopback URI
(no registrar: baresip sends the INVITE straight to `sip:<number>@127.0.0.1:<port>`). That user
agent runs in its own process (sip_peer.py; baresip allows one Runtime per process) and only
relays the call; the far end itself is the emulator's own `FarEnd` (or a listening one), driven by
the emulator's own `AudioPump` at exactly the route's sample rate, so scenario timing and the
voice-to-voice figures are measured on the far end's clock as on the emulated modem.

Threads: `sip-peer-rx` reads the socket to the peer process and owns the call's far end, its state
(`_farend`, `_pump`) and `done`; `sip-peer-audio` runs the pump (run_audio_clock) and is the only
reader of `RelayPort`'s uplink; far-end script threads only send commands (and set `_hung_up`
once, before the hang-up is sent). Every send on the socket goes through `RelayPort._send_lock`.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from cellcall.config import Settings
from cellcall.emulator.farend import FarEnd, FarEndFactory, FarEndMetrics
from cellcall.emulator.line import far_end_render
from cellcall.emulator.pump import AudioPump, run_audio_clock
from cellcall.emulator.scenario import Scenario, ScenarioError, load_scenario
from cellcall.emulator.sip_peer import HEADER, frame
from cellcall.line import LineError

if TYPE_CHECKING:
    from cellcall.engines.cache import Engines
    from cellcall.line.sip import SipLine

log = logging.getLogger(__name__)

READY_TIMEOUT_S = 15.0
JITTER_MS = 60  # the far end's playout margin for the agent's RTP, from its first packet (a phone's jitter buffer)
MODES = {"answer": "answer", "busy": "reject", "no-answer": "ring"}


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RelayPort:
    """The far end's side of the call as the pump sees a modem port: read = the agent's audio, write = ours."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._send_lock = threading.Lock()
        self._up = bytearray()
        self._up_lock = threading.Lock()
        self._lead = 0  # silence put before the first packet after a restart (under _up_lock)
        self.present = True

    def received(self, pcm: bytes) -> None:
        with self._up_lock:
            if self._lead:  # the jitter buffer fills from the first packet, not from the answer: media
                self._up += bytes(self._lead)  # starts a little after it, and a buffer primed at the
                self._lead = 0  # answer would be spent before any audio came, leaving no margin
            self._up += pcm

    def restart(self, lead_bytes: int) -> None:
        """A new route: drop what came before it; the next packet gets `lead_bytes` of playout margin."""
        with self._up_lock:
            self._up = bytearray()
            self._lead = lead_bytes

    def read(self, limit: int) -> bytes:
        with self._up_lock:
            data = bytes(self._up[: max(limit, 0)])
            del self._up[: len(data)]
        return data

    def write(self, data: bytes) -> int:
        self.send(b"A", data)
        return len(data)

    def send(self, kind: bytes, payload: bytes) -> None:
        with self._send_lock:
            try:
                self._sock.sendall(frame(kind, payload))
            except OSError:
                self.present = False


class SipFarEndPeer:
    """The scenario's far end behind a second SIP user agent; the ModemEmulator's `metrics` and `done`."""

    def __init__(self, scenario: Scenario, engines: Engines | None = None, farend: FarEndFactory = FarEnd) -> None:
        self.scenario = scenario
        self.farend = farend
        self.render = far_end_render(engines) if engines is not None else None
        self.metrics = FarEndMetrics(scenario=scenario.name)
        self.done = threading.Event()
        self.port_number = free_udp_port()
        self._farend: FarEnd | None = None
        self._pump: AudioPump | None = None
        self._hung_up = False
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._proc: subprocess.Popen[bytes] | None = None
        self._sock, child = socket.socketpair()
        self._relay = RelayPort(self._sock)
        self._child = child

    @property
    def pid(self) -> int | None:
        """The far end's process id (tests check it is gone after the call)."""
        return self._proc.pid if self._proc is not None else None

    def uri_domain(self) -> str:
        return f"127.0.0.1:{self.port_number}"

    def start(self) -> SipFarEndPeer:
        command = [
            sys.executable,
            "-m",
            "cellcall.emulator.sip_peer",
            "--fd",
            str(self._child.fileno()),
            "--listen",
            str(self.port_number),
            "--rtp",
            str(free_udp_port() & ~1),
            "--mode",
            MODES[self.scenario.outcome],
            "--answer-after",
            str(self.scenario.answer_delay_s),
        ]
        self._proc = subprocess.Popen(command, pass_fds=(self._child.fileno(),), stdin=subprocess.DEVNULL)
        self._child.close()
        threading.Thread(target=self._read_loop, name="sip-peer-rx", daemon=True).start()
        threading.Thread(target=self._audio_loop, name="sip-peer-audio", daemon=True).start()
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not self._ready.wait(0.1):
            code = self._proc.poll()
            if code is not None or time.monotonic() > deadline:
                self.stop()
                why = f"exited with status {code}" if code is not None else f"did not start within {READY_TIMEOUT_S:g} s"
                raise LineError(f"the SIP far end {why}")
        return self

    def stop(self) -> None:
        """End the peer process (closing its socket ends it; by its PID if it lingers) and the threads."""
        self._stop.set()
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        proc = self._proc
        if proc is not None and proc.poll() is None:
            try:
                proc.wait(5.0)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5.0)
        self._sock.close()
        if self._farend is not None:
            self._farend.ended("stopped")
        self.done.set()

    # ---- the peer's events (sip-peer-rx) -------------------------------------------------------

    def _read_loop(self) -> None:
        reader = self._sock.makefile("rb")
        try:
            while True:
                head = reader.read(HEADER.size)
                if len(head) < HEADER.size:
                    return
                kind, size = HEADER.unpack(head)
                payload = reader.read(size)
                if kind == b"A":
                    self._relay.received(payload)
                elif kind == b"E":
                    self._event(json.loads(payload))
        except (OSError, ValueError) as exc:
            if not self._stop.is_set():
                log.warning("SIP far end link failed: %s", exc)
        finally:
            self._relay.present = False
            self._ended("stopped" if self._stop.is_set() else "lost")

    def _event(self, event: dict[str, object]) -> None:
        name = event.get("event")
        if name == "ready":
            self._ready.set()
        elif name == "incoming" and self.scenario.outcome == "answer":
            self._farend = self.farend(self.scenario, self.render, hangup=self._hangup, press=self._press)
            self.metrics = self._farend.metrics
        elif name == "established" and self._farend is not None:
            rate = int(str(event.get("rate", 8000)))
            t0 = time.monotonic()
            self._relay.restart(rate * 2 * JITTER_MS // 1000)
            self._farend.answered()
            self._farend.route(t0, rate)
            self._pump = AudioPump(self._farend, rate, t0, None)
        elif name == "dtmf" and self._farend is not None:
            self._farend.heard_dtmf(str(event.get("digit", "")))
        elif name == "closed":  # busy and no-answer end at the far end's side, as the emulator's network does
            self._ended("far_end" if self._hung_up or self.scenario.outcome != "answer" else "host")

    def _ended(self, by: str) -> None:
        if self.done.is_set():
            return
        self._pump = None
        if self._farend is not None:
            self._farend.ended(by)
        else:
            self.metrics.ended_at, self.metrics.ended_by = time.monotonic(), by
        self.done.set()

    # ---- the far end's actions (its script thread) --------------------------------------------

    def _hangup(self) -> None:
        self._hung_up = True
        self._relay.send(b"C", json.dumps({"cmd": "hangup"}).encode())

    def _press(self, digit: str) -> None:
        self._relay.send(b"C", json.dumps({"cmd": "dtmf", "digit": digit}).encode())

    def _audio_loop(self) -> None:
        run_audio_clock(self._relay, self._stop, lambda: self._pump, self._drop_pump)

    def _drop_pump(self) -> None:
        self._pump = None


def loopback_settings(settings: Settings, peer: SipFarEndPeer) -> Settings:
    """The agent's `[line.sip]` for a trunk-style call straight to the peer: no registrar, no password."""
    own = copy.deepcopy(settings)
    own.line.kind = "sip"
    sip = own.sip
    sip.domain, sip.proxy, sip.username, sip.password = peer.uri_domain(), "", "cellcall", ""
    sip.register, sip.transport, sip.listen = False, "udp", f"127.0.0.1:{free_udp_port()}"
    base = free_udp_port() & ~1
    sip.rtp_ports = f"{base}-{base + 20}" if base + 20 <= 65535 else "40000-40020"
    return own


@contextlib.contextmanager
def sip_loopback_line(
    settings: Settings,
    scenario: str | Scenario | None = None,
    engines: Engines | None = None,
    farend: FarEndFactory = FarEnd,
) -> Iterator[tuple[SipLine, SipFarEndPeer]]:
    """A SipLine (opened) whose calls reach `scenario`'s far end over SIP on loopback; both stopped after."""
    from cellcall.line.sip import SipLine, sip_options

    try:
        loaded = scenario if isinstance(scenario, Scenario) else load_scenario(scenario or settings.line.scenario)
    except (ScenarioError, OSError) as exc:
        raise LineError(f"emulator scenario: {exc}") from exc
    peer = SipFarEndPeer(loaded, engines, farend).start()
    try:
        line = SipLine(sip_options(loopback_settings(settings, peer), env={}))
        line.open()
        try:
            yield line, peer
        finally:
            line.close()
    finally:
        peer.stop()
