"""HTTP call routes: GET /v1/calls/relays.

A Powertools Router that the HttpApi resolver includes (see handlers/http_media.py).
"""

from __future__ import annotations

import time

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from aws_lambda_powertools.metrics import MetricUnit

from parley_server.handlers import _http
from parley_server.handlers._routes import Routes
from parley_server.logic import calls
from parley_server.metrics import Metric
from parley_server.models.http import CallRelaysAnswer, IceServerModel
from parley_server.wiring import adapters

__all__ = ["router"]

router = APIGatewayHttpRouter()  # type: ignore[no-untyped-call]
api = Routes(router)
logger = Logger(child=True)
metrics = Metrics(namespace="Parley", service="parley")


@api.get(
    "/v1/calls/relays",
    summary="ICE servers (STUN, and TURN with short-lived credentials) for one call",
    description=(
        "Ask right before placing or answering a call; `ice_servers` is an"
        " RTCConfiguration.iceServers list. The credentials open relay allocations for"
        " `ttl` seconds. Each device may ask a number of times an hour (429 rate_limited,"
        " Retry-After); 503 with Retry-After when the relay service is unavailable."
    ),
    **_http.bearer("calls", 401, 429, 503),
)
def get_relays() -> CallRelaysAnswer:
    caller = _http.caller(router.context)
    deps = adapters()
    offer = calls.relays_for(
        caller,
        relays=deps.relays,
        limiter=deps.limiter,
        limits=deps.config.limits,
        now=time.time(),
    )
    metrics.add_metric(name=Metric.CALL_RELAYS_ISSUED, unit=MetricUnit.Count, value=1)
    logger.info("call relays issued", extra={"transport": offer.transport})
    return CallRelaysAnswer(
        ice_servers=[
            IceServerModel(urls=list(s.urls), username=s.username, credential=s.credential)
            for s in offer.ice_servers
        ],
        ttl=offer.ttl_s,
        expires_at=offer.expires_at,
        transport=offer.transport,
    )
