"""Connect an OpenClaw install to cellcall: the skill in a workspace, memory search over the outbox, the hook.

`setup_plan` says what to configure (printed by `cellcall openclaw setup`); `apply_setup` makes the changes
through the `openclaw config` CLI, merging with what is there (other extraPaths and hook mappings are kept).
The hooks token is never passed on a command line: setup only says where it goes.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cellcall.config import Settings
from cellcall.openclaw.memory import workspace_dir

CONFIG_TIMEOUT_S = 60.0


class OpenClawSetupError(RuntimeError):
    """OpenClaw could not be configured; the message says which step and why."""


@dataclass(frozen=True)
class ConfigChange:
    path: str  # an OpenClaw config path, e.g. memory.search.extraPaths
    value: Any
    why: str

    def command(self) -> str:
        return f"openclaw config set {self.path} {shlex.quote(json.dumps(self.value))} --strict-json"


def skill_text(remote: str | None = None) -> str:
    """The SKILL.md shipped in the wheel (package data `cellcall.skill`); with `remote`, the variant that
    drives `cellcall serve` at that URL with curl (this host needs no cellcall)."""
    if remote is None:
        return (resources.files("cellcall.skill") / "SKILL.md").read_text(encoding="utf-8")
    url = urlsplit(remote)
    if url.scheme not in ("http", "https") or not url.hostname or url.username or url.password or url.query or url.fragment:
        raise OpenClawSetupError(
            f"--remote {remote!r} must be the API's base URL, like https://phone.local:8765 (no credentials)"
        )
    return (resources.files("cellcall.skill") / "remote.md").read_text(encoding="utf-8").replace("{cellcall_url}", remote)


def install_skill(settings: Settings, workspace: Path | None = None, remote: str | None = None) -> Path:
    """Write `<workspace>/skills/cellcall/SKILL.md` (OpenClaw's highest-precedence skill folder)."""
    text = skill_text(remote)
    root = (workspace or workspace_dir(settings)).expanduser()
    if root.exists() and not root.is_dir():
        raise OpenClawSetupError(f"workspace {root} is not a folder")
    target = root / "skills" / "cellcall" / "SKILL.md"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    return target


def outbox_dir(settings: Settings) -> Path:
    return Path(settings.paths.outbox).expanduser().resolve()


def hook_mapping(settings: Settings) -> dict[str, Any]:
    """The hooks.mappings entry for mapped mode: the call's JSON becomes a wake event carrying its `text`."""
    name = settings.openclaw.mapped_name.strip("/")
    return {"match": {"path": name}, "action": "wake", "wakeMode": "now", "name": "cellcall", "textTemplate": "{{text}}"}


def setup_plan(settings: Settings, current: dict[str, Any] | None = None) -> list[ConfigChange]:
    """The config changes, merged into `current` values ({path: value}) when they are known."""
    current = current or {}
    outbox = str(outbox_dir(settings))
    paths = list(current.get("memory.search.extraPaths") or [])
    changes = [
        ConfigChange(
            "memory.search.extraPaths",
            paths if outbox in paths else [*paths, outbox],
            "lets `openclaw memory search` find call reports",
        )
    ]
    if settings.openclaw.mode in ("wake", "mapped"):
        changes.append(ConfigChange("hooks.enabled", True, "accepts cellcall's push on the hooks endpoint"))
    if settings.openclaw.mode == "mapped":
        mapping = hook_mapping(settings)
        others = [
            m for m in current.get("hooks.mappings") or [] if (m.get("match") or {}).get("path") != mapping["match"]["path"]
        ]
        changes.append(
            ConfigChange(
                "hooks.mappings", [*others, mapping], f"routes POST {settings.openclaw.hooks_path}/{mapping['match']['path']}"
            )
        )
    return changes


def setup_text(settings: Settings) -> str:
    """What `cellcall openclaw setup` prints without --apply."""
    lines = ["# OpenClaw configuration for cellcall (run these, or `cellcall openclaw setup --apply`):", ""]
    for change in setup_plan(settings):
        lines += [f"# {change.why}", change.command(), ""]
    lines += [
        "# the push's Bearer token: the same secret on both sides (never put it in a goal file or a report)",
        "openclaw config set hooks.token <a long random secret>",
        "export CELLCALL_OPENCLAW_TOKEN=<the same secret>   # or [openclaw] token in cellcall.toml",
        "",
        "# the skill, so the agent knows how to place calls and read reports",
        "cellcall openclaw install-skill",
    ]
    return "\n".join(lines)


def apply_setup(settings: Settings) -> list[ConfigChange]:
    """Read the current values, merge, and write them with `openclaw config set`; returns what was set."""
    binary = shutil.which("openclaw")
    if binary is None:
        raise OpenClawSetupError("the `openclaw` command is not on PATH; install OpenClaw or run the printed commands yourself")
    current = {path: _config_get(binary, path) for path in ("memory.search.extraPaths", "hooks.mappings")}
    changes = setup_plan(settings, current)
    batch = [{"path": change.path, "value": change.value} for change in changes]  # one write, validated as a whole
    _run(binary, ["config", "set", "--batch-json", json.dumps(batch)])
    return changes


def _config_get(binary: str, path: str) -> Any:
    """The authored value at `path`, or None when it is unset."""
    done = _run(binary, ["config", "get", path, "--json"], check=False)
    if done.returncode == 0:
        return json.loads(done.stdout)
    if "unset" in (done.stdout + done.stderr):
        return None
    raise OpenClawSetupError(f"`openclaw config get {path}` failed: {' '.join(done.stderr.split())[:300]}")


def _run(binary: str, args: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    try:
        done = subprocess.run([binary, *args], capture_output=True, text=True, timeout=CONFIG_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise OpenClawSetupError(f"`openclaw {' '.join(args[:3])}` did not finish within {CONFIG_TIMEOUT_S:.0f} s") from None
    if check and done.returncode != 0:
        detail = " ".join((done.stderr or done.stdout).split())[:300]
        raise OpenClawSetupError(f"`openclaw {' '.join(args[:3])}` failed (exit {done.returncode}): {detail}")
    return done
