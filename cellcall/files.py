"""Whole files or nothing: write under a hidden temporary name beside the target, then os.replace.

A reader (another process, a runner restarted after a crash, a person's editor) sees the old file
or the new one, never half of one; the temporary name starts with a dot and ends in `.tmp`, which
the inbox ignores, and carries the pid and a random token, so two writers never share one.
`durable=True` adds an fsync before the rename for files whose loss on a power cut matters (the
OpenClaw push queue, a joined model); elsewhere it is left out because it costs milliseconds.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def replacing(path: Path, *, durable: bool = False) -> Iterator[Path]:
    """A temporary path to write `path`'s new content to; it replaces `path` when the block ends cleanly.

    When the block raises, the temporary file is removed and `path` is left as it was.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        yield tmp
        if durable:
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write(path: Path, data: str | bytes, *, durable: bool = False) -> None:
    """Replace `path` with `data` (text is written as UTF-8) in one step."""
    with replacing(path, durable=durable) as tmp:
        if isinstance(data, str):
            tmp.write_text(data, encoding="utf-8")
        else:
            tmp.write_bytes(data)


def atomic_write_json(path: Path, data: dict[str, Any]) -> None:
    """Write a whole JSON file (indented, keys sorted, newline-terminated) or nothing.

    No fsync: it costs milliseconds on the drop-to-dial path, and what it would add (surviving a
    power cut, not just a crash) is not needed for safety: a claim that lost its state file is
    reported as interrupted at the next start, never redialled.
    """
    atomic_write(path, json.dumps(data, indent=2, sort_keys=True) + "\n")
