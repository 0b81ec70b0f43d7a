"""HTTP linked-device routes: pairing a companion and publishing the signed device list.

A Powertools Router the HttpApi resolver includes: its auth middleware puts the
caller in the context (the pairing routes a new device calls before it has an
account are public: PUBLIC_ROUTES), its validation checks the bodies
(models/http.py), and its exception handler turns ParleyErrors into the wire's
error answers. The use cases are logic/linking.py's.
"""

from __future__ import annotations

import msgspec
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from aws_lambda_powertools.metrics import MetricUnit

from parley_server.handlers import _http
from parley_server.handlers._routes import Routes
from parley_server.logic import linking
from parley_server.logic.prekeys import KeyUpload, PrekeyIn, SignedPrekeyIn, b64
from parley_server.metrics import Metric
from parley_server.models.http import (
    DeviceListModel,
    KeysUpload,
    PairingAnswer,
    PairingApproveRequest,
    PairingClaimRequest,
    PairingCompleteRequest,
    PairingRef,
    PairingRequest,
    PairingStatusAnswer,
    TokenAnswer,
)
from parley_server.wiring import adapters

__all__ = ["PUBLIC_ROUTES", "router"]

router = APIGatewayHttpRouter()  # type: ignore[no-untyped-call]
api = Routes(router)
logger = Logger(child=True)
metrics = Metrics(namespace="Parley", service="parley")

PAIRINGS = "/v1/devices/pairings"
# what a new device calls before it belongs to an account (it proves itself by its claim)
PUBLIC_ROUTES = frozenset(
    {
        ("POST", PAIRINGS),
        ("POST", PAIRINGS + "/<ref>/status"),
        ("POST", PAIRINGS + "/<ref>/complete"),
    }
)
Ref = PairingRef
_PAIRING = {404: "no such pairing, or it has expired (or the claim is not its claim)"}
_PRIMARY = {403: "only the primary device can do this"}


def _now() -> float:
    """The HTTP API's one clock (http_api._now, which tests move)."""
    from parley_server.handlers import http_api  # late: http_api includes this router

    return http_api._now()


def _source_ip() -> str:
    context = router.current_event.raw_event.get("requestContext") or {}
    return str((context.get("http") or {}).get("sourceIp") or "unknown")


def _count(name: Metric) -> None:
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)


def key_upload(request: KeysUpload) -> KeyUpload:
    """The logic's view of a key upload body (PUT /v1/keys's and a completion's)."""
    spk = request.signed_prekey
    return KeyUpload(
        identity_key=request.identity_key,
        signed_prekey=SignedPrekeyIn(spk.key_id, spk.public_key, spk.signature),
        one_time_prekeys=tuple(PrekeyIn(k.key_id, k.public_key) for k in request.one_time_prekeys),
    )


def device_list_of(user_id: str) -> DeviceListModel | None:
    """The account's signed device list for an answer (null until it publishes one)."""
    found = linking.published_list(user_id, users=adapters().users)
    if found is None:
        return None
    return DeviceListModel(body=b64(found.body), signature=b64(found.signature))


@api.post(
    PAIRINGS,
    status_code=201,
    summary="A new device asks to be linked: answers what its link code carries",
    tags=["devices"],
    cache_control="no-store",
    responses=_http.responses(400, 429, 503),
)
def start_pairing(request: PairingRequest) -> PairingAnswer:
    deps = adapters()
    made = linking.start_pairing(
        request.identity_key,
        source=_source_ip(),
        users=deps.users,
        limiter=deps.limiter,
        limits=deps.config.limits,
        now=_now(),
    )
    _count(Metric.PAIRING_STARTED)
    return PairingAnswer(
        ref=made.ref, device_id=made.device_id, claim=b64(made.claim), expires_in=made.expires_in
    )


@api.post(
    PAIRINGS + "/<ref>/approve",
    status_code=204,
    summary="The primary device approves linking the device of a link code",
    **_http.bearer(
        "devices", 400, 401, 403, 404, 409, 413, 503, described={**_PAIRING, **_PRIMARY}
    ),
)
def approve_pairing(ref: Ref, request: PairingApproveRequest) -> None:
    deps = adapters()
    caller = _http.caller(router.context)
    linking.approve(
        caller,
        ref,
        details=request.details,
        account_signature=request.account_signature,
        hmac=request.hmac,
        list_body=request.device_list.body,
        list_signature=request.device_list.signature,
        users=deps.users,
        limits=deps.config.limits,
        now=_now(),
    )
    _count(Metric.PAIRING_APPROVED)
    logger.info("pairing approved", extra={"user_id": caller.user_id})


@api.post(
    PAIRINGS + "/<ref>/status",
    summary="The new device asks whether its pairing was approved (and gets the approval)",
    tags=["devices"],
    cache_control="no-store",
    responses={
        200: {
            "description": '{"state": "pending"}, or the approval with every field',
            "content": {"application/json": {"model": PairingStatusAnswer}},
        },
        **_http.responses(400, 404, 409, 503, described=_PAIRING),
    },
)
def pairing_status(ref: Ref, request: PairingClaimRequest) -> PairingStatusAnswer:
    found = linking.status(ref, request.claim, users=adapters().users, now=_now())
    # answered without the fields a pending one lacks (the struct omits what is None)
    return PairingStatusAnswer(**found)


@api.post(
    PAIRINGS + "/<ref>/complete",
    summary="The new device countersigns its approval and uploads its keys: it is linked",
    tags=["devices"],
    cache_control="no-store",
    responses=_http.responses(400, 404, 409, 413, 503, described=_PAIRING),
)
def complete_pairing(ref: Ref, request: PairingCompleteRequest) -> TokenAnswer:
    deps = adapters()
    pair = linking.complete(
        ref,
        request.claim,
        request.device_signature,
        key_upload(request.keys),
        users=deps.users,
        prekeys=deps.prekeys,
        keys=deps.keys(),
        refresh_tokens=deps.refresh_tokens,
        connections=deps.connections,
        gateway=deps.gateway,
        limits=deps.config.limits,
        now=_now(),
    )
    _count(Metric.DEVICE_LINKED)
    logger.info("device linked", extra={"user_id": pair.user_id, "device_id": pair.device_id})
    return TokenAnswer(**msgspec.structs.asdict(pair))


@api.put(
    "/v1/devices/list",
    status_code=204,
    summary="The primary device publishes the account's signed device list",
    description=(
        "The first list (version 1 or more) lists just the primary; later ones may only"
        " remove devices (a higher version, a subset of the current entries): the devices"
        " removed are signed out at once. Devices are added by pairing."
    ),
    **_http.bearer("devices", 400, 401, 403, 409, 413, 503, described=_PRIMARY, no_store=False),
)
def publish_list(request: DeviceListModel) -> None:
    deps = adapters()
    caller = _http.caller(router.context)
    dropped = linking.publish_list(
        caller,
        request.body,
        request.signature,
        users=deps.users,
        connections=deps.connections,
        gateway=deps.gateway,
        limits=deps.config.limits,
        now=_now(),
    )
    _count(Metric.DEVICE_LIST_PUBLISHED)
    logger.info("device list published", extra={"user_id": caller.user_id, "dropped": dropped})
