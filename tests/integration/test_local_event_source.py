"""The local stack's SQS event source behaves as Lambda's: records in Lambda's shape,
successes deleted, reported failures and failed invocations left on the queue."""

from __future__ import annotations

import asyncio
import secrets
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from aws_lambda_powertools.utilities.parser.models import SqsModel
from moto.server import ThreadedMotoServer

from local.event_sources import SqsEventSource
from local.lambdas import Invoker
from local.resources import LocalAws, _fanout_queues, client
from parley_server.catalogue import function

WAIT_S = 10.0


@pytest.fixture
def queue() -> Iterator[tuple[LocalAws, str, str]]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    aws = LocalAws(endpoint_url=f"http://{host}:{port}", region="us-east-1")
    # moto's backends are process-wide: a fresh prefix keeps tests apart
    url, arn = _fanout_queues(client(aws, "sqs"), f"test-{secrets.token_hex(4)}")
    try:
        yield aws, url, arn
    finally:
        server.stop()


def _send(sqs: Any, url: str, body: str) -> None:
    sqs.send_message(
        QueueUrl=url, MessageBody=body, MessageGroupId=body, MessageDeduplicationId=body
    )


async def _until(done: threading.Event) -> None:
    assert await asyncio.to_thread(done.wait, WAIT_S), "the function was not invoked in time"


def _fanout_source(
    handler: Callable[[dict[str, Any], Any], Any],
    executor: ThreadPoolExecutor,
    sqs: Any,
    url: str,
    arn: str,
    **extra: Any,
) -> SqsEventSource:
    """The GroupFanout queue's event source, invoking `handler`."""
    invoker = Invoker({"GroupFanout": handler}, executor, functions=(function("GroupFanout"),))
    return SqsEventSource(
        invoker,
        sqs,
        function_id="GroupFanout",
        queue_url=url,
        queue_arn=arn,
        region="us-east-1",
        **extra,
    )


async def test_records_reach_the_function_in_lambdas_shape_and_only_successes_are_deleted(
    queue: tuple[LocalAws, str, str],
) -> None:
    aws, url, arn = queue
    sqs = client(aws, "sqs")
    seen: list[dict[str, Any]] = []
    all_seen = threading.Event()

    def handler(event: dict[str, Any], context: Any) -> Any:
        SqsModel.model_validate(event)  # the shape Powertools parses on AWS
        seen.extend(event["Records"])
        if len(seen) == 3:
            all_seen.set()
        failed = [r["messageId"] for r in event["Records"] if r["body"] == "bad"]
        return {"batchItemFailures": [{"itemIdentifier": i} for i in failed]}

    with ThreadPoolExecutor(4) as executor:
        source = _fanout_source(handler, executor, sqs, url, arn, max_concurrency=2)
        for body in ("one", "bad", "two"):
            _send(sqs, url, body)
        source.start()
        try:
            await _until(all_seen)
            await asyncio.sleep(0.3)  # let the deletes land
        finally:
            await source.stop()

    assert sorted(r["body"] for r in seen) == ["bad", "one", "two"]
    assert {r["eventSourceARN"] for r in seen} == {arn}
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    # the reported failure is still on the queue (in flight until its visibility timeout)
    assert int(attributes["ApproximateNumberOfMessagesNotVisible"]) == 1
    assert int(attributes["ApproximateNumberOfMessages"]) == 0


async def test_a_failed_invocation_leaves_its_records_on_the_queue(
    queue: tuple[LocalAws, str, str],
) -> None:
    aws, url, arn = queue
    sqs = client(aws, "sqs")
    called = threading.Event()

    def handler(event: dict[str, Any], context: Any) -> Any:
        called.set()
        raise RuntimeError("dependency down")

    with ThreadPoolExecutor(2) as executor:
        source = _fanout_source(handler, executor, sqs, url, arn)
        _send(sqs, url, "job")
        source.start()
        try:
            await _until(called)
            await asyncio.sleep(0.3)
        finally:
            await source.stop()

    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert int(attributes["ApproximateNumberOfMessagesNotVisible"]) == 1
