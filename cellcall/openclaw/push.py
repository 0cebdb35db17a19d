"""One delivery attempt to an OpenClaw gateway, over its hooks endpoint or its CLI, classified for the queue.

The outcome says what to do next: delivered (drop the entry), retry (the gateway is unreachable or busy),
rejected (the token is wrong: retrying will not help until someone fixes it) or failed (the gateway refused
this push for a reason it states). The token travels only in a header or the CLI's environment, and is
scrubbed from every message that could reach a log, a queue file or a report.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from typing import Any

import httpx

from cellcall.config import REDACTED, OpenClawSettings

DELIVERED, RETRY, REJECTED, FAILED = "delivered", "retry", "rejected", "failed"
MODES = ("wake", "mapped", "cli")
CLI_TIMEOUT_S = 30.0  # the openclaw CLI starts Node and connects over WebSocket: seconds, not milliseconds
_RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}


@dataclass(frozen=True)
class Outcome:
    kind: str  # delivered | retry | rejected | failed
    message: str = ""


def scrub(text: str, secret: str) -> str:
    """The text with the secret replaced, so an echoed header or URL cannot leak it."""
    return text.replace(secret, REDACTED) if secret else text


def deliver(config: OpenClawSettings, payload: dict[str, Any], timeout_s: float) -> Outcome:
    """Send one push the way `config.mode` says; never raises."""
    if config.mode not in MODES:
        return Outcome(FAILED, f"openclaw.mode must be one of {', '.join(MODES)}, not {config.mode!r}")
    if not isinstance(payload.get("text"), str) or not isinstance(payload.get("callId"), str):
        return Outcome(FAILED, "malformed queue entry: the payload needs a text and a callId")
    try:
        outcome = _via_cli(config, payload) if config.mode == "cli" else _via_hooks(config, payload, timeout_s)
    except Exception as exc:  # noqa: BLE001 - a push must never take the call down with it
        outcome = Outcome(RETRY, f"unexpected error: {type(exc).__name__}: {exc}")
    return Outcome(outcome.kind, scrub(outcome.message, config.token))


def hook_url(config: OpenClawSettings) -> str:
    name = "wake" if config.mode == "wake" else config.mapped_name.strip("/")
    return f"{config.url.rstrip('/')}/{config.hooks_path.strip('/')}/{name}"


def _via_hooks(config: OpenClawSettings, payload: dict[str, Any], timeout_s: float) -> Outcome:
    url = hook_url(config)
    if config.mode == "wake":
        body: dict[str, Any] = {"text": payload["text"], "mode": "now", "idempotencyKey": payload["callId"]}
    else:
        body = payload
    headers = {"Idempotency-Key": payload["callId"]}
    if config.token:
        headers["Authorization"] = f"Bearer {config.token}"
    try:
        response = httpx.post(url, json=body, headers=headers, timeout=timeout_s)
    except httpx.TransportError as exc:
        return Outcome(RETRY, f"OpenClaw gateway unreachable at {url}: {type(exc).__name__}: {exc}")
    return _classify_http(url, response, bool(config.token))


def _classify_http(url: str, response: httpx.Response, has_token: bool) -> Outcome:
    code = response.status_code
    reason = " ".join(response.text.split())[:200]
    if 200 <= code < 300:
        return Outcome(DELIVERED, f"HTTP {code} {reason}")
    if code in (401, 403):
        hint = (
            "set openclaw.token or CELLCALL_OPENCLAW_TOKEN to the gateway's hooks.token"
            if not has_token
            else ("check that openclaw.token / CELLCALL_OPENCLAW_TOKEN matches the gateway's hooks.token")
        )
        return Outcome(REJECTED, f"OpenClaw rejected the token (HTTP {code} from {url}): {hint}")
    if code in _RETRY_STATUS:
        return Outcome(RETRY, f"OpenClaw gateway busy or failing (HTTP {code} from {url}): {reason}")
    if code == 404:
        return Outcome(FAILED, f"no hook at {url} (HTTP 404): enable hooks and the mapping, see `cellcall openclaw setup`")
    return Outcome(FAILED, f"OpenClaw refused the push (HTTP {code} from {url}): {reason}")


def cli_command(config: OpenClawSettings, text: str, binary: str = "openclaw") -> list[str]:
    """`openclaw message send` when a channel and target are set, else `openclaw system event`."""
    if config.cli_channel and config.cli_target:
        return [binary, "message", "send", "--channel", config.cli_channel, "-t", config.cli_target, "-m", text, "--json"]
    return [binary, "system", "event", "--text", text, "--mode", "now", "--json"]


def gateway_ws_url(http_url: str) -> str:
    if http_url.startswith("https://"):
        return "wss://" + http_url[len("https://") :]
    if http_url.startswith("http://"):
        return "ws://" + http_url[len("http://") :]
    return http_url


def _via_cli(config: OpenClawSettings, payload: dict[str, Any]) -> Outcome:
    binary = shutil.which("openclaw")
    if binary is None:
        return Outcome(FAILED, "openclaw.mode is cli but the `openclaw` command is not on PATH")
    env = dict(os.environ, OPENCLAW_GATEWAY_URL=gateway_ws_url(config.url))  # env, never argv: `ps` shows argv
    if config.token:
        env["OPENCLAW_GATEWAY_TOKEN"] = config.token
    try:
        done = subprocess.run(
            cli_command(config, payload["text"], binary), env=env, capture_output=True, text=True, timeout=CLI_TIMEOUT_S
        )
    except subprocess.TimeoutExpired:
        return Outcome(RETRY, f"`openclaw` CLI did not finish within {CLI_TIMEOUT_S:.0f} s")
    message = _cli_error(done.stdout) or " ".join(done.stderr.split())[:300]
    if done.returncode == 0:
        return Outcome(DELIVERED, "openclaw CLI: ok")
    lowered = message.lower()
    if "unauthorized" in lowered or "token mismatch" in lowered:
        return Outcome(REJECTED, f"OpenClaw rejected the token (openclaw CLI): {message}")
    if "not reachable" in lowered or "econnrefused" in lowered or "timeout" in lowered:
        return Outcome(RETRY, f"OpenClaw gateway unreachable (openclaw CLI): {message}")
    return Outcome(FAILED, f"openclaw CLI failed (exit {done.returncode}): {message}")


def _cli_error(stdout: str) -> str:
    """The error message of `--json` output, which is one JSON object possibly after log lines."""
    start = stdout.find("{")
    if start < 0:
        return ""
    try:
        data = json.loads(stdout[start:])
    except ValueError:
        return ""
    error = data.get("error") if isinstance(data, dict) else None
    return " ".join(str(error.get("message", "")).split()) if isinstance(error, dict) else ""
