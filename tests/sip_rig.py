"""A loopback SIP rig for the SIP line tests: kamailio (registrar + proxy, digest auth) and a far end.

kamailio is the Debian package, started on 127.0.0.1 with a free port and a config written into a
temp dir (users and passwords are plain variables in that config); it is stopped by PID. The far
end is tests/sip_farend.py in its own process (baresip allows one Runtime per process): a second
user agent that answers, rejects or lets ring, plays a WAV, records what it hears, sends and
prints DTMF, and hangs up when told.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

KAMAILIO = shutil.which("kamailio") or "/usr/sbin/kamailio"
MODULES = "/usr/lib/x86_64-linux-gnu/kamailio/modules"
REALM = "cellcall.test"
USERS = {"alice": "alice-secret", "+14155550132": "bob-secret"}
FAREND = Path(__file__).with_name("sip_farend.py")


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def kamailio_config(port: int, users: dict[str, str]) -> str:
    passwords = "\n".join(f'    if ($fU == "{user}") $var(pw) = "{pw}";' for user, pw in users.items())
    return f"""#!KAMAILIO
debug=2
log_stderror=yes
children=1
listen=udp:127.0.0.1:{port}
mpath="{MODULES}"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
loadmodule "auth.so"
loadmodule "xlog.so"
modparam("registrar", "max_expires", 600)
modparam("registrar", "min_expires", 1)

route[PASSWORD] {{
    $var(pw) = "";
{passwords}
}}

request_route {{
    if (!mf_process_maxfwd_header("10")) {{ sl_send_reply("483", "Too Many Hops"); exit; }}
    if (is_method("CANCEL")) {{ if (t_check_trans()) t_relay(); exit; }}
    if (has_totag()) {{
        if (loose_route()) {{ t_relay(); exit; }}
        if (is_method("ACK")) {{ if (t_check_trans()) t_relay(); exit; }}
        sl_send_reply("404", "Not here"); exit;
    }}
    t_check_trans();
    route(PASSWORD);
    if (is_method("REGISTER")) {{
        xlog("L_INFO", "REGISTER from $fU\\n");
        $var(rc) = pv_www_authenticate("{REALM}", "$var(pw)", "0");
        if ($var(rc) == -2 || $var(rc) == -4) {{ sl_send_reply("403", "Forbidden"); exit; }}
        if ($var(rc) < 0) {{ www_challenge("{REALM}", "0"); exit; }}
        save("location");
        exit;
    }}
    if (is_method("INVITE")) {{
        $var(rc) = pv_proxy_authenticate("{REALM}", "$var(pw)", "0");
        if ($var(rc) == -2 || $var(rc) == -4) {{ sl_send_reply("403", "Forbidden"); exit; }}
        if ($var(rc) < 0) {{ proxy_challenge("{REALM}", "0"); exit; }}
        consume_credentials();
        record_route();
        if (!lookup("location")) {{ sl_send_reply("404", "Not Found"); exit; }}
        t_relay();
        exit;
    }}
    sl_send_reply("405", "Method Not Allowed");
}}
"""


@dataclass
class Kamailio:
    """kamailio on 127.0.0.1:`port`, its stderr in `log`; `stop()` kills it by PID."""

    workdir: Path
    port: int = field(default_factory=free_udp_port)
    users: dict[str, str] = field(default_factory=lambda: dict(USERS))
    proc: subprocess.Popen[bytes] | None = None

    @property
    def domain(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.workdir / "kamailio.log"

    def start(self) -> Kamailio:
        cfg = self.workdir / "kamailio.cfg"
        cfg.write_text(kamailio_config(self.port, self.users))
        check = subprocess.run([KAMAILIO, "-c", "-f", str(cfg)], capture_output=True, text=True, timeout=20)
        if check.returncode != 0:
            raise RuntimeError(f"kamailio config rejected:\n{check.stderr[-2000:]}")
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [KAMAILIO, "-DD", "-E", "-f", str(cfg), "-m", "32", "-M", "4", "-Y", str(self.workdir)],
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        deadline = time.monotonic() + 10
        while "REGISTER" not in self._probe():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"kamailio did not start:\n{self.log.read_text()[-2000:]}")
            time.sleep(0.1)
        return self

    def _probe(self) -> str:
        """An OPTIONS ping: kamailio answers 405 (naming no method) once it serves requests."""
        msg = (
            f"OPTIONS sip:{self.domain} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;rport;branch=z9hG4bK{time.time_ns()}\r\n"
            f"From: <sip:probe@{self.domain}>;tag=1\r\nTo: <sip:{self.domain}>\r\nCall-ID: {time.time_ns()}\r\n"
            "CSeq: 1 OPTIONS\r\nMax-Forwards: 5\r\nContent-Length: 0\r\n\r\n"
        )
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(0.3)
            sock.sendto(msg.encode(), ("127.0.0.1", self.port))
            try:
                return "REGISTER" if b"SIP/2.0 405" in sock.recv(4096) else ""
            except OSError:
                return ""

    def registers(self) -> int:
        """REGISTER requests kamailio has seen so far (from its log)."""
        return self.log.read_text(errors="replace").count("REGISTER from")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


class FarEnd:
    """tests/sip_farend.py as a subprocess; its stdout is one JSON event per line."""

    def __init__(self, rig: Kamailio, *args: str) -> None:
        self.out = rig.workdir / f"farend-{time.time_ns()}.jsonl"
        self._file = self.out.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, str(FAREND), "--domain", rig.domain, "--password", USERS["+14155550132"], *args],
            stdout=self._file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def events(self) -> list[dict[str, object]]:
        lines = self.out.read_text(errors="replace").splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]

    def wait_for(self, name: str, timeout: float) -> dict[str, object]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for event in self.events():
                if event.get("event") == name:
                    return event
            if self.proc.poll() is not None and not any(e.get("event") == name for e in self.events()):
                break
            time.sleep(0.05)
        raise AssertionError(f"far end never reported {name!r}; it said: {self.out.read_text(errors='replace')[-3000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=8)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        self._file.close()
