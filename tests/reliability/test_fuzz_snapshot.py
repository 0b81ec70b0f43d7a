"""The fuzz suites' snapshot (read from moto's backends, not through boto3) sees
every kind of change a refused request must not make, and ignores only what it
is told to."""

from __future__ import annotations

import pytest

from parley_server.catalogue import Setting
from parley_server.store.schema import TABLES
from tests.conftest import FakeAws
from tests.reliability.fuzzing import _SNAPSHOT_TABLES, snapshot


def _item(setting: Setting) -> dict[str, dict[str, str]]:
    (spec,) = [t for t in TABLES if t.setting == setting]
    item = {spec.partition.name: {"S": "p"}}
    if spec.sort is not None:
        item[spec.sort.name] = {"S": "s"}
    for index in spec.indexes:
        item[index.sort.name] = {"S": "i"}
        if index.partition is not None:
            item[index.partition.name] = {"S": "m"}
    return item


@pytest.mark.parametrize("setting", _SNAPSHOT_TABLES, ids=lambda s: s.value)
def test_an_item_written_or_changed_in_any_table_is_seen(aws: FakeAws, setting: Setting) -> None:
    ddb = aws.client("dynamodb")
    before = snapshot(aws)
    ddb.put_item(TableName=aws.settings[setting], Item=_item(setting))
    written = snapshot(aws)
    assert written != before
    ddb.put_item(TableName=aws.settings[setting], Item={**_item(setting), "n": {"N": "1"}})
    assert snapshot(aws) != written


def test_an_ignored_attribute_is_the_only_change_left_out(aws: FakeAws) -> None:
    ddb = aws.client("dynamodb")
    table = aws.settings[Setting.OTP_TABLE]
    ignore = frozenset({(Setting.OTP_TABLE, "attempts")})
    ddb.put_item(TableName=table, Item={"phone": {"S": "+1"}, "attempts": {"N": "0"}})
    before = snapshot(aws, ignore=ignore)
    ddb.put_item(TableName=table, Item={"phone": {"S": "+1"}, "attempts": {"N": "1"}})
    assert snapshot(aws, ignore=ignore) == before
    ddb.put_item(TableName=table, Item={"phone": {"S": "+2"}, "attempts": {"N": "1"}})
    assert snapshot(aws, ignore=ignore) != before


def test_a_text_sent_or_an_object_stored_is_seen(aws: FakeAws) -> None:
    before = snapshot(aws)
    aws.client("sns").publish(PhoneNumber="+14155552671", Message="Your Parley code is 1")
    texted = snapshot(aws)
    assert texted != before
    aws.client("s3").put_object(Bucket=aws.settings[Setting.MEDIA_BUCKET], Key="m/x", Body=b"1")
    assert snapshot(aws) != texted
