"""WebSocket $connect REQUEST authorizer: the access token travels as ?token=.

A valid token for a signed-in device gets an Allow policy on the route with
{"user_id", "device_id"} as context, which API Gateway hands to every handler
of the connection. Anything else, including an unreadable signing key (fail
closed), raises "Unauthorized" and API Gateway refuses the handshake with 401.
The token is never logged.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

from parley_server.logic import tokens
from parley_server.logic.ports import Caller
from parley_server.metrics import TRACED_LIBRARIES, Metric
from parley_server.models.errors import InvalidToken, ParleyError
from parley_server.wiring import adapters, preload

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

__all__ = ["PRELOADED", "handler"]

# what this function uses, imported at its cold start (not at its first request)
PRELOADED = preload("keys", "users")

logger = Logger(service="parley")
metrics = Metrics(namespace="Parley", service="parley")
tracer = Tracer(service="parley", patch_modules=TRACED_LIBRARIES)


def _policy(principal: Caller, method_arn: str) -> dict[str, Any]:
    return {
        "principalId": principal.user_id,
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [
                {"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": method_arn}
            ],
        },
        "context": {"user_id": principal.user_id, "device_id": principal.device_id},
    }


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    query = event.get("queryStringParameters") or {}
    token = query.get("token") if isinstance(query, dict) else None
    method_arn = event.get("methodArn")
    try:
        if not isinstance(token, str) or not isinstance(method_arn, str):
            raise InvalidToken("no token")
        deps = adapters()
        principal = tokens.authenticate(
            token,
            keys=deps.keys(),
            users=deps.users,
            now=time.time(),
        )
    except ParleyError as error:
        # the code says why (invalid_token, service_unavailable, ...); the token is not logged
        logger.info("connection refused", extra={"error_code": error.code})
        metrics.add_metric(name=Metric.CONNECT_REFUSED, unit=MetricUnit.Count, value=1)
        # this exact message is API Gateway's contract for answering 401
        raise Exception("Unauthorized") from None
    metrics.add_metric(name=Metric.CONNECT_ALLOWED, unit=MetricUnit.Count, value=1)
    logger.info(
        "connection authorized",
        extra={"user_id": principal.user_id, "device_id": principal.device_id},
    )
    return _policy(principal, method_arn)
