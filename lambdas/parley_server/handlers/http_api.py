"""The HTTP API: one Lambda behind API Gateway's HTTP API (payload format 2.0).

Wiring only: Powertools' resolver routes each request, each route reads and checks
its request against its signature and the structs in models/http.py
(handlers/_routes.py), the auth middleware verifies the bearer token (everything but
sign-in and the OpenAPI document needs one), each route calls one logic
function, and one exception handler turns every error into
{"error": {"code", "message", ...}} with its 4xx (or 503) status.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Annotated, Any

import msgspec
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from msgspec import Meta

from parley_server.handlers import _http
from parley_server.handlers._refusals import refusal_metric
from parley_server.handlers._routes import MAX_BODY_BYTES, Routes
from parley_server.handlers.http_calls import router as calls_router
from parley_server.handlers.http_contacts import router as contacts_router
from parley_server.handlers.http_devices import PUBLIC_ROUTES as DEVICE_PUBLIC_ROUTES
from parley_server.handlers.http_devices import device_list_of
from parley_server.handlers.http_devices import router as devices_router
from parley_server.handlers.http_groups import router as groups_router
from parley_server.handlers.http_media import router as media_router
from parley_server.handlers.http_push import router as push_router
from parley_server.logic import (
    account_deletion,
    accounts,
    devices,
    directory,
    otp,
    prekeys,
    presence,
    registration_lock,
    tokens,
)
from parley_server.logic.prekeys import KeyUpload, PrekeyIn, SignedPrekeyIn, b64
from parley_server.metrics import TRACED_LIBRARIES, Metric, error_metric, http_metric
from parley_server.models.errors import (
    DependencyUnavailable,
    NumberLocked,
    ParleyError,
    RateLimited,
    SmsUnavailable,
    Unauthorized,
)
from parley_server.models.http import (
    AccountDeleteRequest,
    BundleAnswer,
    DeviceBundleOut,
    DeviceId,
    DeviceOut,
    DevicesAnswer,
    KeyCountAnswer,
    KeysUpload,
    OneTimePrekeyModel,
    OtpAnswer,
    OtpRequest,
    PresenceAnswer,
    PresenceSettingRequest,
    RefreshRequest,
    RegistrationLockRequest,
    SignedPrekeyModel,
    TokenAnswer,
    UserAnswer,
    UserId,
    VerifyRequest,
)
from parley_server.wiring import ADAPTER_MODULES, adapters, preload

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

__all__ = ["MAX_BODY_BYTES", "PRELOADED", "app", "handler"]

# every route's adapters, imported at the cold start (not at a route's first request)
PRELOADED = preload(*ADAPTER_MODULES)

logger = Logger(service="parley")
metrics = Metrics(namespace="Parley", service="parley")
tracer = Tracer(service="parley", patch_modules=TRACED_LIBRARIES)

PUBLIC_ROUTES = (
    frozenset(
        {
            ("POST", "/v1/auth/otp"),
            ("POST", "/v1/auth/verify"),
            ("POST", "/v1/auth/refresh"),
            ("GET", "/v1/openapi.json"),
        }
    )
    | DEVICE_PUBLIC_ROUTES
)
# The one call a device of an account being deleted may still make: asked again,
# it finishes the deletion.
DELETE_ACCOUNT_ROUTE = ("DELETE", "/v1/account")


def _now() -> float:
    """The request's time (one place, so tests can move the clock)."""
    return time.time()


# Routing, the auth middleware and the error answers are Powertools'; reading and
# checking each request is the routes' own (handlers/_routes.py), without pydantic.
app = APIGatewayHttpResolver()
api = Routes(app)


# -- errors -----------------------------------------------------------------------


