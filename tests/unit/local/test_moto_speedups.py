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


def _keys(*more_attributes: dict[str, str]) -> dict[str, Any]:
    """A table keyed by pk (a string) and sk (a number)."""
    return {
        "KeySchema": [
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        "AttributeDefinitions": [
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "N"},
            *more_attributes,
        ],
    }


@pytest.fixture(autouse=True)
def _moto_as_it_was() -> Iterator[None]:
    """Each test here switches between moto as it comes and the faster one; the
    session's other in-process tests run on the faster one (tests/conftest.py), so
    each test leaves moto as it found it."""
    was_applied = moto_speedups.applied()
    yield
    if was_applied:
        moto_speedups.apply()
    else:
        moto_speedups.remove()


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
            **_keys({"AttributeName": "by", "AttributeType": "S"}),
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


# (update expression, names, values, extra arguments) on item pk=u / sk=1 unless the
# extra arguments name another key; each runs twice in a row, so the second meets
# what the first left behind (and the speedups' remembered trees and checks)
UPDATES: list[tuple[str, dict[str, str], dict[str, Any], dict[str, Any]]] = [
    ("SET a = :s", {}, {":s": {"S": "x"}}, {"ReturnValues": "ALL_NEW"}),
    (
        "ADD hits :one SET expires_at = if_not_exists(expires_at, :exp)",
        {},
        {":one": {"N": "1"}, ":room": {"N": "1"}, ":exp": {"N": "100"}},
        {
            "ConditionExpression": "attribute_not_exists(hits) OR hits <= :room",
            "ReturnValues": "UPDATED_NEW",
            "Key": {"pk": {"S": "rate"}, "sk": {"N": "1"}},
        },
    ),
    (
        "SET l = list_append(if_not_exists(l, :e), :l)",
        {},
        {":e": {"L": []}, ":l": {"L": [{"N": "1"}]}},
        {},
    ),
    ("SET m = :m", {}, {":m": {"M": {"a": {"S": "1"}, "b": {"BOOL": True}}}}, {}),
    ("SET m.a = :s, m.c = :n REMOVE m.b", {}, {":s": {"S": "2"}, ":n": {"NULL": True}}, {}),
    ("ADD tags :t", {}, {":t": {"SS": ["x", "y", "z"]}}, {"ReturnValues": "UPDATED_OLD"}),
    ("DELETE tags :t", {}, {":t": {"SS": ["y"]}}, {"ReturnValues": "ALL_OLD"}),
    ("SET n = if_not_exists(n, :zero) + :one", {}, {":zero": {"N": "0"}, ":one": {"N": "2"}}, {}),
    ("SET #k = :s", {"#k": "other"}, {":s": {"B": b"\x00\x01"}}, {"ReturnValues": "ALL_NEW"}),
    ("SET #k = :s", {"#k": "sk"}, {":s": {"N": "3"}}, {}),  # a key attribute: refused
    ("SET #k = :s", {"#k": "other"}, {":s": {"S": "fine again"}}, {}),
    ("SET a = :s SET b = :s", {}, {":s": {"S": "x"}}, {}),  # two SET clauses
    ("SET a = :s, a = :t", {}, {":s": {"S": "x"}, ":t": {"S": "y"}}, {}),  # overlapping
    ("SET a = :missing", {}, {":s": {"S": "x"}}, {}),
    ("ADD a :n", {}, {":n": {"N": "1"}}, {}),  # a is a string
    ("REMOVE gone, a", {}, {}, {"ReturnValues": "ALL_OLD"}),
    ("SET a = b", {}, {}, {}),  # b does not exist
    ("SET a = :s", {}, {":s": {"S": ""}}, {}),
    (
        "SET a = :s",
        {},
        {":s": {"S": "no"}, ":v": {"S": "never"}},
        {"ConditionExpression": "a = :v", "ReturnValuesOnConditionCheckFailure": "ALL_OLD"},
    ),
    ("SET a = :s,", {}, {":s": {"S": "x"}}, {}),  # does not parse
]


def _outcome(method: Any, **arguments: Any) -> Any:
    """A call's answer, or what it was refused with (and the item a failed condition
    returned)."""
    from botocore.exceptions import ClientError

    try:
        answer = method(**arguments)
    except ClientError as exc:
        return exc.response["Error"], exc.response.get("Item")
    except KeyError as exc:  # moto's own lookup of a value the request lacks
        return "KeyError", str(exc)
    answer.pop("ResponseMetadata")
    return answer


