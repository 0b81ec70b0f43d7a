"""local/state.py without a stack: DynamoDB items survive the JSON round trip with
every type, expired items are swept, a state that cannot be loaded is refused in
plain words, the lock keeps a second user out, `reset` asks first, and the tests'
stacks never use the developer's state."""

from __future__ import annotations

import json
import os
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from local.state import (
    FORMAT,
    STATE_FILE,
    LocalState,
    StateRefused,
    _may_change,
    item_from_json,
    item_to_json,
    read_state,
    reset,
    reset_command,
    state_dir,
    sweep_expired,
)
from local.testing import stack_environment
from parley_server.catalogue import Setting
from parley_server.store.schema import TABLES
from tests.conftest import FakeAws

NOW = 1_800_000_000

EVERY_TYPE: dict[str, Any] = {
    "pk": "USER#1",
    "sk": "PROFILE",
    "text": "héllo",
    "number": Decimal("12.5"),
    "big": Decimal("123456789012345678901234567890"),
    "blob": b"\x00\xffbinary\x80",
    "empty_blob": b"",
    "flag": True,
    "nothing": None,
    "strings": {"a", "b"},
    "numbers": {Decimal(1), Decimal("2.25")},
    "blobs": {b"\x01", b"\x02\x03"},
    "list": ["x", Decimal(3), b"\x04", [True, None], {"inner": b"\x05"}],
    "map": {"nested": {"deeper": {"blob": b"\x06", "set": {"s"}, "n": Decimal(-7)}}},
    "expires_at": Decimal(NOW + 60),
}


def test_every_attribute_type_survives_the_round_trip_through_json(aws: FakeAws) -> None:
    """Captured from moto's table, written as JSON, read back, put into an empty table:
    the item read through the API is the very item that was written."""
    from moto.dynamodb.models import dynamodb_backends

    from local.resources import ACCOUNT_ID
    from tests.conftest import REGION

    ddb = aws.boto.resource("dynamodb", region_name=REGION)
    table = ddb.Table(aws.settings[Setting.USERS_TABLE])
    table.put_item(Item=EVERY_TYPE)
    backend = dynamodb_backends[ACCOUNT_ID][REGION]
    (item,) = backend.get_table(table.name).all_items()

    saved = json.loads(json.dumps(item_to_json(item)))  # as the state file holds it
    assert saved["blob"] == {"B": "AP9iaW5hcnmA"}
    assert sorted(saved["blobs"]["BS"]) == ["AQ==", "AgM="]
    table.delete_item(Key={"pk": "USER#1", "sk": "PROFILE"})
    assert "Item" not in table.get_item(Key={"pk": "USER#1", "sk": "PROFILE"})

    backend.get_table(table.name).put_item(item_from_json(saved))

    got = table.get_item(Key={"pk": "USER#1", "sk": "PROFILE"}, ConsistentRead=True)["Item"]
    assert _plain(got) == _plain(EVERY_TYPE)
    # and a second capture is the same JSON
    (again,) = backend.get_table(table.name).all_items()
    assert json.loads(json.dumps(item_to_json(again))) == saved


def _plain(value: Any) -> Any:
    """boto3's Binary wrappers as bytes, to compare with what was put."""
    from boto3.dynamodb.types import Binary

    if isinstance(value, Binary):
        return bytes(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, set):
        return {_plain(v) for v in value}
    return value


def test_items_whose_ttl_has_passed_are_swept_and_the_rest_kept_exactly() -> None:
    ttl_tables = {spec.id for spec in TABLES if spec.ttl_attribute}
    assert {"Mailbox", "Otp", "Users"} <= ttl_tables
    assert "Prekeys" not in ttl_tables
    live = {"device": {"S": "a"}, "sk": {"S": "1"}, "expires_at": {"N": str(NOW + 1)}}
    dead = {"device": {"S": "a"}, "sk": {"S": "2"}, "expires_at": {"N": str(NOW - 1)}}
    timeless = {"device": {"S": "a"}, "sk": {"S": "3"}}
    not_a_number = {"device": {"S": "a"}, "sk": {"S": "4"}, "expires_at": {"S": "0"}}
    prekey = {"device": {"S": "a"}, "sk": {"S": "5"}, "expires_at": {"N": "0"}}
    kept, swept = sweep_expired(
        {"Mailbox": [live, dead, timeless, not_a_number], "Prekeys": [prekey]}, NOW
    )
    assert kept == {"Mailbox": [live, timeless, not_a_number], "Prekeys": [prekey]}
    assert swept == 1


def _valid(directory: Path) -> dict[str, Any]:
    state = {
        "format": FORMAT,
        "stack_id": "abc",
        "tables": {"Users": []},
        "objects": [],
        "signing_secret": "s",
    }
    (directory / STATE_FILE).write_text(json.dumps(state))
    return state


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ('{"format": 1, "stack_id": "ab", "tables": {"Us', "is not valid JSON"),
        ("[]", "is not a state file"),
        ('{"format": 2, "stack_id": "ab", "tables": {}}', "has format 2"),
        ('{"format": 1, "stack_id": "ab", "tables": {"Nope": []}}', "unknown table"),
        ('{"format": 1, "stack_id": "ab", "tables": {}}', "no signing secret"),
        (
            '{"format": 1, "stack_id": "ab", "tables": {}, "signing_secret": "s",'
            ' "objects": [{"key": "k", "sha256": "00"}]}',
            "the bytes of object 'k' are missing",
        ),
    ],
)
def test_a_state_that_cannot_be_loaded_is_refused_with_the_way_out(
    tmp_path: Path, content: str, says: str
) -> None:
    (tmp_path / STATE_FILE).write_text(content)
    with pytest.raises(StateRefused) as refused:
        read_state(tmp_path)
    assert says in str(refused.value)
    assert f"python -m local --fresh --state-dir {tmp_path}" in str(refused.value)


