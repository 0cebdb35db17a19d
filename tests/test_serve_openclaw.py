"""The remote skill against a real OpenClaw 2026.9.6 (Node 24 + openclaw from npm, tests/openclaw_gateway.py).

`cellcall openclaw install-skill --remote URL` must give a skill that is Ready with no `cellcall` on
OpenClaw's PATH once CELLCALL_URL and CELLCALL_API_TOKEN are set (and says what is missing before),
and a call placed the skill's way (curl against `cellcall serve`) must push its outcome to the real
gateway: the real place_call on the emulated modem, far end busy so no model time is spent.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import pytest
from openclaw_gateway import Gateway, ModelRecorder, OpenClawInstall, OpenClawUnavailable
from runner_support import goal_text, wait_for
from serve_support import BUSY, TOKEN, serve_settings, served
from test_openclaw_cli import openclaw_env

from cellcall.openclaw.notify import queue_for, wait_for_deliveries
from cellcall.openclaw.setup import install_skill, skill_text
from cellcall.watch.runner import default_call_fns

pytestmark = [pytest.mark.openclaw, pytest.mark.slow]


def test_the_remote_skill_is_ready_without_a_local_cellcall(openclaw_install: OpenClawInstall, tmp_path: Path) -> None:
    from cellcall.config import Settings

    home = tmp_path / "home"
    install_skill(Settings(), home / ".openclaw" / "workspace", remote="https://phone.local:8765")
    args = [str(openclaw_install.openclaw), "skills", "info", "cellcall", "--json"]
    env = openclaw_env(openclaw_install, home, False)  # no cellcall anywhere on PATH
    missing = json.loads(subprocess.run(args, env=env, cwd=home, capture_output=True, text=True, timeout=180, check=True).stdout)
    assert missing["eligible"] is False and sorted(missing["missing"]["env"]) == ["CELLCALL_API_TOKEN", "CELLCALL_URL"]
    env |= {"CELLCALL_URL": "https://phone.local:8765", "CELLCALL_API_TOKEN": TOKEN}
    ready = json.loads(subprocess.run(args, env=env, cwd=home, capture_output=True, text=True, timeout=180, check=True).stdout)
    assert ready["eligible"] is True, ready
    assert "https://phone.local:8765" in skill_text("https://phone.local:8765") and "curl" in ready["requirements"]["bins"]


def test_a_call_placed_the_skills_way_pushes_its_outcome_to_the_gateway(
    openclaw_install: OpenClawInstall, tmp_path: Path
) -> None:
    recorder = ModelRecorder()
    hooks_token = "hooks-" + uuid.uuid4().hex
    gateway = Gateway(openclaw_install, tmp_path / "oc-home", recorder, hooks_token, "gateway-" + uuid.uuid4().hex)
    try:
        try:
            gateway.start()
        except OpenClawUnavailable as exc:
            pytest.fail(str(exc))
        settings = serve_settings(tmp_path)
        settings.llm.backend = "embedded"
        settings.openclaw.enabled, settings.openclaw.url, settings.openclaw.token = True, gateway.url, hooks_token
        place, _, _ = default_call_fns(settings)  # the real call and its push, as `cellcall serve` makes them

        (tmp_path / "dentist.md").write_text(goal_text(objective="Move the cleaning to Friday"))
        with served(settings, tmp_path / "goals", place, scenario=BUSY) as (api, emulator):
            env = {"CELLCALL_URL": api.url, "CELLCALL_API_TOKEN": TOKEN, "PATH": "/usr/bin:/bin"}
            posted = subprocess.run(  # the command the remote skill gives the agent
                'curl -sS -X POST "$CELLCALL_URL/v1/calls" -H "Authorization: Bearer $CELLCALL_API_TOKEN" '
                '-H "Content-Type: text/markdown" -H "Idempotency-Key: dentist-1" --data-binary @dentist.md',
                shell=True,
                env=env,
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=30,
                check=True,
            )
            call_id = json.loads(posted.stdout)["call_id"]
            wait_for(lambda: api.call(call_id)["final"], 60, "the busy call to end")
            report = subprocess.run(
                f'curl -sS -H "Authorization: Bearer $CELLCALL_API_TOKEN" "$CELLCALL_URL/v1/calls/{call_id}/report"',
                shell=True,
                env=env,
                capture_output=True,
                text=True,
                timeout=30,
                check=True,
            ).stdout
            record = api.call(call_id)["record"]
        assert "status: busy" in report and record["status"] == "busy"
        assert wait_for_deliveries(30)
        assert queue_for(settings).entries() == [], [(e.state, e.last_error) for e in queue_for(settings).entries()]
        recorder.wait_for(f"Call id: {record['call_id']}")
        recorder.wait_for("cellcall: outbound call to +14155550132", timeout_s=5)
        assert TOKEN not in gateway.logs()
    finally:
        gateway.stop()
        recorder.close()
