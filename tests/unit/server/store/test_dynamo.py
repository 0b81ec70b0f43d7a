"""The DynamoDB calls every store shares: a Query read to its last page, and batch
reads and writes asked again for what DynamoDB left unprocessed, until done or
until the store's rounds run out. A stand-in client answers as DynamoDB can."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from parley_server.models.errors import DependencyUnavailable
from parley_server.store.dynamo import Retry, batch_get, batch_write, query_pages

RETRY = Retry(3, "store unavailable", "store is throttling")


def _key(n: int) -> dict[str, Any]:
    return {"pk": {"S": f"k{n}"}}


class PartialDynamo:
    """Processes at most `per_call` keys or writes of each call; the rest come back
    unprocessed. Records every request."""

    def __init__(self, per_call: int, *, existing: set[str] | None = None) -> None:
        self.per_call = per_call
        self.existing = existing
        self.calls: list[dict[str, Any]] = []

    def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(RequestItems)
        ((table, request),) = RequestItems.items()
        keys = request["Keys"]
        done, left = keys[: self.per_call], keys[self.per_call :]
        found = [k for k in done if self.existing is None or k["pk"]["S"] in self.existing]
        answer: dict[str, Any] = {"Responses": {table: found}}
        if left:
            answer["UnprocessedKeys"] = {table: {**request, "Keys": left}}
        return answer

    def batch_write_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(RequestItems)
        ((table, requests),) = RequestItems.items()
        left = requests[self.per_call :]
        return {"UnprocessedItems": {table: left}} if left else {}


def test_a_batch_read_asks_again_for_unprocessed_keys_and_keeps_its_options() -> None:
    dynamo = PartialDynamo(per_call=2, existing={"k0", "k2", "k3"})
    items = batch_get(dynamo, "t", [_key(n) for n in range(5)], RETRY, ConsistentRead=True)
    assert items == [_key(0), _key(2), _key(3)]
    assert len(dynamo.calls) == 3
    assert all(call["t"]["ConsistentRead"] is True for call in dynamo.calls)


def test_a_batch_read_still_unfinished_after_its_rounds_is_a_throttling_error() -> None:
    dynamo = PartialDynamo(per_call=1)
    with pytest.raises(DependencyUnavailable, match="store is throttling"):
        batch_get(dynamo, "t", [_key(n) for n in range(5)], RETRY)
    assert len(dynamo.calls) == RETRY.rounds


def test_batches_are_cut_at_dynamodbs_limits() -> None:
    reader = PartialDynamo(per_call=100)
    assert len(batch_get(reader, "t", [_key(n) for n in range(250)], RETRY)) == 250
    assert [len(call["t"]["Keys"]) for call in reader.calls] == [100, 100, 50]
    writer = PartialDynamo(per_call=25)
    puts = [{"PutRequest": {"Item": _key(n)}} for n in range(60)]
    assert batch_write(writer, "t", puts, RETRY) == 3
    assert [len(call["t"]) for call in writer.calls] == [25, 25, 10]


def test_a_batch_write_counts_every_call_including_the_retries() -> None:
    dynamo = PartialDynamo(per_call=10)
    puts = [{"PutRequest": {"Item": _key(n)}} for n in range(25)]
    assert batch_write(dynamo, "t", puts, RETRY) == 3
    assert [len(call["t"]) for call in dynamo.calls] == [25, 15, 5]
    with pytest.raises(DependencyUnavailable, match="store is throttling"):
        batch_write(PartialDynamo(per_call=5), "t", puts, RETRY)


class Failing:
    def __getattr__(self, name: str) -> Any:
        def fail(**_: Any) -> Any:
            raise ClientError({"Error": {"Code": "InternalServerError"}}, name)

        return fail


def test_a_failed_call_is_the_stores_unavailable_error() -> None:
    with pytest.raises(DependencyUnavailable, match="store unavailable"):
        batch_get(Failing(), "t", [_key(0)], RETRY)
    with pytest.raises(DependencyUnavailable, match="store unavailable"):
        batch_write(Failing(), "t", [{"PutRequest": {"Item": _key(0)}}], RETRY)
    with pytest.raises(DependencyUnavailable, match="query unavailable"):
        list(query_pages(Failing(), {"TableName": "t"}, "query unavailable"))


class Paged:
    """A Query whose answer comes in pages of two items."""

    def __init__(self, items: int) -> None:
        self.items = [_key(n) for n in range(items)]
        self.requests: list[dict[str, Any]] = []

    def query(self, **kwargs: Any) -> dict[str, Any]:
        self.requests.append(kwargs)
        start = int(kwargs.get("ExclusiveStartKey", {}).get("n", 0))
        page: dict[str, Any] = {"Items": self.items[start : start + 2]}
        if start + 2 < len(self.items):
            page["LastEvaluatedKey"] = {"n": start + 2}
        return page


def test_query_pages_follow_the_last_evaluated_key_to_the_end() -> None:
    dynamo = Paged(items=5)
    request = {"TableName": "t", "KeyConditionExpression": "pk = :p"}
    pages = list(query_pages(dynamo, request, "unavailable"))
    assert [item for page in pages for item in page["Items"]] == dynamo.items
    assert [r.get("ExclusiveStartKey") for r in dynamo.requests] == [None, {"n": 2}, {"n": 4}]
    assert all(r["KeyConditionExpression"] == "pk = :p" for r in dynamo.requests)
    assert "ExclusiveStartKey" not in request  # the caller's request is left as it was