def _outcomes(ddb: Any) -> list[Any]:
    from botocore.exceptions import ClientError

    ddb.create_table(TableName="u", **_keys(), BillingMode="PAY_PER_REQUEST")
    outcomes: list[Any] = []
    for expression, names, values, extra in UPDATES * 2:
        call = {"TableName": "u", "Key": {"pk": {"S": "u"}, "sk": {"N": "1"}}, **extra}
        call["UpdateExpression"] = expression
        if names:
            call["ExpressionAttributeNames"] = names
        if values:
            call["ExpressionAttributeValues"] = values
        outcomes.append(_outcome(ddb.update_item, **call, ReturnConsumedCapacity="INDEXES"))
        try:  # and the same update in a transaction
            update = {k: v for k, v in call.items() if not k.startswith("ReturnValues")}
            ddb.transact_write_items(TransactItems=[{"Update": update}])
            outcomes.append("transaction written")
        except ClientError as exc:
            outcomes.append(exc.response["Error"])
    outcomes.append(sorted(ddb.scan(TableName="u")["Items"], key=repr))
    ddb.delete_table(TableName="u")
    return outcomes


def _as_motos_own(outcomes_of: Any, ddb: Any) -> list[Any]:
    """What `outcomes_of(ddb)` gives with moto as it comes, checked to be what it gives
    with the speedups."""
    moto_speedups.remove()
    expected: list[Any] = outcomes_of(ddb)
    moto_speedups.apply()
    assert outcomes_of(ddb) == expected
    return expected


def test_an_update_answers_and_refuses_as_motos_own(table: Any) -> None:
    expected = _as_motos_own(_outcomes, table)
    assert any(isinstance(outcome, tuple) for outcome in expected)  # refusals compared too


