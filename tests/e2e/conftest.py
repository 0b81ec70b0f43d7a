"""End-to-end tests run against the local stack, started once per session.

`python -m local --port 0` runs as a subprocess: moto's in-process mock (the
unit tests' `aws` fixture) and an in-process moto server share global state,
so the stack must never run inside the pytest process. Every test here is
marked `e2e`; a failing one shows the stack's output with its report.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest

from local.testing import LocalStack, StackDidNotStart, running_local_stack, stop

# LocalStack and stop too: the suites that run stacks of their own import them from here
__all__ = ["ROOT", "LocalStack", "start_local_stack", "stop"]

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent


@contextmanager
def start_local_stack(
    directory: Path, *args: str, env: Mapping[str, str] | None = None, new_session: bool = False
) -> Iterator[LocalStack]:
    """`python -m local --port 0 …` in a subprocess (`env` added to its
    environment), until it has written its endpoints file; stopped (SIGTERM) on
    exit. A stack that does not start fails the test with its output."""
    with ExitStack() as started:
        try:
            stack = started.enter_context(
                running_local_stack(
                    directory,
                    *args,
                    env={"PYTHONUNBUFFERED": "1", **(env or {})},
                    new_session=new_session,
                )
            )
        except StackDidNotStart as failed:
            pytest.fail(str(failed), pytrace=False)
        yield stack


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
