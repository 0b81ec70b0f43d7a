"""`make bench` (`python -m bench`): run every benchmark and print one table.

Each module's `run(quick)` returns its figures, each saying how it was measured;
they are printed together, after a line saying where they were measured. A
module that fails is reported (and the exit status says so), and the others
still run. `--quick` is the short pass the tests use: the same code paths with
small sizes, figures not worth quoting.
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from bench.report import Figure, format_table
from bench.targets import check, format_verdicts

__all__ = ["MODULES", "Outcome", "main", "run_all"]

# In the order the table shows them (cost last: it prices what the counters count).
MODULES = (
    "coldstart",
    "message_cost",
    "group_cost",
    "ratchet",
    "media",
    "throughput",
    "search",
    "calls",
    "catchup",
    "cost",
)


@dataclass(frozen=True)
class Outcome:
    """What one benchmark module gave: its figures, or why it gave none."""

    module: str
    figures: list[Figure]
    seconds: float
    error: str | None = None


def _run_one(module: str, quick: bool) -> Outcome:
    started = time.perf_counter()
    try:
        run: Callable[..., list[Figure]] = importlib.import_module(f"bench.{module}").run
        figures = list(run(quick=quick))
    except Exception:
        return Outcome(module, [], time.perf_counter() - started, traceback.format_exc())
    return Outcome(module, figures, time.perf_counter() - started)


def run_all(
    modules: Sequence[str] = MODULES,
    *,
    quick: bool = False,
    progress: Callable[[str], None] | None = None,
) -> list[Outcome]:
    """Run each module in turn; never stops at a failure."""
    outcomes = []
    for module in modules:
        if progress:
            progress(f"bench: {module} ...")
        outcome = _run_one(module, quick)
        if progress:
            state = "failed" if outcome.error else f"{len(outcome.figures)} figures"
            progress(f"bench: {module} {state} in {outcome.seconds:.1f} s")
        outcomes.append(outcome)
    return outcomes


def _where() -> str:
    return (
        f"measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.machine()}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()} ({platform.system()})"
    )


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (what the tests run)")
    parser.add_argument(
        "--only",
        metavar="MODULE",
        action="append",
        choices=MODULES,
        help="run just this module (repeatable)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    modules = [m for m in MODULES if not args.only or m in args.only]

    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    outcomes = run_all(modules, quick=args.quick, progress=progress)
    print(_where() + (" (--quick: not figures to quote)" if args.quick else ""))
    figures = [f for o in outcomes for f in o.figures]
    print(format_table(figures))
    print()
    print(format_verdicts(check(figures)))
    failed = [o for o in outcomes if o.error]
    for outcome in failed:
        print(f"\nbench: {outcome.module} failed:\n{outcome.error}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
