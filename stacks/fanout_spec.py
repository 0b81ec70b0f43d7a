"""The group fan-out queue and its event source, as plain data.

stacks/fanout.py builds the SQS queues and the Lambda event source from these
values; the local stack (local/resources.py, local/event_sources.py) builds the
same queues in moto and polls them the way Lambda's event source mapping does.
Nothing here imports the CDK, so the local stack starts without Node.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

__all__ = ["FANOUT_QUEUE", "FanoutQueueSpec"]


@dataclass(frozen=True)
class FanoutQueueSpec:
    # jobs in flight at once: ~50 members each, so at most ~500 members' posts at a time
    max_concurrency: int = 10
    # one job per invocation: a job already holds one slice of up to 50 members
    batch_size: int = 1
    max_receive_count: int = 5
    # AWS's advice for an SQS event source: visibility timeout >= 6x the function's timeout
    visibility_factor: int = 6
    retention_days: int = 4
    dead_letter_retention_days: int = 14

    def visibility_timeout_s(self, function_timeout_s: int) -> int:
        return function_timeout_s * self.visibility_factor

    def sqs_attributes(self, function_timeout_s: int, dead_letter_arn: str) -> dict[str, str]:
        """CreateQueue attributes of the jobs queue (what the CDK construct sets)."""
        return {
            "FifoQueue": "true",
            "ContentBasedDeduplication": "false",  # the sender names each job
            "DeduplicationScope": "messageGroup",
            "FifoThroughputLimit": "perMessageGroupId",
            "VisibilityTimeout": str(self.visibility_timeout_s(function_timeout_s)),
            "MessageRetentionPeriod": str(self.retention_days * 24 * 3600),
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": dead_letter_arn, "maxReceiveCount": self.max_receive_count}
            ),
        }


FANOUT_QUEUE = FanoutQueueSpec()
