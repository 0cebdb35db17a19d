"""Fixtures shared by several test modules (pytest finds them here; the helpers stay plain modules)."""

from openclaw_gateway import openclaw_install

__all__ = ["openclaw_install"]
