"""Safe names for files and folders made from untrusted text (goal names, ids, call ids).

Goal files arrive from other programs (OpenClaw, the watch folder), so a name like `../../etc` or
`con:` must never steer where the outbox writes.
"""

from __future__ import annotations

import re
import unicodedata

_UNSAFE = re.compile(r"[^a-z0-9]+")
MAX_NAME = 48


def safe_name(text: str, fallback: str = "call") -> str:
    """Lower-case ASCII letters, digits and single dashes; never empty, never a path."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    slug = _UNSAFE.sub("-", ascii_text.lower()).strip("-")[:MAX_NAME].strip("-")
    return slug or fallback
