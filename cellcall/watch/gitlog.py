"""Git-tracked call reports (config `outbox.git = true`): one commit per finished call.

The commit names only the call's folder (`git commit -- FOLDER`), so anything else a person has
staged in the same repository is left alone. When the outbox is not inside a repository, or is
ignored by the one it is in, a repository is created at the outbox root.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

FALLBACK_IDENTITY = ("-c", "user.name=cellcall", "-c", "user.email=cellcall@localhost")


class GitLogError(RuntimeError):
    """git is missing or refused; the message carries git's own words."""


def _git(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    try:
        done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        raise GitLogError("git is not installed (needed for outbox.git = true)") from None
    if check and done.returncode != 0:
        raise GitLogError(f"git {args[0]} failed: {(done.stderr or done.stdout).strip()}")
    return done


def outbox_repo(outbox_root: Path) -> Path:
    """The work tree that tracks the outbox; created at the outbox root when there is none."""
    outbox_root.mkdir(parents=True, exist_ok=True)
    inside = _git(outbox_root, "rev-parse", "--show-toplevel", check=False)
    if inside.returncode == 0:
        top = Path(inside.stdout.strip())
        ignored = _git(top, "check-ignore", "-q", str(outbox_root.resolve() / "x"), check=False)
        if ignored.returncode != 0 or top == outbox_root.resolve():
            return top
    _git(outbox_root, "init", "-q")
    return outbox_root.resolve()


def commit_call(outbox_root: Path, folder: Path, message: str) -> str | None:
    """Commit `folder` (a call's outbox folder); the new commit id, or None if nothing changed."""
    repo = outbox_repo(outbox_root)
    target = str(folder.resolve())
    _git(repo, "add", "--", target)
    if _git(repo, "diff", "--cached", "--quiet", "--", target, check=False).returncode == 0:
        return None
    has_identity = _git(repo, "config", "user.email", check=False).returncode == 0
    identity = () if has_identity else FALLBACK_IDENTITY  # a headless box often has no git identity
    _git(repo, *identity, "commit", "-q", "--no-verify", "-m", message, "--", target)
    return _git(repo, "rev-parse", "HEAD").stdout.strip()