def test_an_answer_tries_the_names_moto_would(table: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # the names remembered for a (shape, parent, member) are the ones moto's alias
    # providers give at that very call, every time, across every answer written here
    from moto.core import serialize

    moto_speedups.apply()
    remembered = serialize.XFormedAttributePicker.get_possible_keys
    original = moto_speedups._ORIGINALS["possible_keys"]
    calls: list[tuple[str, ...]] = []
    differing: list[tuple[str, tuple[str, ...], tuple[str, ...]]] = []

    def checked(self: Any, context: Any) -> Any:
        given = tuple(remembered(self, context))
        expected = tuple(original(self, context))
        calls.append(given)
        if given != expected:
            differing.append((context.key, given, expected))
        return iter(given)

    monkeypatch.setattr(serialize.XFormedAttributePicker, "get_possible_keys", checked)
    # every member through the picker (the faster lookup skips it once it knows)
    monkeypatch.setattr(
        serialize.ResponseSerializer, "get_value", moto_speedups._ORIGINALS["get_value"]
    )
    _outcomes(table)
    for query in QUERIES:
        _all_pages(table, query)
    assert len(calls) > 1000
    assert differing == []


def test_an_answer_finds_each_member_as_moto_would(
    table: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # every value the faster member lookup gives, across every answer written here,
    # is the one moto's own picker gives for it
    from moto.core import serialize

    moto_speedups.apply()
    faster = serialize.ResponseSerializer.get_value
    original = moto_speedups._ORIGINALS["get_value"]
    calls = 0
    differing: list[tuple[str, Any, Any]] = []

    def checked(self: Any, value: Any, key: str, shape: Any) -> Any:
        nonlocal calls
        given, expected = faster(self, value, key, shape), original(self, value, key, shape)
        calls += 1
        if given != expected or type(given) is not type(expected):
            differing.append((key, given, expected))
        return given

    monkeypatch.setattr(serialize.ResponseSerializer, "get_value", checked)
    _outcomes(table)
    for query in QUERIES:
        _all_pages(table, query)
    assert calls > 1000
    assert differing == []


def _serialized_query(result: dict[str, Any]) -> Any:
    from moto.core import serialize
    from moto.core.utils import get_service_model

    model = get_service_model("dynamodb").operation_model("Query")
    serializer = serialize.get_serializer_class("dynamodb", "json")(
        operation_model=model, value_picker=serialize.XFormedAttributePicker()
    )
    return serializer.serialize(result)["body"]


def test_a_member_found_under_another_of_its_names_is_written_as_moto_writes_it() -> None:
    # moto's picker also finds a member under its snake_case name: the faster lookup
    # tries the same names in the same order, once it has learnt them
    result = {
        "items": [{"pk": {"S": "a"}, "n": {"N": "1"}}],
        "count": 1,
        "last_evaluated_key": {"pk": {"S": "a"}},
        "ScannedCount": 1,
    }
    moto_speedups.remove()
    expected = _serialized_query(result)
    assert '"LastEvaluatedKey"' in expected
    moto_speedups.apply()
    try:
        assert [_serialized_query(result) for _ in range(3)] == [expected] * 3
    finally:
        moto_speedups.remove()


# (call, arguments) on table "c" (items pk=c / sk=0..5, n = sk), each run in three
# rounds whose values differ (round r adds r to every number): the remembered tree of
# an earlier round must take each round's own values
_TWO = {":two": {"N": "2"}}
CONDITIONS: list[tuple[str, dict[str, Any]]] = [
    (
        "put_item",
        {
            "Item": {"pk": {"S": "c"}, "sk": {"N": "1"}, "n": {"N": "9"}},
            "ConditionExpression": "attribute_not_exists(sk) OR n <= :now",
            "ExpressionAttributeValues": {":now": {"N": "1"}},
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        },
    ),
    (
        "delete_item",
        {
            "Key": {"pk": {"S": "c"}, "sk": {"N": "2"}},
            "ConditionExpression": "#n BETWEEN :lo AND :hi AND NOT begins_with(pk, :p)",
            "ExpressionAttributeNames": {"#n": "n"},
            "ExpressionAttributeValues": {":lo": {"N": "3"}, ":hi": {"N": "4"}, ":p": {"S": "x"}},
            "ReturnValues": "ALL_OLD",
        },
    ),
    (
        "query",
        {
            "KeyConditionExpression": "pk = :pk",
            "FilterExpression": "n > :now OR n IN (:a, :b)",
            "ExpressionAttributeValues": {
                ":pk": {"S": "c"},
                ":now": {"N": "3"},
                ":a": {"N": "0"},
                ":b": {"N": "1"},
            },
        },
    ),
    (
        "scan",
        {
            "FilterExpression": "size(pk) = :one AND (n < :now)",
            "ExpressionAttributeValues": {":one": {"N": "1"}, ":now": {"N": "2"}},
        },
    ),
    (  # the same expression with the other names: another tree
        "scan",
        {
            "FilterExpression": "#k < :now",
            "ExpressionAttributeNames": {"#k": "sk"},
            "ExpressionAttributeValues": {":now": {"N": "2"}},
        },
    ),
    (
        "scan",
        {
            "FilterExpression": "#k < :now",
            "ExpressionAttributeNames": {"#k": "n"},
            "ExpressionAttributeValues": {":now": {"N": "1"}},
        },
    ),
    (  # a value the request lacks, once the expression is known: refused
        "query",
        {
            "KeyConditionExpression": "pk = :pk",
            "FilterExpression": "n > :now OR n IN (:a, :b)",
            "ExpressionAttributeValues": {":pk": {"S": "c"}, ":now": {"N": "3"}, ":a": {"N": "0"}},
        },
    ),
    (  # a value no expression uses: refused
        "scan",
        {
            "FilterExpression": "n < :now",
            "ExpressionAttributeValues": {":now": {"N": "2"}, ":spare": {"N": "2"}},
        },
    ),
    ("scan", {"FilterExpression": "n < :two AND", "ExpressionAttributeValues": _TWO}),  # syntax
    ("scan", {"FilterExpression": "size = :two", "ExpressionAttributeValues": _TWO}),  # keyword
    ("scan", {"FilterExpression": "#m < :two", "ExpressionAttributeValues": _TWO}),  # no #m
]


def _shifted(value: Any, by: int) -> Any:
    if isinstance(value, dict):
        return {k: str(int(v) + by) if k == "N" else _shifted(v, by) for k, v in value.items()}
    return value


def _condition_outcomes(ddb: Any) -> list[Any]:

    ddb.create_table(TableName="c", **_keys(), BillingMode="PAY_PER_REQUEST")
    outcomes: list[Any] = []
    for by in range(3):
        for n in range(6):
            item = {"pk": {"S": "c"}, "sk": {"N": str(n)}, "n": {"N": str(n)}}
            ddb.put_item(TableName="c", Item=item)
        for call, arguments in CONDITIONS:
            arguments = dict(arguments)
            if "ExpressionAttributeValues" in arguments:
                arguments["ExpressionAttributeValues"] = _shifted(
                    arguments["ExpressionAttributeValues"], by
                )
            outcomes.append(_outcome(getattr(ddb, call), TableName="c", **arguments))
    ddb.delete_table(TableName="c")
    return outcomes


def test_a_condition_or_filter_answers_and_refuses_as_motos_own(table: Any) -> None:
    expected = _as_motos_own(_condition_outcomes, table)
    refused = [outcome for outcome in expected if isinstance(outcome, tuple)]
    assert len(refused) >= 5 * 3  # the refusals are compared too
    rounds = [expected[i : i + len(CONDITIONS)] for i in range(0, len(expected), len(CONDITIONS))]
    assert rounds[0] != rounds[1] != rounds[2]  # each round's values decided its answers
