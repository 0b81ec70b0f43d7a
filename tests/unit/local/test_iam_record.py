"""The IAM record (local/iam/enforce.py Recorder): what one process (a local stack,
a test worker) records reaches another whole, so a session judges every call."""

from __future__ import annotations

from pathlib import Path

from local.iam.enforce import Recorder
from local.iam.policy import Policy

TABLE = "arn:aws:dynamodb:us-east-1:123456789012:table/Books"
POLICY = Policy.parse(
    [
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "dynamodb:GetItem", "Resource": TABLE}],
        }
    ]
)


def _recorded() -> Recorder:
    record = Recorder()
    record.record("WsSend", POLICY.evaluate("dynamodb:GetItem", TABLE))
    record.record("WsSend", POLICY.evaluate("dynamodb:GetItem", TABLE))
    record.record("WsAck", POLICY.evaluate("dynamodb:DeleteItem", TABLE))
    return record


def test_lines_carry_grants_used_denials_and_the_count_of_calls() -> None:
    record = _recorded()
    merged = Recorder()
    merged.merge_lines(record.lines())
    merged.merge_lines(record.lines())  # a second worker that did the same

    assert merged.used == record.used == {("WsSend", 0, "dynamodb:GetItem", 0)}
    assert [(d.function_id, d.action) for d in merged.denials] == [
        ("WsAck", "dynamodb:DeleteItem"),
        ("WsAck", "dynamodb:DeleteItem"),
    ]
    assert (record.calls, merged.calls) == (3, 6)


def test_a_record_file_merges_like_lines(tmp_path: Path) -> None:
    path = tmp_path / "record.jsonl"
    written = Recorder(path=path)
    written.record("WsAck", POLICY.evaluate("dynamodb:DeleteItem", TABLE))
    written.record("WsSend", POLICY.evaluate("dynamodb:GetItem", TABLE))

    merged = Recorder()
    merged.merge_file(path)
    merged.merge_file(tmp_path / "never-written.jsonl")

    assert merged.used == written.used
    assert merged.denials == written.denials
