"""A real nats-server with JetStream for the fleet tests: loopback, a free port, a temp store, a token.

Started as a subprocess and stopped by its PID (SIGTERM, then SIGKILL); `restart()` brings it back on
the same port and store, for the outage test.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from cellcall.config import QueueSettings

TOKEN = "fleet-test-token-7d1f"


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate and key for 127.0.0.1, made by openssl (the test skips without it)."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"]
        + ["-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    return cert, key


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class NatsServer:
    """One nats-server process; `url` is its nats:// address."""

    def __init__(self, store: Path, token: str = TOKEN, tls: tuple[Path, Path] | None = None) -> None:
        binary = shutil.which("nats-server") or "/usr/sbin/nats-server"
        if not Path(binary).exists():
            raise RuntimeError("nats-server is not installed (apt-get install nats-server)")
        self.binary = binary
        self.store = store
        self.token = token
        self.port = free_port()
        self.tls = tls  # (certificate, key) PEM files: the server then speaks TLS only
        self.url = f"{'tls' if tls else 'nats'}://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = store / "nats-server.log"

    def start(self) -> NatsServer:
        self.store.mkdir(parents=True, exist_ok=True)
        args = [self.binary, "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", str(self.store), "--auth", self.token]
        if self.tls:
            args += ["--tls", "--tlscert", str(self.tls[0]), "--tlskey", str(self.tls[1])]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=self.log.open("ab"))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"nats-server did not start: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)

    def settings(self, line: str, **extra: object) -> QueueSettings:
        """Queue settings for a worker of this server (its token unless `token=` says otherwise)."""
        return QueueSettings(**{"url": self.url, "line_name": line, "token": self.token, **extra})  # type: ignore[arg-type]
