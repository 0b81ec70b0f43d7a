"""Cold-start import time of every Lambda handler module, next to a bare boto3 handler.

Each module is imported in a fresh interpreter, several times; the median is
reported. The interpreter is set up as Lambda's python runtime sets it up:

- the asset's packages first on the path (what stacks/bundling.py puts in the
  asset: lambdas/requirements.txt and the packages they need, minus what the
  runtime provides, plus parley_server), copied from this machine's installed
  copies of those distributions, without bytecode: the asset ships none and
  /var/task is read-only, so Lambda compiles every module at every cold start;
- then the runtime's boto3 and its dependencies (this machine's, compiled, as
  the runtime's are), and nothing else: no site-packages;
- LAMBDA_TASK_ROOT set, so the X-Ray SDK takes Lambda's context and builds no
  sampler, and Powertools' Tracer is on and patches boto3 (as deployed:
  POWERTOOLS_TRACE_DISABLED is not set), with the variables the stack gives
  every function.

Both figures are measured in the same run on the same machine, so the ratio
is what to read, not the absolute milliseconds (this machine's Python, not
Lambda's 3.13 on arm64).
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement

from bench.report import Figure, print_table
from parley_server.catalogue import FUNCTIONS

__all__ = [
    "LambdaLayout",
    "lambda_layout",
    "main",
    "probe_command",
    "probe_environment",
    "run",
]

ROOT = Path(__file__).resolve().parent.parent
LAMBDAS = ROOT / "lambdas"
PACKAGE = "parley_server"
# What the python3.13 runtime provides (stacks/bundling.py keeps these out of the asset).
RUNTIME_PROVIDED = frozenset(
    {"boto3", "botocore", "s3transfer", "jmespath", "python-dateutil", "six", "urllib3"}
)
_JUNK = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo")

_PROBE = (
    "import time, importlib; t = time.perf_counter(); importlib.import_module({mod!r}); "
    "print(time.perf_counter() - t)"
)


@dataclass(frozen=True)
class LambdaLayout:
    """Directories laid out as Lambda's: the asset (/var/task) and the runtime's boto3."""

    task_root: Path
    runtime: Path


def _name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _asset_distributions(requirements: Path) -> list[importlib.metadata.Distribution]:
    """The installed distributions the asset holds: the requirements and what they
    need (extras followed), less what the runtime provides."""
    wanted = [
        Requirement(line.split("#", 1)[0].strip())
        for line in requirements.read_text().splitlines()
        if line.split("#", 1)[0].strip()
    ]
    found: dict[str, importlib.metadata.Distribution] = {}
    while wanted:
        requirement = wanted.pop()
        name = _name(requirement.name)
        if name in RUNTIME_PROVIDED or name in found:
            continue
        dist = importlib.metadata.distribution(requirement.name)
        found[name] = dist
        for text in dist.requires or ():
            needed = Requirement(text)
            if needed.marker is None or any(
                needed.marker.evaluate({"extra": extra}) for extra in requirement.extras or {""}
            ):
                wanted.append(needed)
    return [found[name] for name in sorted(found)]


def _copy_distribution(dist: importlib.metadata.Distribution, target: Path) -> None:
    """Every file of `dist` under site-packages, without bytecode."""
    for file in dist.files or ():
        if file.parts[0] == ".." or "__pycache__" in file.parts or file.suffix in (".pyc", ".pyo"):
            continue
        source = Path(str(dist.locate_file(file)))
        if source.is_file():
            destination = target / file
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, destination)


def _link_runtime(target: Path) -> None:
    """boto3 and its dependencies, as installed here, each top-level entry linked."""
    for name in sorted(RUNTIME_PROVIDED):
        dist = importlib.metadata.distribution(name)
        tops = {file.parts[0] for file in dist.files or () if file.parts[0] != ".."}
        for top in sorted(tops):
            source = Path(str(dist.locate_file(top)))
            if source.exists() and not (target / top).exists():
                (target / top).symlink_to(source)


@contextmanager
def lambda_layout(requirements: Path = LAMBDAS / "requirements.txt") -> Iterator[LambdaLayout]:
    """A throwaway asset and runtime directory, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="parley-coldstart-") as tmp:
        layout = LambdaLayout(task_root=Path(tmp) / "task", runtime=Path(tmp) / "runtime")
        layout.task_root.mkdir()
        layout.runtime.mkdir()
        for dist in _asset_distributions(requirements):
            _copy_distribution(dist, layout.task_root)
        shutil.copytree(LAMBDAS / PACKAGE, layout.task_root / PACKAGE, ignore=_JUNK)
        _link_runtime(layout.runtime)
        yield layout


def probe_environment(layout: LambdaLayout) -> dict[str, str]:
    """What the interpreter sees: Lambda's variables (those import-time code reads)
    and the ones the stack gives every function. No credentials: nothing is called."""
    return {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": f"{layout.task_root}{os.pathsep}{layout.runtime}",
        "PYTHONDONTWRITEBYTECODE": "1",  # /var/task is read-only
        "PYTHONNOUSERSITE": "1",
        "LAMBDA_TASK_ROOT": str(layout.task_root),
        "LAMBDA_RUNTIME_DIR": str(layout.runtime),
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
        "AWS_LAMBDA_FUNCTION_NAME": "parley-coldstart",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_SERVICE_NAME": "parley",
        "POWERTOOLS_METRICS_NAMESPACE": "Parley",
        "POWERTOOLS_LOG_LEVEL": "INFO",
    }


def probe_command(code: str) -> list[str]:
    """This Python without site-packages (-S): only the layout's directories and the stdlib."""
    return [sys.executable, "-S", "-c", code]


def _import_seconds(module: str, repeats: int, layout: LambdaLayout) -> float:
    samples = []
    for _ in range(repeats):
        out = subprocess.run(
            probe_command(_PROBE.format(mod=module)),
            check=True,
            capture_output=True,
            text=True,
            env=probe_environment(layout),
        )
        samples.append(float(out.stdout.strip().splitlines()[-1]))
    return statistics.median(samples)


def run(quick: bool = False) -> list[Figure]:
    repeats = 2 if quick else 7
    how = (
        f"median of {repeats} fresh interpreters, import only, laid out as Lambda "
        "(asset without bytecode, tracer on)"
    )
    modules = sorted({spec.handler.rsplit(".", 1)[0] for spec in FUNCTIONS})
    with lambda_layout() as layout:
        baseline = _import_seconds("boto3", repeats, layout)
        figures = [Figure("cold start", "bare `import boto3` handler", baseline * 1000, "ms", how)]
        for module in modules:
            seconds = _import_seconds(module, repeats, layout)
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
