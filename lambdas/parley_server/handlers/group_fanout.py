"""GroupFanout: consumes the FIFO queue of fan-out jobs that WsSend enqueues for
large groups; each job stores, delivers and pushes one slice of a group message.
The queue also carries the challenges of push tokens being registered, which the
HttpApi function queues (it texts codes, so it may publish to no endpoint); this
function pushes them.

Partial batch responses: a job that fails (a dependency was unavailable) is
reported back and retried by SQS; the others in the batch are done. With
skip_group_on_error, later jobs of the same message group wait behind a failed
one, so a member never gets a sender's messages out of order. A job that cannot
be parsed is logged and dropped: retrying it could never succeed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor, process_partial_response

from parley_server.handlers import _groups, _ws
from parley_server.metrics import Metric
from parley_server.models.errors import BadRequest
from parley_server.models.groups import FanoutJob
from parley_server.store.push import ChallengeJob
from parley_server.wiring import adapters, preload

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
    from aws_lambda_powertools.utilities.typing import LambdaContext

__all__ = ["PRELOADED", "handler"]

# what this function uses, imported at its cold start (not at its first request)
PRELOADED = preload(
    "push",
    "groups",
    "mailbox",
    "connections",
    "gateway",
    "envelopes",
    "users",
    "limiter",
    "fanout_queue",
)

_processor = SqsFifoPartialProcessor(skip_group_on_error=True)


def _job(record: SQSRecord) -> None:
    try:
        challenge = ChallengeJob.from_json(record.body)
    except BadRequest as exc:
        _ws.logger.error("dropped a malformed push challenge job", extra={"problem": exc.message})
        _ws.count(Metric.GROUP_JOBS_DROPPED)
        return
    if challenge is not None:
        # a token being registered (PUT /v1/push): best effort, like every push
        pushed = adapters().push.send_challenge(challenge)
        _ws.count(Metric.PUSH_CHALLENGES_PUSHED if pushed else Metric.PUSH_CHALLENGES_UNSENT)
        return
    try:
        job = FanoutJob.from_json(record.body)
    except BadRequest as exc:
        _ws.logger.error("dropped a malformed fan-out job", extra={"problem": exc.message})
        _ws.count(Metric.GROUP_JOBS_DROPPED)
        return
    _ws.logger.append_keys(group_id=job.group_id, client_id=job.client_id, chunk=job.chunk)
    outcome = _groups.fan_out(job, adapters())
    _groups.count_fanout(outcome)
    _ws.count(Metric.GROUP_JOBS_DONE)


@_ws.tracer.capture_lambda_handler
@_ws.logger.inject_lambda_context(clear_state=True)
@_ws.metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    answer: dict[str, Any] = dict(
        process_partial_response(
            event=event, record_handler=_job, processor=_processor, context=context
        )
    )
    return answer
