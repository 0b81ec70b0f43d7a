"""local/moto_speedups.py: a Query reads only what it can match, and answers
exactly what moto's own Query answers (table and index, either direction, paged);
moto keeps no object that nothing uses any more."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from local import moto_speedups


@pytest.fixture
def table() -> Iterator[Any]:
    with mock_aws():
        ddb = boto3.client(
            "dynamodb",
            region_name="us-east-1",
            aws_access_key_id="x",
            aws_secret_access_key="x",
        )
        ddb.create_table(
            TableName="t",
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "N"},
                {"AttributeName": "by", "AttributeType": "S"},
            ],
            GlobalSecondaryIndexes=[
                {
                    "IndexName": "by_by",
                    "KeySchema": [
                        {"AttributeName": "by", "KeyType": "HASH"},
                        {"AttributeName": "sk", "KeyType": "RANGE"},
                    ],
                    "Projection": {"ProjectionType": "ALL"},
                }
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        for n in range(60):
            item = {"pk": {"S": f"p{n % 4}"}, "sk": {"N": str((n * 37) % 100)}}
            if n % 3:
                item["by"] = {"S": f"b{n % 2}"}
            ddb.put_item(TableName="t", Item=item)
        yield ddb
        moto_speedups.remove()


QUERIES: list[dict[str, Any]] = [
    {"KeyConditionExpression": "pk = :v", "ExpressionAttributeValues": {":v": {"S": "p1"}}},
    {
        "KeyConditionExpression": "pk = :v AND sk > :s",
        "ExpressionAttributeValues": {":v": {"S": "p2"}, ":s": {"N": "30"}},
        "ScanIndexForward": False,
    },
    {"KeyConditionExpression": "pk = :v", "ExpressionAttributeValues": {":v": {"S": "p9"}}},
    {
        "IndexName": "by_by",
        "KeyConditionExpression": "#b = :v",
        "ExpressionAttributeNames": {"#b": "by"},
        "ExpressionAttributeValues": {":v": {"S": "b1"}},
    },
]


def _all_pages(ddb: Any, query: dict[str, Any]) -> list[list[dict[str, Any]]]:
    pages: list[list[dict[str, Any]]] = []
    start = None
    while True:
        extra: dict[str, Any] = {"ExclusiveStartKey": start} if start else {}
        answer = ddb.query(TableName="t", Limit=4, **query, **extra)
        pages.append(answer["Items"])
        start = answer.get("LastEvaluatedKey")
        if not start:
            return pages


@pytest.mark.parametrize("query", QUERIES)
def test_a_query_answers_as_motos_own(table: Any, query: dict[str, Any]) -> None:
    moto_speedups.remove()
    expected = _all_pages(table, query)
    moto_speedups.apply()
    assert _all_pages(table, query) == expected


def test_moto_keeps_no_item_that_no_table_holds(table: Any) -> None:
    # moto itself keeps every item it ever made (writes, the copies updates make, the
    # tables a transaction copies to roll back): a long-running stack grew by millions
    from moto.dynamodb.models import dynamodb_backends
    from moto.dynamodb.models.dynamo_type import Item

    moto_speedups.apply()
    for n in range(20):
        item = {"pk": {"S": "tx"}, "sk": {"N": str(n)}}
        table.transact_write_items(TransactItems=[{"Put": {"TableName": "t", "Item": item}}])
        table.update_item(
            TableName="t",
            Key={"pk": {"S": "p1"}, "sk": {"N": str((1 * 37) % 100)}},
            UpdateExpression="SET n = :n",
            ExpressionAttributeValues={":n": {"N": str(n)}},
        )
    stored = dynamodb_backends["123456789012"]["us-east-1"].tables["t"].items
    held = sum(len(partition) for partition in stored.values())
    gc.collect()
    alive = [obj for obj in gc.get_objects() if isinstance(obj, Item)]
    assert held == 60 + 20
    assert len(alive) == held  # moto's own: 60 + 20 + a copy of the table per transaction
