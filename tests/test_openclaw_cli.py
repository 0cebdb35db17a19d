"""What a real OpenClaw 2026.9.6 CLI makes of cellcall's skill and outbox (no gateway needed).

`openclaw skills info cellcall` must show the installed skill "Ready" exactly when `cellcall` is on PATH, and
`openclaw memory search` must find a call's report.md once `cellcall openclaw setup --apply` has added the
outbox to memory.search.extraPaths (keeping the paths that were there) and set up the hook mapping.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from openclaw_gateway import OpenClawInstall
from test_openclaw_push import make_record

from cellcall.config import Settings
from cellcall.openclaw.setup import apply_setup, hook_mapping, install_skill
from cellcall.outbox import CallOutbox

pytestmark = [pytest.mark.openclaw, pytest.mark.slow]

VENV_BIN = Path(sys.executable).parent  # holds the `cellcall` command


def openclaw_env(install: OpenClawInstall, home: Path, with_cellcall: bool) -> dict[str, str]:
    """OpenClaw's environment with or without a directory that holds `cellcall` on PATH."""
    env = install.env(home, [VENV_BIN] if with_cellcall else [])
    if not with_cellcall:
        env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if p and not (Path(p) / "cellcall").exists())
    return env


def test_skill_is_ready_once_cellcall_is_on_path(openclaw_install: OpenClawInstall, tmp_path: Path) -> None:
    home = tmp_path / "home"
    install_skill(Settings(), home / ".openclaw" / "workspace")
    args = [str(openclaw_install.openclaw), "skills", "info", "cellcall"]
    missing = json.loads(
        subprocess.run(
            [*args, "--json"],
            env=openclaw_env(openclaw_install, home, False),
            cwd=home,
            capture_output=True,
            text=True,
            timeout=180,
            check=True,
        ).stdout
    )
    assert missing["eligible"] is False and missing["missing"]["bins"] == ["cellcall"]
    assert missing["source"] == "openclaw-workspace" and missing["requirements"]["os"] == ["linux"]
    ready = subprocess.run(
        args, env=openclaw_env(openclaw_install, home, True), cwd=home, capture_output=True, text=True, timeout=180, check=True
    )
    assert "cellcall ✓ Ready" in ready.stdout, ready.stdout


def test_memory_search_finds_a_calls_report_after_setup_apply(
    openclaw_install: OpenClawInstall, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    (home / ".openclaw").mkdir(parents=True)
    # keyword search (no embedding key here), and a path of the user's that setup must keep
    (home / ".openclaw" / "openclaw.json").write_text(
        json.dumps({"memory": {"search": {"provider": "none", "extraPaths": ["/srv/notes"]}}})
    )
    monkeypatch.setenv("PATH", openclaw_env(openclaw_install, home, True)["PATH"])
    monkeypatch.setenv("OPENCLAW_HOME", str(home))
    settings = Settings()
    settings.paths.outbox = str(tmp_path / "outbox")
    settings.openclaw.mode = "mapped"  # also the hook and its mapping, so OpenClaw's schema checks them
    record = make_record(f"20261126-{uuid.uuid4().hex[:8]}")
    record.started = datetime.now(UTC)
    record.summary = "The receptionist Zarnowskaya moved the cleaning to Friday at nine."
    report = CallOutbox.create(Path(settings.paths.outbox), record).finalize(record)

    applied = {change.path: change.value for change in apply_setup(settings)}  # the real `openclaw config get` / `set`
    assert list(applied) == ["memory.search.extraPaths", "hooks.enabled", "hooks.mappings"]
    written = json.loads((home / ".openclaw" / "openclaw.json").read_text())
    assert written["memory"]["search"]["extraPaths"] == ["/srv/notes", str(tmp_path / "outbox")]
    assert written["hooks"]["enabled"] is True and written["hooks"]["mappings"] == [hook_mapping(settings)]

    found = json.loads(openclaw_install.run(home, "memory", "search", "Zarnowskaya", "--json", timeout=300).stdout)
    paths = [hit["path"] for hit in found["results"]]
    assert any(p.endswith(str(report.relative_to(tmp_path / "outbox"))) for p in paths), found
