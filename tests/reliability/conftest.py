"""The reliability and security suites (issue 9): attacks, fuzzing, dependency
faults and chaos delivery.

Sizes: every suite runs at a size that fits CI in `make test`; `make soak`
(PARLEY_SOAK=1, `pytest -m soak`) runs the scaled-up versions, which are marked
`soak`. Outside a soak run those are deselected here, never skipped, so a
normal run reports nothing about them. Tests that start a local stack are
marked `e2e`, like tests/e2e.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.reliability.stack import SUITES_IDLE_TIMEOUT_S, Stack, running_stack

HERE = Path(__file__).resolve().parent

SOAK = os.environ.get("PARLEY_SOAK") == "1"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    kept: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        mine = HERE in Path(str(item.fspath)).resolve().parents
        if mine and item.get_closest_marker("soak") is not None and not SOAK:
            dropped.append(item)
            continue
        if mine and "stack" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.e2e)
        kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A local stack of the suites' own (not the e2e one): WebSocket connections go
    idle after 2 s, so slow and idle clients are cut off within a test."""
    directory = tmp_path_factory.mktemp("reliability-stack")
    with running_stack(directory, idle_timeout_s=SUITES_IDLE_TIMEOUT_S) as s:
        yield s