def _error(
    status: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> Response[Any]:
    return Response(
        status_code=status,
        content_type="application/json",
        body=json.dumps({"error": body}),
        headers={"Cache-Control": "no-store", **(headers or {})},
    )


def _parley_error(error: ParleyError) -> Response[Any]:
    headers: dict[str, str] = {}
    if isinstance(error, RateLimited):
        headers["Retry-After"] = str(error.retry_after)
        refused = refusal_metric(error)
        if refused is not None:
            metrics.add_metric(name=refused, unit=MetricUnit.Count, value=1)
    elif isinstance(error, DependencyUnavailable):
        headers["Retry-After"] = "1"
    elif isinstance(error, Unauthorized):
        headers["WWW-Authenticate"] = 'Bearer realm="parley"'
    if error.status >= 500:
        logger.warning("request failed", extra={"error_code": error.code})
    metrics.add_metric(name=error_metric(error.code), unit=MetricUnit.Count, value=1)
    return _error(error.status, error.to_dict(), headers)


def _not_utf8(_: UnicodeDecodeError) -> Response[Any]:
    # API Gateway passes a body that is not UTF-8 text as base64; decoding it to
    # text (which JSON must be) is the only place this is raised
    return _error(400, {"code": "invalid_request", "message": "the body is not UTF-8 JSON"})


def _not_found(_: NotFoundError) -> Response[Any]:
    return _error(404, {"code": "not_found", "message": "no such route"})


def _unexpected(error: Exception) -> Response[Any]:
    logger.exception("unexpected error")
    return _error(500, {"code": "internal_error", "message": "something went wrong on our side"})


# One mapping from every failure to the wire's error shape.
app.exception_handler(ParleyError)(_parley_error)
app.exception_handler(UnicodeDecodeError)(_not_utf8)
app.not_found(_not_found)
app.exception_handler(Exception)(_unexpected)


# -- authentication ---------------------------------------------------------------


def _bearer_token() -> str:
    header = app.current_event.headers.get("authorization") or ""
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("send Authorization: Bearer <access token>")
    return token.strip()


def _authenticate(app: APIGatewayHttpResolver, next_middleware: NextMiddleware) -> Response[Any]:
    route = app.context.get("_route")
    if route is None or (route.method, route.path) not in PUBLIC_ROUTES:
        deps = adapters()
        principal = tokens.authenticate(
            _bearer_token(),
            keys=deps.keys(),
            users=deps.users,
            now=_now(),
            deleting=route is not None and (route.method, route.path) == DELETE_ACCOUNT_ROUTE,
        )
        app.context[_http.CALLER] = principal
    return next_middleware(app)


app.use(middlewares=[_authenticate])


def _source_ip() -> str:
    context = app.current_event.raw_event.get("requestContext") or {}
    return str((context.get("http") or {}).get("sourceIp") or "unknown")


# -- sign-in ----------------------------------------------------------------------


@api.post(
    "/v1/auth/otp",
    status_code=202,
    summary="Text a one-time code to a phone number",
    tags=["auth"],
    responses=_http.responses(400, 429, 503),
)
def request_otp(request: OtpRequest) -> OtpAnswer:
    deps = adapters()
    try:
        challenge = otp.request_code(
            request.phone,
            source=_source_ip(),
            keys=deps.keys(),
            otps=deps.otps,
            sms=deps.sms,
            limiter=deps.limiter,
            limits=deps.config.limits,
            now=_now(),
            test_numbers=deps.config.test_numbers,
            purpose=request.purpose,
        )
    except SmsUnavailable:
        metrics.add_metric(name=Metric.OTP_SEND_FAILED, unit=MetricUnit.Count, value=1)
        raise
    except RateLimited as refused:
        _count_otp_refusal(refused)
        raise
    metrics.add_metric(name=Metric.OTP_SENT, unit=MetricUnit.Count, value=1)
    return OtpAnswer(expires_in=challenge.expires_in, retry_after=challenge.retry_after)


# which limit refused a code (RateLimited.limit) -> its metric
_OTP_REFUSALS = {
    "otp-cooldown": Metric.OTP_REFUSED_COOLDOWN,
    "otp-source": Metric.OTP_REFUSED_SOURCE,
    "otp-phone": Metric.OTP_REFUSED_PHONE_HOURLY,
    "otp-phone-day": Metric.OTP_REFUSED_PHONE_DAILY,
    "otp-country": Metric.OTP_REFUSED_COUNTRY,
    "otp-global": Metric.OTP_REFUSED_GLOBAL,
    "otp-locked": Metric.OTP_REFUSED_LOCKED,
}


def _count_otp_refusal(refused: RateLimited) -> None:
    metric = _OTP_REFUSALS.get(refused.limit)
    if metric is not None:
        metrics.add_metric(name=metric, unit=MetricUnit.Count, value=1)


@api.post(
    "/v1/auth/verify",
    summary="Prove the phone number with its code: sign in as a new device",
    tags=["auth"],
    cache_control="no-store",
    description=(
        "A number that already has an account moves it to this device: the old devices"
        " are signed out (their live connections first get devices_changed, reason"
        ' "reregistered"). If the account has a registration lock and was active in the'
        " last 7 days, the PIN is needed: without it, or with a wrong one, the answer is"
        " 423 registration_locked (attempts_left / retry_after) and the code stays usable;"
        " after 5 wrong PINs each try waits longer (429 pin_backoff, retry_after)."
        " A number with too many failed codes is locked for a day (429 number_locked)."
    ),
    responses=_http.responses(
        400,
        401,
        423,
        429,
        503,
        described={
            429: "too_many_attempts, number_locked, or pin_backoff (Retry-After)",
        },
    ),
)
def verify_otp(request: VerifyRequest) -> TokenAnswer:
    deps = adapters()
    try:
        pair, created = accounts.sign_in(
            request.phone,
            request.code,
            pin=request.pin,
            keys=deps.keys(),
            otps=deps.otps,
            users=deps.users,
            refresh_tokens=deps.refresh_tokens,
            connections=deps.connections,
            gateway=deps.gateway,
            limiter=deps.limiter,
            limits=deps.config.limits,
            now=_now(),
        )
    except NumberLocked as refused:
        _count_otp_refusal(refused)
        raise
    metrics.add_metric(
        name=Metric.SIGN_UP if created else Metric.SIGN_IN, unit=MetricUnit.Count, value=1
    )
    return TokenAnswer(**msgspec.structs.asdict(pair))


@api.post(
    "/v1/auth/refresh",
    summary="Trade a refresh token for a new pair (the old one is spent)",
    tags=["auth"],
    cache_control="no-store",
    responses=_http.responses(400, 401, 503),
)
def refresh(request: RefreshRequest) -> TokenAnswer:
    deps = adapters()
    now = _now()

    def close(user_id: str, device_id: str) -> int:
        open_now = devices.open_connections(
            user_id, device_id, now=now, connections=deps.connections
        )
        if not open_now:
            return 0  # the @connections client is made only when there is one to close
        return devices.close_connections(
            user_id, open_now, connections=deps.connections, gateway=deps.gateway
        )

    pair = tokens.refresh(
        request.refresh_token,
        keys=deps.keys(),
        tokens=deps.refresh_tokens,
        users=deps.users,
        limits=deps.config.limits,
        now=now,
        close=close,
    )
    return TokenAnswer(**msgspec.structs.asdict(pair))


# -- keys -------------------------------------------------------------------------


@api.put(
    "/v1/keys",
    status_code=204,
    summary="Upload this device's identity key, signed prekey and one-time prekeys",
    **_http.bearer("keys", 400, 401, 409, 413, 503, no_store=False),
)
def upload_keys(request: KeysUpload) -> None:
    deps = adapters()
    spk = request.signed_prekey
    upload = KeyUpload(
        identity_key=request.identity_key,
        signed_prekey=SignedPrekeyIn(spk.key_id, spk.public_key, spk.signature),
        one_time_prekeys=tuple(PrekeyIn(k.key_id, k.public_key) for k in request.one_time_prekeys),
    )
    prekeys.upload_keys(
        _http.caller(app.context),
        upload,
        prekeys=deps.prekeys,
        users=deps.users,
        limits=deps.config.limits,
    )


@api.get(
    "/v1/keys/count",
    summary="How many one-time prekeys this device has left",
    **_http.bearer("keys", 401, 503),
)
def count_keys() -> KeyCountAnswer:
    count = prekeys.count_one_time(_http.caller(app.context), prekeys=adapters().prekeys)
    return KeyCountAnswer(one_time_prekeys=count)


@api.get(
    "/v1/keys/<user_id>",
    summary="A prekey bundle per device of a user (consumes one one-time prekey each)",
    **_http.bearer("keys", 400, 401, 404, 429, 503),
)
def get_bundle(user_id: UserId) -> BundleAnswer:
    deps = adapters()
    bundle = prekeys.claim_bundle(
        _http.caller(app.context),
        user_id,
        prekeys=deps.prekeys,
        users=deps.users,
        limiter=deps.limiter,
        limits=deps.config.limits,
        now=_now(),
    )
    metrics.add_metric(name=Metric.BUNDLES_CLAIMED, unit=MetricUnit.Count, value=1)
    if bundle.low:
        metrics.add_metric(name=Metric.PREKEYS_LOW, unit=MetricUnit.Count, value=len(bundle.low))
        metrics.add_metric(
            name=Metric.PREKEYS_DRAINED, unit=MetricUnit.Count, value=len(bundle.drained)
        )
        prekeys.report_low(bundle, now=_now(), connections=deps.connections, gateway=deps.gateway)
    return BundleAnswer(
        user_id=bundle.user_id,
        device_list=device_list_of(bundle.user_id),
        devices=[
            DeviceBundleOut(
                device_id=device.device_id,
                identity_key=b64(device.identity_key),
                signed_prekey=SignedPrekeyModel(
                    key_id=device.signed_prekey.key_id,
                    public_key=b64(device.signed_prekey.public_key),
                    signature=b64(device.signed_prekey.signature),
                ),
                one_time_prekey=(
                    OneTimePrekeyModel(
                        key_id=device.one_time_prekey.key_id,
                        public_key=b64(device.one_time_prekey.public_key),
                    )
                    if device.one_time_prekey
                    else None
                ),
            )
            for device in bundle.devices
        ],
    )


# -- directory, push, presence ----------------------------------------------------


@api.get(
    "/v1/users",
    summary="Find the user registered with a phone number",
    **_http.bearer("directory", 400, 401, 404, 429, 503),
)
def find_user(phone: Annotated[str, Meta(min_length=1, max_length=32)]) -> UserAnswer:
    deps = adapters()
    user_id = directory.find_user(
        _http.caller(app.context),
        phone,
        users=deps.users,
        limiter=deps.limiter,
        limits=deps.config.limits,
        now=_now(),
    )
    return UserAnswer(user_id=user_id)


@api.get(
    "/v1/devices",
    summary="This account's signed-in devices",
    **_http.bearer("devices", 401, 503),
)
def get_devices() -> DevicesAnswer:
    caller = _http.caller(app.context)
    found = devices.list_devices(caller, users=adapters().users)
    return DevicesAnswer(
        devices=[
            DeviceOut(
                device_id=d.device_id,
                created_at=d.created_at,
                current=d.device_id == caller.device_id,
                ready=d.ready,
                push=d.push_platform,
                role=d.role,
                key_index=d.key_index,
            )
            for d in found
        ],
        device_list=device_list_of(caller.user_id),
    )


@api.delete(
    "/v1/devices/<device_id>",
    status_code=204,
    summary="Sign one of this account's devices out for good (this one too)",
    description=(
        "A linked (companion) device may sign out only itself; the primary any device"
        " (and then publishes a device list without it). The account's other devices"
        ' get a devices_changed notice ("unlinked").'
    ),
    **_http.bearer("devices", 400, 401, 403, 404, 503, no_store=False),
)
def delete_device(device_id: DeviceId) -> None:
    deps = adapters()
    caller = _http.caller(app.context)
    devices.may_sign_out(caller, device_id, users=deps.users)
    closed = devices.sign_out(
        caller,
        device_id,
        now=_now(),
        users=deps.users,
        connections=deps.connections,
        gateway=deps.gateway,
    )
    devices.notify_devices_changed(
        caller.user_id,
        "unlinked",
        device_id,
        now=_now(),
        connections=deps.connections,
        gateway=deps.gateway,
    )
    metrics.add_metric(name=Metric.DEVICE_SIGNED_OUT, unit=MetricUnit.Count, value=1)
    logger.info("device signed out", extra={"device_id": device_id, "connections_closed": closed})


@api.delete(
    "/v1/account",
    status_code=204,
    summary="Delete this account and everything the service holds for it",
    description=(
        "Needs a fresh code texted to the account's number for this purpose"
        ' (POST /v1/auth/otp with "purpose": "delete_account"). Removes the user,'
        " devices, keys, tokens, push endpoints, the number's registration, contacts,"
        " media and waiting messages, and leaves every group. If the answer is a 5xx,"
        " ask again with the same token: the deletion continues where it stopped."
    ),
    **_http.bearer("account", 400, 401, 429, 503, no_store=False),
)
def delete_account(request: AccountDeleteRequest) -> None:
    deps = adapters()
    caller = _http.caller(app.context)
    done = account_deletion.delete_account(
        caller,
        request.code,
        keys=deps.keys(),
        stores=deps.account_stores,
        limits=deps.config.limits,
        now=_now(),
    )
    metrics.add_metric(name=Metric.ACCOUNT_DELETED, unit=MetricUnit.Count, value=1)
    logger.info(
        "account deleted", extra={"user_id": caller.user_id, **msgspec.structs.asdict(done)}
    )


@api.put(
    "/v1/account/registration-lock",
    status_code=204,
    summary="Set or change the registration lock PIN (primary device only)",
    description=(
        "Signing in with this account's number on another phone will need the PIN while"
        " the account is active (a device refreshed a token in the last 7 days)."
        " The service keeps only an Argon2id verifier of it."
    ),
    **_http.bearer(
        "account", 400, 401, 403, 503, no_store=False, described={403: "not the primary device"}
    ),
)
def set_registration_lock(request: RegistrationLockRequest) -> None:
    registration_lock.set_lock(
        _http.caller(app.context), request.pin, users=adapters().users, now=_now()
    )


@api.delete(
    "/v1/account/registration-lock",
    status_code=204,
    summary="Remove the registration lock (primary device only)",
    **_http.bearer(
        "account", 401, 403, 503, no_store=False, described={403: "not the primary device"}
    ),
)
def remove_registration_lock() -> None:
    registration_lock.remove_lock(_http.caller(app.context), users=adapters().users)


@api.get(
    "/v1/presence/<user_id>",
    summary="When a user was last online (if they share it with you)",
    **_http.bearer("presence", 400, 401, 404, 503),
)
def get_presence(user_id: UserId) -> PresenceAnswer:
    seen = presence.last_seen(_http.caller(app.context), user_id, users=adapters().users)
    return PresenceAnswer(user_id=user_id, last_seen=seen)


@api.put(
    "/v1/settings/presence",
    status_code=204,
    summary="Choose who sees your last seen",
    **_http.bearer("presence", 400, 401, 503, no_store=False),
)
def set_presence(request: PresenceSettingRequest) -> None:
    presence.set_visibility(_http.caller(app.context), request.last_seen, users=adapters().users)


# -- the document -----------------------------------------------------------------


@api.get("/v1/openapi.json", include_in_schema=False)
def openapi() -> Response[str]:
    # built at its first request (handlers/_openapi.py): no other route needs it
    from parley_server.handlers._openapi import document

    return Response(
        status_code=200,
        content_type="application/json",
        body=document(
            title="Parley HTTP API",
            version="1",
            description=(
                "Sign-in, keys, directory, push, presence, media, groups and call relays."
                " See docs/API.md."
            ),
        ),
    )


app.include_router(media_router)
app.include_router(contacts_router)
app.include_router(groups_router)
app.include_router(devices_router)
app.include_router(push_router)
app.include_router(calls_router)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    answer = app.resolve(event, context)
    # answers by status class: the dashboard's view of errors without reading logs
    status = int(answer.get("statusCode", 500))
    metrics.add_metric(name=http_metric(status), unit=MetricUnit.Count, value=1)
    return answer