def test_a_saved_state_loads_and_no_state_is_none(tmp_path: Path) -> None:
    assert read_state(tmp_path) is None
    assert read_state(tmp_path / "missing") is None
    assert read_state(_dir(tmp_path)) is None
    state = _valid(tmp_path)
    assert read_state(tmp_path) == state


def _dir(tmp_path: Path) -> Path:
    path = tmp_path / "empty"
    path.mkdir()
    return path


def test_the_lock_keeps_a_second_user_out_until_the_first_closes(tmp_path: Path) -> None:
    first = LocalState(tmp_path)
    try:
        with pytest.raises(
            StateRefused, match=rf"in use by another local stack \(pid {os.getpid()}\)"
        ):
            LocalState(tmp_path)
        with pytest.raises(StateRefused, match="--state-dir"):
            reset(tmp_path)
    finally:
        first.close()
    LocalState(tmp_path).close()


def test_fresh_discards_the_saved_state_and_gets_a_new_stack_id(tmp_path: Path) -> None:
    _valid(tmp_path)
    (tmp_path / "objects").mkdir()
    (tmp_path / "objects" / "ab").write_bytes(b"x")
    kept = LocalState(tmp_path)
    assert (kept.restoring, kept.stack_id) == (True, "abc")
    kept.close()
    fresh = LocalState(tmp_path, fresh=True)
    fresh.close()
    assert not fresh.restoring
    assert fresh.stack_id != "abc"
    assert not (tmp_path / STATE_FILE).exists()
    assert not (tmp_path / "objects").exists()


def test_reset_asks_and_only_yes_deletes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from local.serve import parse_args

    _valid(tmp_path)
    monkeypatch.setattr("builtins.input", lambda _prompt: "")
    assert reset_command(parse_args(["reset", "--state-dir", str(tmp_path)])) == 1
    assert (tmp_path / STATE_FILE).exists()
    assert "Nothing was deleted" in capsys.readouterr().out
    monkeypatch.setattr("builtins.input", lambda _prompt: "y")
    assert reset_command(parse_args(["reset", "--state-dir", str(tmp_path)])) == 0
    assert not (tmp_path / STATE_FILE).exists()
    _valid(tmp_path)
    monkeypatch.setattr("builtins.input", pytest.fail)  # --yes never asks
    assert reset_command(parse_args(["reset", "--yes", "--state-dir", str(tmp_path)])) == 0
    assert not (tmp_path / STATE_FILE).exists()


def test_the_state_dir_option_beats_the_environment_beats_the_default(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("PARLEY_LOCAL_STATE", raising=False)
    assert state_dir(None) == Path.home() / ".parley" / "local-state"
    monkeypatch.setenv("PARLEY_LOCAL_STATE", str(tmp_path / "env"))
    assert state_dir(None) == tmp_path / "env"
    assert state_dir(str(tmp_path / "flag")) == tmp_path / "flag"


def test_a_test_stack_never_uses_the_developers_state(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PARLEY_LOCAL_STATE", str(Path.home() / ".parley" / "local-state"))
    env = stack_environment(tmp_path / "local.json")
    assert env["PARLEY_LOCAL_STATE"] == str(tmp_path / "local-state")


def test_a_test_stack_takes_the_developers_concurrency_and_no_other_setting(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PARLEY_LOCAL_CONCURRENCY", "8")
    monkeypatch.setenv("PARLEY_LOCAL_FAULTS", '{"throttle": 1}')
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://elsewhere")
    env = stack_environment(tmp_path / "local.json")
    assert env["PARLEY_LOCAL_CONCURRENCY"] == "8"
    assert "PARLEY_LOCAL_FAULTS" not in env
    assert "AWS_ENDPOINT_URL" not in env


@pytest.mark.parametrize(
    ("method", "target", "changes"),
    [
        ("POST", "DynamoDB_20120810.PutItem", True),
        ("POST", "DynamoDB_20120810.TransactWriteItems", True),
        ("POST", "DynamoDB_20120810.Query", False),
        ("POST", "DynamoDB_20120810.BatchGetItem", False),
        ("POST", "AmazonSQS.ReceiveMessage", False),
        ("POST", "AmazonSQS.DeleteMessage", True),
        ("POST", "", True),  # SNS's query protocol: Publish, CreatePlatformEndpoint, ...
        ("PUT", "", True),  # an S3 upload
        ("GET", "", False),
        ("HEAD", "", False),
    ],
)
def test_only_requests_that_may_change_something_count(
    method: str, target: str, changes: bool
) -> None:
    environ = {"REQUEST_METHOD": method}
    if target:
        environ["HTTP_X_AMZ_TARGET"] = target
    assert _may_change(environ) is changes
