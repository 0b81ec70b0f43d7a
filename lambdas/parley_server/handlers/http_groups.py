"""HTTP group routes: create, read and list groups, and apply signed changes (add,
remove, leave, promote, dismiss, vouch).

A Powertools Router the HttpApi resolver includes: its auth middleware puts the
caller in the context, its validation checks the bodies (models/http.py), and
its exception handler turns ParleyErrors into the wire's error answers. The
changes are read by logic/group_changes.py and applied by logic/groups.py.
"""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from aws_lambda_powertools.metrics import MetricUnit
from msgspec import Meta

from parley_server.handlers import _http
from parley_server.handlers._routes import Routes
from parley_server.logic import group_changes, groups
from parley_server.metrics import Metric
from parley_server.models.groups import Group
from parley_server.models.http import (
    GroupAnswer,
    GroupChangeRequest,
    GroupId,
    GroupsAnswer,
    GroupSummaryAnswer,
)
from parley_server.store.groups import MAX_SEQ
from parley_server.wiring import adapters

__all__ = ["router"]

router = APIGatewayHttpRouter()  # type: ignore[no-untyped-call]
api = Routes(router)
logger = Logger(child=True)
metrics = Metrics(namespace="Parley", service="parley")

_GROUP = {404: "no such group, or not a member of it"}
_SIGNED = {
    400: "invalid input: invalid_group_change (`field` names it), invalid_signature",
    409: (
        "group_changed (sign anew after `rev` and `head`), group_exists, group_full,"
        " last_admin, no_device_list"
    ),
}
# what each kind of change counts
_COUNTED = {
    "create": Metric.GROUP_CREATED,
    "add": Metric.GROUP_MEMBERS_ADDED,
    "remove": Metric.GROUP_MEMBER_REMOVED,
    "leave": Metric.GROUP_LEFT,
    "promote": Metric.GROUP_ADMIN_PROMOTED,
    "dismiss": Metric.GROUP_ADMIN_DISMISSED,
    "vouch": Metric.GROUP_VOUCHED,
}


def _now() -> float:
    """The HTTP API's one clock (http_api._now, which tests move)."""
    from parley_server.handlers import http_api  # late: http_api includes this router

    return http_api._now()


def _group_answers(
    status: int,
    *errors: int,
    gone: bool = False,
    signed: bool = False,
    described: dict[int, str] | None = None,
) -> dict[str, Any]:
    """A route's decorator arguments: bearer, its group answer and its error answers."""
    answers: dict[int, Any] = {
        status: {
            "description": "the group as it is now",
            "content": {"application/json": {"model": GroupAnswer}},
        },
    }
    if gone:
        answers[204] = {"description": "the caller left (the group is no longer theirs to see)"}
    return {
        "tags": ["groups"],
        "security": _http.BEARER,
        "cache_control": "no-store",
        "responses": {
            **answers,
            **_http.responses(
                *errors,
                described={**_GROUP, **(_SIGNED if signed else {}), **(described or {})},
            ),
        },
    }


def _changed(kind: str, group_id: str, group: Group | None) -> None:
    metrics.add_metric(name=_COUNTED[kind], unit=MetricUnit.Count, value=1)
    extra: dict[str, Any] = {"group_id": group_id, "kind": kind}
    if group is not None:
        extra |= {"version": group.version, "rev": group.rev}
    logger.info(_COUNTED[kind], extra=extra)


@api.post(
    "/v1/groups",
    status_code=201,
    summary="Create a group with a signed create change: the caller is its first admin",
    description=(
        'Body: {"change": {"body", "signature"}}, a `create` change signed by the'
        " caller's device (docs/API.md, Signed group changes). The group id is the"
        " change's, chosen by the client."
    ),
    **_group_answers(
        201,
        400,
        401,
        404,
        409,
        413,
        503,
        signed=True,
        described={404: "unknown_users: a member named is no registered user"},
    ),
)
def create_group(request: GroupChangeRequest) -> Any:
    deps = adapters()
    change = group_changes.read_change(request.change.body, request.change.signature)
    group = groups.create_group(
        _http.caller(router.context),
        change,
        now=_now(),
        limits=deps.config.limits,
        groups=deps.groups,
        users=deps.known_users,
        device_lists=deps.users,
    )
    _changed("create", group.group_id, group)
    return GroupAnswer.of(group)


@api.get(
    "/v1/groups",
    summary="The caller's groups, with the caller's role in each",
    **_http.bearer("groups", 401, 503),
)
def list_groups() -> GroupsAnswer:
    found = groups.list_groups(_http.caller(router.context), groups=adapters().groups)
    return GroupsAnswer(groups=[GroupSummaryAnswer.of(summary) for summary in found])


@api.get(
    "/v1/groups/<group_id>",
    summary="A group the caller is a member of, and the entries of its chain",
    description=(
        "With `changes_after=N`, the answer also has `changes`: the entries of the"
        " group's chain after seq N, in order, at most 100, and `more`: whether more"
        " follow (ask again after the last seq)."
    ),
    **_group_answers(200, 400, 401, 404, 503),
)
def get_group(
    group_id: GroupId,
    changes_after: Annotated[
        int, Meta(ge=0, le=MAX_SEQ, description="the last seq the client has (0: from the start)")
    ]
    | None = None,
) -> Any:
    caller = _http.caller(router.context)
    store = adapters().groups
    if changes_after is None:
        return GroupAnswer.of(groups.get_group(caller, group_id, groups=store))
    group, page = groups.group_changes(caller, group_id, changes_after, groups=store)
    return GroupAnswer.of(group, page)


@api.post(
    "/v1/groups/<group_id>/changes",
    summary="Apply a signed change to a group: add, remove, leave, promote, dismiss, vouch",
    description=(
        'Body: {"change": {"body", "signature"}}, signed by the caller\'s device for the'
        " group as it is: seq = rev + 1, prev = the hash of the chain's head. A change"
        " signed for an older state is refused (409 group_changed, with `rev` and"
        " `head`): read the group and sign anew. A leave answers 204."
    ),
    **_group_answers(200, 400, 401, 403, 404, 409, 413, 503, gone=True, signed=True),
)
def change_group(group_id: GroupId, request: GroupChangeRequest) -> Any:
    deps = adapters()
    change = group_changes.read_change(request.change.body, request.change.signature)
    group = groups.apply_change(
        _http.caller(router.context),
        group_id,
        change,
        now=_now(),
        limits=deps.config.limits,
        groups=deps.groups,
        users=deps.known_users,
        device_lists=deps.users,
    )
    _changed(change.kind, group_id, group)
    if group is None:
        return Response(status_code=204, body="", headers={"Cache-Control": "no-store"})
    return GroupAnswer.of(group)
