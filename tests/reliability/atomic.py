"""Concurrency against moto as DynamoDB would behave.

DynamoDB applies each request atomically: a conditional write is checked and
applied as one step, whoever else is writing. moto's in-process backend runs a
conditional write as several Python steps with no lock, so two threads can both
pass a condition that only one could pass on AWS. `AtomicClient` gives back that
one guarantee (each request is atomic) and nothing more: requests from
different threads still interleave freely between each other, which is what
the suites test.

Concurrent requests to a Lambda function run in separate environments, each
with module state of its own; in one process they are threads that each build
their own adapters over an `AtomicClient`, calling what the handler calls.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

__all__ = ["AtomicClient"]

_REQUESTS = threading.RLock()


class AtomicClient:
    """A boto3 client whose every request holds one process-wide lock."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        found = getattr(self._client, name)
        if name.startswith("_") or not callable(found):
            return found

        def atomic(*args: Any, **kwargs: Any) -> Any:
            with _REQUESTS:
                return found(*args, **kwargs)

        return atomic


def run_together(calls: list[Callable[[], Any]], threads: int = 8) -> list[Any]:
    """Run every call on its own thread, released together; their results in order."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(index: int) -> None:
        barrier.wait()
        try:
            results[index] = calls[index]()
        except Exception as exc:  # the caller inspects what each one raised
            results[index] = exc

    workers = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return results
