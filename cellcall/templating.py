"""The packaged jinja2 templates and the one escaping rule for untrusted text in markdown.

Templates load through importlib.resources from `cellcall.templates`, so a wheel install finds them.
"""

from __future__ import annotations

import functools
import html
import json
import re
from importlib import resources
from typing import Any

import jinja2

TEMPLATES = "cellcall.templates"

_MARKUP = re.compile(r"([\\`*_\[\]()#|!~])")
_LIST_MARKER = re.compile(r"^([-+]|\d{1,9}[.)])(?=\s|$)")
_INVISIBLE = re.compile("[\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def escape_md(text: object) -> str:
    """Untrusted text as one inert markdown line: no HTML, links, code, headings, lists or table breaks."""
    flat = " ".join(_CONTROL.sub(" ", _INVISIBLE.sub("", str(text))).split())
    escaped = html.escape(_MARKUP.sub(r"\\\1", flat), quote=False)
    return _LIST_MARKER.sub(lambda m: m.group(1)[:-1] + "\\" + m.group(1)[-1], escaped, count=1)


def _clock(seconds: float) -> str:
    minutes, rest = divmod(max(0.0, float(seconds)), 60)
    return f"{int(minutes):02d}:{rest:04.1f}"


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f}"


@functools.cache
def _env() -> jinja2.Environment:
    """Templates come from the installed package (importlib.resources), so a wheel install finds them."""

    def load(name: str) -> str:
        return resources.files(TEMPLATES).joinpath(name).read_text(encoding="utf-8")

    env = jinja2.Environment(
        loader=jinja2.FunctionLoader(load),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(md=escape_md, clock=_clock, ms=_ms, yaml=lambda value: json.dumps(value, ensure_ascii=False))
    return env


def render_template(template: str, /, **context: Any) -> str:
    """Render one of the packaged templates (also used by `cellcall new` for goal.md.j2)."""
    return _env().get_template(template).render(**context)


def template_macros(template: str, /) -> Any:
    """The macros of a template (e.g. one transcript turn), callable from Python."""
    return _env().get_template(template).module
