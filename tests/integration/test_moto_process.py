"""moto in its own process (local/moto_process.py), driven as the stack drives it:
started with the stack's resources in it, answering the state's and the sinks'
calls, saying plainly when a call fails or it cannot start, and gone at stop."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from local.moto_process import MotoProcess, MotoProcessFailed, local_aws, settings_of
from local.state import LocalState
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


def test_a_state_saved_from_one_moto_process_comes_back_in_the_next(tmp_path: Path) -> None:
    """What the stack's process saves through the handle (LocalState.flush) and puts
    back into a fresh moto process (LocalState.restore): items, the fan-out queue's
    waiting jobs, push endpoints and the signing secret."""
    state_dir = tmp_path / "state"
    first, ready = MotoProcess.start("127.0.0.1", REGION, quiet=True)
    try:
        aws = local_aws(first, ready, REGION)
        state = LocalState(state_dir)
        assert state.restore(aws, first) is None  # nothing saved yet
        item = {"pk": {"S": "USER#kept"}, "sk": {"S": "PROFILE"}}
        _client(first, "dynamodb").put_item(TableName=aws.settings[Setting.USERS_TABLE], Item=item)
        _client(first, "sqs").send_message(
            QueueUrl=aws.fanout_queue[0],
            MessageBody="job-1",
            MessageGroupId="g",
            MessageDeduplicationId="d-1",
        )
        endpoint = _client(first, "sns").create_platform_endpoint(
            PlatformApplicationArn=aws.push_apps["fcm"], Token="phone-token"
        )["EndpointArn"]
        secret = _client(first, "secretsmanager").get_secret_value(
            SecretId=aws.settings[Setting.SIGNING_SECRET_ARN]
        )["SecretString"]
        assert state.flush()
        assert not state.flush()  # nothing changed since: no second write
        state.close()
    finally:
        first.stop()

    second, ready = MotoProcess.start("127.0.0.1", REGION, quiet=True)
    try:
        aws = local_aws(second, ready, REGION)
        state = LocalState(state_dir)
        summary = state.restore(aws, second)
        state.close()
        assert summary is not None
        assert summary.accounts == 1
        users = _client(second, "dynamodb").scan(TableName=aws.settings[Setting.USERS_TABLE])
        assert users["Items"] == [item]
        jobs = _client(second, "sqs").receive_message(QueueUrl=aws.fanout_queue[0])
        assert [m["Body"] for m in jobs["Messages"]] == ["job-1"]
        endpoints = _client(second, "sns").list_endpoints_by_platform_application(
            PlatformApplicationArn=aws.push_apps["fcm"]
        )["Endpoints"]
        assert [(e["EndpointArn"], e["Attributes"]["Token"]) for e in endpoints] == [
            (endpoint, "phone-token")
        ]
        restored = _client(second, "secretsmanager").get_secret_value(
            SecretId=aws.settings[Setting.SIGNING_SECRET_ARN]
        )["SecretString"]
        assert restored == secret
    finally:
        second.stop()
