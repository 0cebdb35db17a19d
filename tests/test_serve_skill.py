"""The remote skill's text and its installer (no OpenClaw needed; the real OpenClaw checks are in
test_serve_openclaw.py), and HTTPS with --cert/--key on a real server (a certificate made by openssl)."""

from __future__ import annotations

import re
import shutil
import socket
import ssl
import subprocess
import sys
from pathlib import Path

import frontmatter
import httpx
import pytest
from runner_support import LineOnlyCalls
from serve_support import TOKEN, serve_settings, served

from cellcall.config import Settings
from cellcall.openclaw.setup import OpenClawSetupError, install_skill, skill_text
from cellcall.serve.app import ApiContext, create_app
from cellcall.serve.server import ApiServer, context_for

CELLCALL = str(Path(sys.executable).parent / "cellcall")


def test_the_remote_skill_needs_curl_and_the_two_variables_and_no_cellcall() -> None:
    skill = frontmatter.loads(skill_text("https://phone.local:8765"))
    gate = skill["metadata"]["openclaw"]
    assert gate["requires"] == {"bins": ["curl"], "env": ["CELLCALL_URL", "CELLCALL_API_TOKEN"]}
    assert gate["primaryEnv"] == "CELLCALL_API_TOKEN" and "os" not in gate  # OpenClaw may run on a Mac
    assert skill["name"] == "cellcall" and len(skill["description"]) < 160
    assert "https://phone.local:8765" in skill.content and "{cellcall_url}" not in skill.content
    assert "cellcall " not in re.sub(r"`cellcall serve`|cellcall appliance|cellcall \(remote\)", "", skill.content)


def test_every_route_the_remote_skill_uses_exists_in_the_api(tmp_path: Path) -> None:
    text = skill_text("https://phone.local:8765")
    used = set(re.findall(r"\$CELLCALL_URL(/v1/[a-z/<>_]+)", text)) | set(re.findall(r"(/v1/calls/<call_id>/[a-z]+)", text))
    settings = Settings()
    settings.paths.outbox = str(tmp_path / "outbox")
    (tmp_path / "goals").mkdir()
    ctx = ApiContext(settings, tmp_path / "goals", tmp_path / "outbox", lambda source: False, None)  # type: ignore[arg-type]
    paths = {route.path.replace("{call_id}", "<call_id>") for route in create_app(ctx).routes}  # type: ignore[attr-defined]
    assert used and used <= paths, used - paths


@pytest.mark.parametrize(
    "bad", ["phone.local:8765", "ftp://phone.local", "https://user:pw@phone.local", "https://", "https://h/?t=1"]
)
def test_install_skill_remote_refuses_what_is_not_a_base_url(tmp_path: Path, bad: str) -> None:
    with pytest.raises(OpenClawSetupError, match="base URL"):
        install_skill(Settings(), tmp_path / "ws", remote=bad)
    assert not (tmp_path / "ws").exists()


def test_the_cli_installs_the_remote_variant_and_says_what_to_set(tmp_path: Path) -> None:
    done = subprocess.run(
        [CELLCALL, "openclaw", "install-skill", "--workspace", str(tmp_path / "ws"), "--remote", "https://phone.local:8765"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    installed = (tmp_path / "ws" / "skills" / "cellcall" / "SKILL.md").read_text()
    assert installed == skill_text("https://phone.local:8765")
    assert "CELLCALL_URL=https://phone.local:8765" in done.stdout and "CELLCALL_API_TOKEN" in done.stdout


def test_https_with_cert_and_key(tmp_path: Path) -> None:
    if shutil.which("openssl") is None:
        pytest.fail("openssl is needed to make the test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"]
        + ["-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    settings = serve_settings(tmp_path)
    with served(settings, tmp_path / "goals", LineOnlyCalls(tmp_path / "outbox")) as (api, _):
        sock = socket.create_server(("127.0.0.1", 0))
        secure = ApiServer(context_for(settings, api.runner), sock, str(cert), str(key)).start()
        try:
            assert secure.url.startswith("https://127.0.0.1:")
            headers = {"Authorization": f"Bearer {TOKEN}"}
            answer = httpx.get(
                secure.url + "/v1/status", headers=headers, verify=ssl.create_default_context(cafile=str(cert)), timeout=10
            )
            assert answer.status_code == 200 and answer.json()["goals"] == str(tmp_path / "goals")
            with pytest.raises(httpx.HTTPError):
                httpx.get(secure.url.replace("https", "http") + "/v1/status", headers=headers, timeout=5)
        finally:
            secure.stop()
