"""GET /: the live page, one static file (page.html) with its script and style inline: no CDN, no build.

The page holds no data; it reads the API with the token the user gives it (kept in the tab's
sessionStorage, taken from `#token=...` and removed from the address bar). The Content-Security-Policy
allows exactly the inline script and style shipped here (by hash) and requests to this origin only.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
from importlib import resources

from starlette.responses import HTMLResponse


def _digest(block: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(block.encode("utf-8")).digest()).decode() + "'"


@functools.cache
def _page() -> tuple[str, str]:
    html = (resources.files("cellcall.serve") / "page.html").read_text(encoding="utf-8")
    scripts = [_digest(block) for block in re.findall(r"<script>(.*?)</script>", html, re.S)]
    styles = [_digest(block) for block in re.findall(r"<style>(.*?)</style>", html, re.S)]
    policy = (
        f"default-src 'none'; script-src {' '.join(scripts)}; style-src {' '.join(styles)}; "
        "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
    return html, policy


def page_response() -> HTMLResponse:
    html, policy = _page()
    return HTMLResponse(
        html, headers={"Content-Security-Policy": policy, "Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
    )
