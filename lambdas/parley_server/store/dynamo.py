"""DynamoDB calls the stores make the same way: every page of a Query, and batch
reads and writes asked again for whatever DynamoDB left unprocessed.

BatchGetItem and BatchWriteItem may process only part of a request (throttling,
the 16 MB answer limit) and say what is left in UnprocessedKeys/UnprocessedItems;
a batch is done only when nothing is left. Each store says how often it asks
again and what it answers when it gives up (`Retry`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import msgspec
from botocore.exceptions import ClientError

from parley_server.models.errors import DependencyUnavailable

__all__ = [
    "BATCH_GET_MAX",
    "BATCH_WRITE_MAX",
    "Retry",
    "backoff",
    "batch_get",
    "batch_write",
    "query_pages",
]

BATCH_GET_MAX = 100  # DynamoDB's limit on one BatchGetItem
BATCH_WRITE_MAX = 25  # DynamoDB's limit on one BatchWriteItem


class Retry(msgspec.Struct, frozen=True):
    """How many calls a batch may take, with or without a growing pause between
    them, and the DependencyUnavailable messages for a failed call and for a batch
    still unfinished after them."""

    rounds: int
    unavailable: str
    throttled: str
    backoff: bool = False


def backoff(round_: int) -> None:
    """The pause before call number `round_` (none before the first)."""
    if round_:
        time.sleep(min(0.05 * 2**round_, 0.5))


def query_pages(
    dynamodb: Any, request: Mapping[str, Any], unavailable: str
) -> Iterator[dict[str, Any]]:
    """Every page of one Query, following LastEvaluatedKey; a failed call is a
    DependencyUnavailable(`unavailable`)."""
    kwargs = dict(request)
    while True:
        try:
            page: dict[str, Any] = dynamodb.query(**kwargs)
        except ClientError as exc:
            raise DependencyUnavailable(unavailable) from exc
        yield page
        if "LastEvaluatedKey" not in page:
            return
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def batch_get(
    dynamodb: Any,
    table: str,
    keys: Sequence[Mapping[str, Any]],
    retry: Retry,
    **options: Any,
) -> list[dict[str, Any]]:
    """The items of `table` that `keys` name (those that exist), BATCH_GET_MAX keys a
    call; `options` (ConsistentRead, ProjectionExpression, ...) go with each."""
    items: list[dict[str, Any]] = []
    for start in range(0, len(keys), BATCH_GET_MAX):
        request: dict[str, Any] = {
            table: {"Keys": list(keys[start : start + BATCH_GET_MAX]), **options}
        }
        for answer in _until_processed(
            lambda r: dynamodb.batch_get_item(RequestItems=r), request, "UnprocessedKeys", retry
        ):
            items.extend(answer.get("Responses", {}).get(table, []))
    return items


def batch_write(
    dynamodb: Any, table: str, requests: Sequence[Mapping[str, Any]], retry: Retry
) -> int:
    """Every put or delete request for `table`, BATCH_WRITE_MAX a call; the number of
    calls it took."""
    calls = 0
    for start in range(0, len(requests), BATCH_WRITE_MAX):
        pending: dict[str, Any] = {table: list(requests[start : start + BATCH_WRITE_MAX])}
        for _ in _until_processed(
            lambda r: dynamodb.batch_write_item(RequestItems=r), pending, "UnprocessedItems", retry
        ):
            calls += 1
    return calls


def _until_processed(
    call: Callable[[dict[str, Any]], Any], request: dict[str, Any], unprocessed: str, retry: Retry
) -> Iterator[dict[str, Any]]:
    """Each answer to `call`, asked again with what it left `unprocessed` until nothing is."""
    for round_ in range(retry.rounds):
        if retry.backoff:
            backoff(round_)
        try:
            answer: dict[str, Any] = call(request)
        except ClientError as exc:
            raise DependencyUnavailable(retry.unavailable) from exc
        yield answer
        request = answer.get(unprocessed) or {}
        if not request:
            return
    raise DependencyUnavailable(retry.throttled)
