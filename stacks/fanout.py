"""SQS: the FIFO queue of group fan-out jobs, its dead-letter queue, and the
GroupFanout function's event source.

WsSend fans a message out inline for small groups; for larger ones it queues
one job per slice of the members (logic/group_fanout.py). Message group = group id +
slice, so each slice keeps a sender's order while slices run in parallel
(high-throughput FIFO: per-message-group limits). Deduplication ids name the
message and slice, so a send retried within five minutes is not fanned out
twice.

Rate: each job posts to its members' connections one after another; the event
source's maximum concurrency bounds how many jobs run at once, which keeps the
@connections post rate far below API Gateway's account limit (10,000 requests/s)
and Lambda's concurrency for everyone else. A job that keeps failing goes to
the dead-letter queue after `max_receive_count` tries, with an alarm-able depth.

Composition (stacks/parley_stack.py): build `GroupFanoutQueue` before the
functions, pass `queue_url` as Setting.GROUP_FANOUT_QUEUE's value, grant WsSend
`grant_enqueue`, then `attach(functions.by_id["GroupFanout"])`.
"""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from stacks.fanout_spec import FANOUT_QUEUE

__all__ = ["MAX_CONCURRENCY", "MAX_RECEIVE_COUNT", "GroupFanoutQueue"]

MAX_CONCURRENCY = FANOUT_QUEUE.max_concurrency
MAX_RECEIVE_COUNT = FANOUT_QUEUE.max_receive_count


class GroupFanoutQueue(Construct):
    """The fan-out FIFO queue (SSE, TLS only) with a dead-letter queue."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        function_timeout: Duration,
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        self.dead_letters = sqs.Queue(
            self,
            "DeadLetters",
            fifo=True,
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(FANOUT_QUEUE.dead_letter_retention_days),
            removal_policy=removal_policy,
        )
        self.queue = sqs.Queue(
            self,
            "Jobs",
            fifo=True,
            content_based_deduplication=False,  # the sender names each job
            deduplication_scope=sqs.DeduplicationScope.MESSAGE_GROUP,
            fifo_throughput_limit=sqs.FifoThroughputLimit.PER_MESSAGE_GROUP_ID,
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            visibility_timeout=Duration.seconds(
                FANOUT_QUEUE.visibility_timeout_s(int(function_timeout.to_seconds()))
            ),
            retention_period=Duration.days(FANOUT_QUEUE.retention_days),
            dead_letter_queue=sqs.DeadLetterQueue(
                max_receive_count=MAX_RECEIVE_COUNT, queue=self.dead_letters
            ),
            removal_policy=removal_policy,
        )

    @property
    def queue_url(self) -> str:
        """Setting.GROUP_FANOUT_QUEUE's value."""
        return self.queue.queue_url

    def grant_enqueue(self, grantee: iam.IGrantable) -> iam.Grant:
        """sqs:SendMessage (and what it needs) on this queue only: for WsSend."""
        return self.queue.grant_send_messages(grantee)

    def attach(self, consumer: lambda_.Function) -> None:
        """Make `consumer` (GroupFanout) the queue's consumer: one job per invocation,
        failed jobs reported one by one, a bounded number of jobs at once."""
        consumer.add_event_source(
            sources.SqsEventSource(
                self.queue,
                batch_size=FANOUT_QUEUE.batch_size,
                report_batch_item_failures=True,
                max_concurrency=MAX_CONCURRENCY,
            )
        )
