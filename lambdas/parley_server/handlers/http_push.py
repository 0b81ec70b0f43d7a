"""HTTP push-token routes: PUT /v1/push (register a token: a challenge is pushed
through it) and POST /v1/push/verify (the challenge comes back: the token is used).

A Powertools Router the HttpApi resolver includes: its auth middleware puts the
caller in the context, its validation checks the bodies (models/http.py), and its
exception handler turns ParleyErrors into the wire's error answers. The use cases
are logic/push.py's.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from aws_lambda_powertools.metrics import MetricUnit

from parley_server.handlers import _http
from parley_server.handlers._routes import Routes
from parley_server.logic import push
from parley_server.metrics import Metric
from parley_server.models.errors import BadRequest, Conflict
from parley_server.models.http import PushPendingAnswer, PushRequest, PushVerifyRequest
from parley_server.wiring import adapters

__all__ = ["router"]

router = APIGatewayHttpRouter()  # type: ignore[no-untyped-call]
api = Routes(router)
logger = Logger(child=True)
metrics = Metrics(namespace="Parley", service="parley")

_VERIFY = {
    400: "the challenge does not match (invalid_push_challenge, with attempts_left) or has"
    " expired (push_challenge_expired)",
    409: "no token is waiting for verification (no_push_challenge): register it again",
}

_REFUSALS = frozenset({"invalid_push_challenge", "push_challenge_expired", "no_push_challenge"})


def _now() -> float:
    """The HTTP API's one clock (http_api._now, which tests move)."""
    from parley_server.handlers import http_api  # late: http_api includes this router

    return http_api._now()


@api.put(
    "/v1/push",
    status_code=202,
    summary="Register this device's push token: a challenge is pushed through it",
    description=(
        "The token is recorded as pending and a push carrying only"
        ' {"type": "push_challenge", "challenge": ...} is sent through it. It is used'
        " for wake pushes once the app sends that challenge back (POST /v1/push/verify);"
        " until then the device's previously verified token, if any, keeps working."
    ),
    **_http.bearer("push", 400, 401, 503),
)
def register_push(request: PushRequest) -> PushPendingAnswer:
    deps = adapters()
    challenged = push.register(
        _http.caller(router.context),
        request.platform,
        request.token,
        users=deps.users,
        notifier=deps.push,
        challenges=deps.push_challenges,
        limits=deps.config.limits,
        now=_now(),
    )
    if challenged.sent:
        metrics.add_metric(name=Metric.PUSH_CHALLENGES_SENT, unit=MetricUnit.Count, value=1)
    logger.info("push token pending", extra={"platform": request.platform, "sent": challenged.sent})
    return PushPendingAnswer(
        state="pending", challenge_sent=challenged.sent, expires_at=challenged.expires_at
    )


@api.post(
    "/v1/push/verify",
    status_code=204,
    summary="Send back the challenge pushed through this device's pending push token",
    description=(
        "Once the challenge matches, the pending token becomes the one wake pushes use"
        " (a token another device had verified moves to this one). A wrong challenge"
        " counts: after 5 the pending token is dropped. It expires 10 minutes after"
        " PUT /v1/push."
    ),
    **_http.bearer("push", 400, 401, 409, 503, described=_VERIFY, no_store=False),
)
def verify_push(request: PushVerifyRequest) -> None:
    deps = adapters()
    try:
        verified = push.verify(
            _http.caller(router.context),
            request.challenge,
            users=deps.users,
            notifier=deps.push,
            limits=deps.config.limits,
            now=_now(),
        )
    except (BadRequest, Conflict) as refused:
        if refused.code in _REFUSALS:
            metrics.add_metric(name=Metric.PUSH_CHALLENGES_REFUSED, unit=MetricUnit.Count, value=1)
            logger.info("push challenge refused", extra={"error_code": refused.code})
        raise
    metrics.add_metric(name=Metric.PUSH_TOKENS_VERIFIED, unit=MetricUnit.Count, value=1)
    logger.info(
        "push token verified", extra={"platform": verified.platform, "moved": verified.moved}
    )
