"""One benchmark figure: the runs of a measurement and its median as a markdown table row."""

from __future__ import annotations

import statistics
from dataclasses import dataclass


@dataclass
class Figure:
    name: str
    values: list[float]
    unit: str

    def row(self) -> str:
        digits = 2 if self.unit in ("", "s") else 1
        value = f"{statistics.median(self.values):.{digits}f} {self.unit}".strip()
        return f"| {self.name} | {value} | {len(self.values)} |"
