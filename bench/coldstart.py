"""Cold-start import time of every Lambda handler module, next to a bare boto3 handler.

Each module is imported in a fresh interpreter (as a Lambda cold start does), several
times; the median is reported. Both are measured in the same run on the same machine,
so the ratio is what to read, not the absolute milliseconds.
"""

from __future__ import annotations

import statistics
import subprocess
import sys

from bench.report import Figure, print_table
from parley_server.catalogue import FUNCTIONS

__all__ = ["main", "run"]

_PROBE = (
    "import time, importlib; t = time.perf_counter(); importlib.import_module({mod!r}); "
    "print(time.perf_counter() - t)"
)


def _import_seconds(module: str, repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        out = subprocess.run(
            [sys.executable, "-c", _PROBE.format(mod=module)],
            check=True,
            capture_output=True,
            text=True,
            env={"POWERTOOLS_TRACE_DISABLED": "true", "PATH": "/usr/bin:/bin"},
        )
        samples.append(float(out.stdout.strip().splitlines()[-1]))
    return statistics.median(samples)


def run(quick: bool = False) -> list[Figure]:
    repeats = 2 if quick else 7
    how = f"median of {repeats} fresh interpreters, import only"
    baseline = _import_seconds("boto3", repeats)
    figures = [Figure("cold start", "bare `import boto3` handler", baseline * 1000, "ms", how)]
    modules = sorted({spec.handler.rsplit(".", 1)[0] for spec in FUNCTIONS})
    for module in modules:
        seconds = _import_seconds(module, repeats)
        figures.append(
            Figure(
                "cold start",
                module.removeprefix("parley_server.handlers."),
                seconds * 1000,
                "ms",
                f"{how}; {seconds / baseline:.1f}x boto3",
            )
        )
    return figures


def main() -> None:
    print_table(run())


if __name__ == "__main__":
    main()
