"""WebSocket $connect REQUEST authorizer: the access token travels as ?token=.

A valid token for a signed-in device gets an Allow policy on the route with
{"user_id", "device_id"} as context, which API Gateway hands to every handler
of the connection. A bad token (forged, expired, a signed-out device) raises
"Unauthorized" and API Gateway refuses the handshake with 401. A dependency out
of reach (a throttled read, an unreadable signing key) fails closed too, but as
AuthorizerUnavailable, which API Gateway answers with 500: the app waits and
dials again with the same token instead of refreshing it for nothing. The token
is never logged.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

from parley_server.logic import tokens
from parley_server.logic.ports import Caller
from parley_server.metrics import TRACED_LIBRARIES, Metric
from parley_server.models.errors import DependencyUnavailable, InvalidToken, ParleyError
from parley_server.wiring import adapters, preload

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

__all__ = ["PRELOADED", "AuthorizerUnavailable", "handler"]

# what this function uses, imported at its cold start (not at its first request)
PRELOADED = preload("keys", "users")

logger = Logger(service="parley")
metrics = Metrics(namespace="Parley", service="parley")
tracer = Tracer(service="parley", patch_modules=TRACED_LIBRARIES)


class AuthorizerUnavailable(Exception):
    """The token could not be checked (a dependency failed): API Gateway's 500."""


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
        if isinstance(error, DependencyUnavailable):
            # not the token's fault (a throttled read, the signing key out of reach):
            # any other failure is API Gateway's 500, which an app retries with the
            # token it has; a 401 would have it refresh for nothing
            raise AuthorizerUnavailable(error.message) from None
        # this exact message is API Gateway's contract for answering 401
        raise Exception("Unauthorized") from None
    metrics.add_metric(name=Metric.CONNECT_ALLOWED, unit=MetricUnit.Count, value=1)
    logger.info(
        "connection authorized",
        extra={"user_id": principal.user_id, "device_id": principal.device_id},
    )
    return _policy(principal, method_arn)
