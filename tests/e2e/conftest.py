"""End-to-end tests run against the local stack, started once per session.

`python -m local --port 0` runs as a subprocess: moto's in-process mock (the
unit tests' `aws` fixture) and an in-process moto server share global state,
so the stack must never run inside the pytest process. Every test here is
marked `e2e`; a failing one shows the stack's output with its report.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0


@dataclass
class LocalStack:
    """A running local stack: its endpoints (as written to its endpoints file)."""

    http_url: str
    ws_url: str
    sms_url: str
    push_url: str
    region: str
    aws_endpoint_url: str
    local_file: Path
    log_file: Path
    process: subprocess.Popen[bytes]

    def output(self) -> str:
        """Everything the stack has printed so far."""
        return self.log_file.read_text(errors="replace")


def _environment(local_file: Path) -> dict[str, str]:
    env = dict(os.environ)
    # the stack points AWS at its own moto; nothing of this process's may leak in
    for key in list(env):
        if key.startswith(("AWS_", "PARLEY_")):
            del env[key]
    env["PARLEY_LOCAL_FILE"] = str(local_file)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def stop(process: subprocess.Popen[bytes]) -> int:
    """SIGTERM, as Ctrl-C or a supervisor would; the exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


@contextmanager
def start_local_stack(directory: Path, *args: str) -> Iterator[LocalStack]:
    """`python -m local --port 0 …` in a subprocess, until it has written its
    endpoints file; stopped (SIGTERM) on exit."""
    local_file = directory / "local.json"
    log_file = directory / "local-stack.log"
    with log_file.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "local", "--port", "0", *args],
            cwd=ROOT,
            env=_environment(local_file),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not local_file.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                stop(process)
                pytest.fail(
                    "the local stack did not start:\n" + log_file.read_text(errors="replace"),
                    pytrace=False,
                )
            time.sleep(0.05)
        endpoints: dict[str, Any] = json.loads(local_file.read_text())
        yield LocalStack(
            http_url=endpoints["http_url"],
            ws_url=endpoints["ws_url"],
            sms_url=endpoints["sms_url"],
            push_url=endpoints["push_url"],
            region=endpoints["region"],
            aws_endpoint_url=endpoints["aws_endpoint_url"],
            local_file=local_file,
            log_file=log_file,
            process=process,
        )
    finally:
        stop(process)


_STACKS: list[LocalStack] = []


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """The whole service on loopback, once per session (see start_local_stack)."""
    with start_local_stack(tmp_path_factory.mktemp("local-stack")) as stack:
        _STACKS.append(stack)
        yield stack
        _STACKS.remove(stack)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.e2e)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.failed and _STACKS and HERE in Path(str(item.fspath)).resolve().parents:
        output = _STACKS[-1].output()
        report.sections.append(("local stack output (last 200 lines)", _tail(output, 200)))
    return report


def _tail(text: str, lines: int) -> str:
    return "\n".join(text.splitlines()[-lines:])
