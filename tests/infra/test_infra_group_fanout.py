"""The group fan-out in the synthesized template: a FIFO queue with a dead-letter
queue, consumed by GroupFanout one job at a time with bounded concurrency, and
only WsSend may put jobs on it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from parley_server.catalogue import FUNCTIONS, Setting, function
from stacks.fanout import MAX_CONCURRENCY, MAX_RECEIVE_COUNT
from stacks.fanout_spec import FANOUT_QUEUE
from tests.infra.synthesis import TemplateView

pytestmark = pytest.mark.infra


@pytest.fixture(scope="module")
def view(synth_template: dict[str, Any]) -> TemplateView:
    return TemplateView(synth_template)


def _queues(view: TemplateView) -> tuple[str, dict[str, Any], str]:
    """(jobs queue id, its properties, dead-letter queue id)."""
    queues = view.of_type("AWS::SQS::Queue")
    (jobs_id,) = [k for k, q in queues.items() if "RedrivePolicy" in q["Properties"]]
    props = queues[jobs_id]["Properties"]
    dead_id = props["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
    return jobs_id, props, dead_id


def _statements(view: TemplateView, function_id: str) -> list[dict[str, Any]]:
    logical = view.function_by_handler(function(function_id).handler)[1]
    role = logical["Properties"]["Role"]["Fn::GetAtt"][0]
    return list(view.role_statements(role))


def test_the_queue_is_fifo_encrypted_with_a_dead_letter_queue(view: TemplateView) -> None:
    _, props, dead_id = _queues(view)
    dead = view.resources[dead_id]["Properties"]

    assert props["FifoQueue"] is True
    assert props.get("ContentBasedDeduplication") in (None, False)
    assert props["DeduplicationScope"] == "messageGroup"
    assert props["FifoThroughputLimit"] == "perMessageGroupId"
    assert props["SqsManagedSseEnabled"] is True
    assert props["RedrivePolicy"]["maxReceiveCount"] == MAX_RECEIVE_COUNT
    assert props["VisibilityTimeout"] == 6 * function("GroupFanout").timeout_s
    assert dead["FifoQueue"] is True
    assert dead["SqsManagedSseEnabled"] is True


def test_both_queues_refuse_anything_but_tls(view: TemplateView) -> None:
    jobs_id, _, dead_id = _queues(view)
    guarded = set()
    for policy in view.of_type("AWS::SQS::QueuePolicy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            if statement["Effect"] == "Deny" and statement["Condition"] == {
                "Bool": {"aws:SecureTransport": "false"}
            }:
                guarded.update(q["Ref"] for q in policy["Properties"]["Queues"])
    assert {jobs_id, dead_id} <= guarded


def test_group_fanout_consumes_one_job_at_a_time_with_bounded_concurrency(
    view: TemplateView,
) -> None:
    jobs_id, _, _ = _queues(view)
    fanout_id = view.function_by_handler(function("GroupFanout").handler)[0]

    (mapping,) = view.of_type("AWS::Lambda::EventSourceMapping").values()
    props = mapping["Properties"]

    assert props["EventSourceArn"] == {"Fn::GetAtt": [jobs_id, "Arn"]}
    assert props["FunctionName"] == {"Ref": fanout_id}
    assert props["BatchSize"] == 1
    assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert props["ScalingConfig"] == {"MaximumConcurrency": MAX_CONCURRENCY}


def test_only_ws_send_and_http_api_may_queue_jobs_and_are_told_the_queue_url(
    view: TemplateView,
) -> None:
    """WsSend queues slices of large groups; HttpApi the challenges of push tokens being
    registered (it texts codes, so it may publish to no endpoint: GroupFanout does)."""
    jobs_id, _, _ = _queues(view)
    senders = set()
    for spec in FUNCTIONS:
        for statement in _statements(view, spec.id):
            actions = statement["Action"]
            if "sqs:SendMessage" in (actions if isinstance(actions, list) else [actions]):
                assert statement["Resource"] == {"Fn::GetAtt": [jobs_id, "Arn"]}
                senders.add(spec.id)
    assert senders == {"WsSend", "HttpApi"}
    for sender in senders:
        props = view.function_by_handler(function(sender).handler)[1]["Properties"]
        assert props["Environment"]["Variables"][Setting.GROUP_FANOUT_QUEUE.value] == {
            "Ref": jobs_id
        }


def test_the_local_stack_builds_the_same_queue_as_the_template(view: TemplateView) -> None:
    # local/resources.py creates the queue in moto from FANOUT_QUEUE.sqs_attributes
    _, props, _ = _queues(view)
    local = FANOUT_QUEUE.sqs_attributes(function("GroupFanout").timeout_s, "dead-letter-arn")
    template = {
        "FifoQueue": str(props["FifoQueue"]).lower(),
        "ContentBasedDeduplication": str(bool(props.get("ContentBasedDeduplication"))).lower(),
        "DeduplicationScope": props["DeduplicationScope"],
        "FifoThroughputLimit": props["FifoThroughputLimit"],
        "VisibilityTimeout": str(props["VisibilityTimeout"]),
        "MessageRetentionPeriod": str(props["MessageRetentionPeriod"]),
        "maxReceiveCount": props["RedrivePolicy"]["maxReceiveCount"],
    }
    redrive = json.loads(local.pop("RedrivePolicy"))
    assert {**local, "maxReceiveCount": redrive["maxReceiveCount"]} == template
