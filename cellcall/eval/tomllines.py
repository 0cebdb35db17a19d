"""Which line of a TOML file a key or table is on, so a validation error can point at it.

`tomllib` returns plain dicts without positions; this reads the raw text once and maps key paths
(("states", "offer", "on", 0, "goto")) to 1-based line numbers. It understands what hand-written
persona files use: [table] and [[array]] headers, dotted and quoted keys, and keys of one-line inline
tables. Anything it cannot place falls back to the nearest enclosing table's line.
"""

from __future__ import annotations

import re

Path = tuple[str | int, ...]

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(?:#.*)?$")
_KEY = re.compile(r"""^\s*((?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*'))*)\s*=""")
_PART = re.compile(r"""[A-Za-z0-9_-]+|"[^"]*"|'[^']*'""")
_INLINE_KEY = re.compile(r"""[{,]\s*([A-Za-z0-9_-]+)\s*=""")


def _parts(dotted: str) -> tuple[str, ...]:
    return tuple(p.strip("\"'") for p in _PART.findall(dotted))


class KeyLines:
    """Line numbers of the keys and tables of one TOML text."""

    def __init__(self, text: str) -> None:
        self._lines: dict[Path, int] = {}
        arrays: dict[tuple[str, ...], int] = {}
        table: Path = ()
        in_multiline: str | None = None
        for number, line in enumerate(text.splitlines(), start=1):
            if in_multiline:  # inside a multi-line string: no keys here
                if line.count(in_multiline) % 2:
                    in_multiline = None
                continue
            header = _HEADER.match(line)
            if header:
                names = _parts(header.group(2))
                if header.group(1) == "[[":
                    index = arrays[names] = arrays.get(names, -1) + 1
                    table = self._array_path(names, arrays) + (index,)
                else:
                    table = self._array_path(names, arrays)
                self._lines.setdefault(table, number)
                continue
            key = _KEY.match(line)
            if not key:
                continue
            path = table + _parts(key.group(1))
            self._lines.setdefault(path, number)
            for inner in _INLINE_KEY.findall(line[key.end() :]):
                self._lines.setdefault(path + (inner,), number)
            for quote in ('"""', "'''"):
                if line.count(quote) % 2:
                    in_multiline = quote

    @staticmethod
    def _array_path(names: tuple[str, ...], arrays: dict[tuple[str, ...], int]) -> Path:
        """[a.b.c] inside [[a.b]]: the path goes through the array's current element."""
        path: list[str | int] = []
        for i, name in enumerate(names):
            path.append(name)
            prefix = names[: i + 1]
            if prefix in arrays and i + 1 < len(names):
                path.append(arrays[prefix])
        return tuple(path)

    def line(self, path: Path) -> int | None:
        """The line of `path`, or of the closest enclosing key or table that has one."""
        for end in range(len(path), -1, -1):
            found = self._lines.get(path[:end])
            if found is not None:
                return found
        return None
