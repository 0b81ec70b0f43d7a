"""One shape for every figure the benchmarks print, and the table they print it in."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["Figure", "format_table", "print_table"]


@dataclass(frozen=True)
class Figure:
    """A measured number, what it is, and how it was measured."""

    group: str
    name: str
    value: float
    unit: str
    how: str

    def shown(self) -> str:
        if self.value == int(self.value) and abs(self.value) < 1e12:
            return f"{int(self.value):,}"
        if abs(self.value) >= 100:
            return f"{self.value:,.0f}"
        if abs(self.value) >= 1:
            return f"{self.value:,.2f}"
        return f"{self.value:.4g}"


def format_table(figures: Iterable[Figure]) -> str:
    rows = [(f.group, f.name, f.shown(), f.unit, f.how) for f in figures]
    head = ("group", "figure", "value", "unit", "how measured")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(4)]
    lines = []
    for row in [head, *rows]:
        cells = [row[i].ljust(widths[i]) if i != 2 else row[i].rjust(widths[i]) for i in range(4)]
        lines.append("  ".join([*cells, row[4]]).rstrip())
        if row is head:
            lines.append("  ".join("-" * w for w in widths) + "  " + "-" * 12)
    return "\n".join(lines)


def print_table(figures: Iterable[Figure]) -> None:
    print(format_table(figures))
