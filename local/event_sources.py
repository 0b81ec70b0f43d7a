"""Lambda's SQS event source mapping, for the local stack.

On AWS, Lambda polls the group fan-out queue and invokes GroupFanout with a
batch of records; records the function reports in `batchItemFailures` (or the
whole batch, if the invocation fails) stay on the queue and come back after the
visibility timeout, and the rest are deleted. This does the same against moto's
SQS, with the batch size and concurrency of stacks/fanout_spec.py, and emits
the record shape Lambda sends.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from local.iam.enforce import acting_as
from local.lambdas import FunctionError, Invoker

__all__ = ["SqsEventSource", "sqs_record"]

log = logging.getLogger("local")


def sqs_record(message: Mapping[str, Any], *, queue_arn: str, region: str) -> dict[str, Any]:
    """One record of an SQS event, from a ReceiveMessage message, as Lambda builds it."""
    attributes = {
        name: {
            "stringValue": value.get("StringValue"),
            "binaryValue": value.get("BinaryValue"),
            "stringListValues": [],
            "binaryListValues": [],
            "dataType": value["DataType"],
        }
        for name, value in message.get("MessageAttributes", {}).items()
    }
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": dict(message.get("Attributes", {})),
        "messageAttributes": attributes,
        "md5OfBody": message["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }


@dataclass
class SqsEventSource:
    """Polls one queue and invokes one function with its records."""

    invoker: Invoker
    sqs: Any  # a boto3 SQS client (thread-safe; called off the event loop)
    function_id: str
    queue_url: str
    queue_arn: str
    region: str
    batch_size: int = 1
    max_concurrency: int = 10
    wait_s: int = 1
    _task: asyncio.Task[None] | None = field(default=None, init=False, repr=False)
    _inflight: set[asyncio.Task[None]] = field(default_factory=set, init=False, repr=False)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._poll())

    async def stop(self, *, grace_s: float = 5.0) -> None:
        """Stop polling; let invocations in flight finish (their records stay queued if not)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._inflight:
            _, late = await asyncio.wait(set(self._inflight), timeout=grace_s)
            for task in late:
                task.cancel()

    async def _poll(self) -> None:
        slots = asyncio.Semaphore(self.max_concurrency)
        while True:
            await slots.acquire()
            try:
                messages = await asyncio.to_thread(self._receive)
            except asyncio.CancelledError:
                raise
            except Exception:
                slots.release()
                log.exception("polling %s failed", self.queue_url)
                await asyncio.sleep(1)
                continue
            if not messages:
                slots.release()
                continue
            task = asyncio.get_running_loop().create_task(self._process(messages, slots))
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)

    def _receive(self) -> list[dict[str, Any]]:
        # Lambda's poller reads and deletes with the function's own role
        with acting_as(self.function_id):
            answer = self.sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=min(self.batch_size, 10),
                WaitTimeSeconds=self.wait_s,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
        messages: list[dict[str, Any]] = answer.get("Messages", [])
        return messages

    async def _process(self, messages: list[dict[str, Any]], slots: asyncio.Semaphore) -> None:
        try:
            event = {
                "Records": [
                    sqs_record(m, queue_arn=self.queue_arn, region=self.region) for m in messages
                ]
            }
            try:
                result = await self.invoker.invoke(self.function_id, event)
            except FunctionError as exc:
                # the whole batch stays queued and returns after the visibility timeout
                log.warning("%s failed on %d record(s): %s", self.function_id, len(messages), exc)
                return
            failed = _failed_ids(result)
            done = [m for m in messages if m["MessageId"] not in failed]
            if failed:
                log.warning("%s reported %d failed record(s)", self.function_id, len(failed))
            if done:
                await asyncio.to_thread(self._delete, done)
        except Exception:
            log.exception("delivering %d record(s) to %s failed", len(messages), self.function_id)
        finally:
            slots.release()

    def _delete(self, messages: list[dict[str, Any]]) -> None:
        with acting_as(self.function_id):
            self.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                    for i, m in enumerate(messages)
                ],
            )


def _failed_ids(result: Any) -> set[str]:
    """Record ids in a partial batch response (ReportBatchItemFailures)."""
    if not isinstance(result, dict):
        return set()
    failures = result.get("batchItemFailures") or []
    return {
        str(item["itemIdentifier"])
        for item in failures
        if isinstance(item, dict) and "itemIdentifier" in item
    }
