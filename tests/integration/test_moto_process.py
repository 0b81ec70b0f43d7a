"""moto in its own process (local/moto_process.py), driven as the stack drives it:
started with the stack's resources in it, answering the state's and the sinks'
calls, saying plainly when a call fails or it cannot start, and gone at stop."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from local.moto_process import MotoProcess, MotoProcessFailed, settings_of
from parley_server.catalogue import Setting

REGION = "us-east-1"


@pytest.fixture(scope="module")
def moto() -> Iterator[tuple[MotoProcess, dict[str, object]]]:
    process, ready = MotoProcess.start("127.0.0.1", REGION, quiet=True)
    try:
        yield process, ready
    finally:
        process.stop()


def _client(moto: MotoProcess, service: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=moto.endpoint_url,
        region_name=REGION,
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )


def test_it_starts_with_every_resource_and_counts_only_changing_calls(
    moto: tuple[MotoProcess, dict[str, object]], tmp_path: Path
) -> None:
    process, ready = moto
    settings = settings_of(ready)
    users = settings[Setting.USERS_TABLE]
    ddb = _client(process, "dynamodb")
    assert users in ddb.list_tables()["TableNames"]

    before = process.changes()
    ddb.get_item(TableName=users, Key={"pk": {"S": "USER#a"}, "sk": {"S": "PROFILE"}})
    assert process.changes() == before
    item = {"pk": {"S": "USER#a"}, "sk": {"S": "PROFILE"}, "blob": {"B": b"\x00\xff"}}
    ddb.put_item(TableName=users, Item=item)
    assert process.changes() == before + 1

    captured = process.capture(tmp_path / "objects")
    assert captured["changes"] == before + 1
    assert {"pk": {"S": "USER#a"}, "sk": {"S": "PROFILE"}, "blob": {"B": "AP8="}} in captured[
        "tables"
    ]["Users"]
    assert set(captured) == {"changes", "tables", "objects", "push_endpoints", "queues", "sinks"}


def test_the_sinks_are_read_in_its_process(moto: tuple[MotoProcess, dict[str, object]]) -> None:
    process, _ = moto
    sns = _client(process, "sns")
    sns.publish(PhoneNumber="+12065550123", Message="Your code is 123456")
    (sms,) = [r for r in process.sms() if r["phone"] == "+12065550123"]
    assert sms["message"] == "Your code is 123456"
    assert process.push() == []


def test_a_call_that_fails_says_why(
    moto: tuple[MotoProcess, dict[str, object]], tmp_path: Path
) -> None:
    process, _ = moto
    before = process.capture(tmp_path)["tables"]
    with pytest.raises(MotoProcessFailed, match=r"500.*NoSuchTable"):
        process.restore({"tables": {"NoSuchTable": [{"pk": {"S": "x"}}]}}, tmp_path)
    assert process.capture(tmp_path)["tables"] == before
    with pytest.raises(MotoProcessFailed, match="404"):
        process._call("GET", "/_local/nothing-here")


def test_one_that_cannot_start_says_so() -> None:
    with pytest.raises(MotoProcessFailed, match=r"exited \(1\) before it was ready"):
        MotoProcess.start("no-such-host.invalid", REGION, quiet=True)


def test_stop_ends_it_and_its_server() -> None:
    process, _ = MotoProcess.start("127.0.0.1", REGION, quiet=True)
    assert process.changes() >= 0
    process.stop()
    assert process.process.returncode == 0
    with pytest.raises(ConnectionRefusedError):
        process.changes()
