"""Figures the suites measure, printed in pytest's terminal summary.

Tests record numbers (cases run, messages, faults); they never assert on time.
`FIGURES.record("fuzz cases", "WsSend", 300)` adds to a figure; the summary
prints one table per group.
"""

from __future__ import annotations

import threading
from collections import defaultdict

__all__ = ["FIGURES", "Figures"]


class Figures:
    def __init__(self) -> None:
        self._values: dict[str, dict[str, float]] = defaultdict(dict)
        self._lock = threading.Lock()

    def record(self, group: str, name: str, value: float) -> None:
        """Add `value` to the figure `name` of `group`."""
        with self._lock:
            self._values[group][name] = self._values[group].get(name, 0) + value

    def dump(self) -> dict[str, dict[str, float]]:
        with self._lock:
            return {group: dict(values) for group, values in self._values.items()}

    def merge(self, other: dict[str, dict[str, float]]) -> None:
        """Add figures recorded elsewhere (another worker's `dump()`)."""
        for group, values in other.items():
            for name, value in values.items():
                self.record(group, name, value)

    def lines(self) -> list[str]:
        with self._lock:
            out: list[str] = []
            for group, values in self._values.items():
                out.append(f"{group}:")
                width = max(len(name) for name in values)
                for name, value in values.items():
                    shown = f"{value:.0f}" if float(value).is_integer() else f"{value:.2f}"
                    out.append(f"  {name:<{width}}  {shown}")
            return out


FIGURES = Figures()
