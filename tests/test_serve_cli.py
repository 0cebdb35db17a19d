"""`cellcall serve` as a user runs it: a real process, stopped by its PID.

Refusals come before anything starts (no token off loopback, a short token, a taken port, half a TLS
pair), with exit 2 and no secret in the output. The slow test runs the whole command on the emulated
modem (far end busy) with the real engines loading, places a call through the API and stops it with
SIGTERM: the call is reported and the process exits 0.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from runner_support import goal_text, wait_for

CELLCALL = str(Path(sys.executable).parent / "cellcall")
TOKEN = "cli-token-" + "5" * 24


def run_serve(tmp_path: Path, *args: str, token: str = "", timeout: float = 30) -> subprocess.CompletedProcess[str]:
    (tmp_path / "goals").mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CELLCALL_")} | {"CELLCALL_API_TOKEN": token}
    return subprocess.run(
        [CELLCALL, "serve", str(tmp_path / "goals"), *args],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_serve_refuses_to_start_unsafely_and_says_why(tmp_path: Path) -> None:
    open_wide = run_serve(tmp_path, "--listen", "0.0.0.0:0")
    assert open_wide.returncode == 2 and "without a token" in open_wide.stderr
    short = run_serve(tmp_path, "--listen", "0.0.0.0:0", token="hunter2")
    assert short.returncode == 2 and "too short" in short.stderr and "hunter2" not in short.stderr + short.stdout
    half_tls = run_serve(tmp_path, "--cert", str(tmp_path / "cert.pem"))
    assert half_tls.returncode == 2 and "both --cert and --key" in half_tls.stderr
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        busy = run_serve(tmp_path, "--listen", f"127.0.0.1:{port}", token=TOKEN)
    assert busy.returncode == 2 and f"cannot listen on 127.0.0.1:{port}" in busy.stderr
    assert run_serve(tmp_path, "--listen", "nonsense").returncode == 2


@pytest.mark.slow
def test_cellcall_serve_places_a_call_from_the_api_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    (tmp_path / "goals").mkdir()
    (tmp_path / "cellcall.toml").write_text(
        f'[paths]\ngoals = "{tmp_path / "goals"}"\noutbox = "{tmp_path / "outbox"}"\n[llm]\nbackend = "embedded"\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("CELLCALL_")} | {"CELLCALL_API_TOKEN": TOKEN}
    log = open(tmp_path / "serve.log", "w")
    process = subprocess.Popen(
        [CELLCALL, "serve", "--listen", f"127.0.0.1:{port}", "--line", "emulator", "--scenario", "busy"],
        env=env,
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    try:

        def up() -> bool:
            time.sleep(0.5)  # a user's pace: api.rate_per_minute is 120
            try:
                return client.get("/v1/status").json()["runners"][0]["line"]["state"] == "up"
            except (httpx.HTTPError, KeyError, IndexError):
                return False

        wait_for(up, 60, "cellcall serve to answer with the line up")
        call_id = client.post("/v1/calls", content=goal_text(), headers={"Content-Type": "text/markdown"}).json()["call_id"]
        wait_for(lambda: time.sleep(0.5) or client.get(f"/v1/calls/{call_id}").json()["final"], 120, "the call to end")
        assert client.get(f"/v1/calls/{call_id}").json()["status"] == "busy"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=90) == 0
    finally:
        client.close()
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        log.close()
    output = (tmp_path / "serve.log").read_text()
    assert "api-listening" in output and f"127.0.0.1:{port}" in output and TOKEN not in output
    assert "runner-stop" in output
    time.sleep(0.1)
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/", timeout=2)
