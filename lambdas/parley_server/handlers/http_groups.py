"""HTTP group routes: create, read and list groups; add, remove and leave; admins.

A Powertools Router the HttpApi resolver includes: its auth middleware puts the
caller in the context, its validation checks the bodies (models/http.py), and
its exception handler turns ParleyErrors into the wire's error answers.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from aws_lambda_powertools.metrics import MetricUnit

from parley_server.handlers import _http
from parley_server.ids import GROUP_ID_PATTERN, USER_ID_PATTERN
from parley_server.logic import groups
from parley_server.metrics import Metric
from parley_server.models.groups import Group
from parley_server.models.http import (
    GroupAnswer,
    GroupsAnswer,
    GroupSummaryAnswer,
    MembersRequest,
    NewGroupRequest,
    PromoteRequest,
)
from parley_server.wiring import adapters

__all__ = ["router"]

router = APIGatewayHttpRouter()  # type: ignore[no-untyped-call]
logger = Logger(child=True)
metrics = Metrics(namespace="Parley", service="parley")

GroupId = Annotated[str, Path(pattern=GROUP_ID_PATTERN)]
UserId = Annotated[str, Path(pattern=USER_ID_PATTERN)]
_GROUP = {404: "no such group, or not a member of it"}


def _changed(name: Metric, group: Group | None) -> None:
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)
    if group is not None:
        logger.info(name, extra={"group_id": group.group_id, "version": group.version})


@router.post(
    "/v1/groups",
    status_code=201,
    summary="Create a group: the caller is its first admin",
    **_http.bearer("groups", 400, 401, 404, 409, 413, 503),
)
def create_group(request: NewGroupRequest) -> GroupAnswer:
    deps = adapters()
    group = groups.create_group(
        _http.caller(router.context),
        request.name,
        request.members,
        now=time.time(),
        limits=deps.config.limits,
        groups=deps.groups,
        users=deps.known_users,
    )
    _changed(Metric.GROUP_CREATED, group)
    return GroupAnswer.of(group)


@router.get(
    "/v1/groups",
    summary="The caller's groups, with the caller's role in each",
    **_http.bearer("groups", 401, 503),
)
def list_groups() -> GroupsAnswer:
    found = groups.list_groups(_http.caller(router.context), groups=adapters().groups)
    return GroupsAnswer(groups=[GroupSummaryAnswer.of(summary) for summary in found])


@router.get(
    "/v1/groups/<group_id>",
    summary="A group the caller is a member of",
    **_http.bearer("groups", 400, 401, 404, 503, described=_GROUP),
)
def get_group(group_id: GroupId) -> GroupAnswer:
    group = groups.get_group(_http.caller(router.context), group_id, groups=adapters().groups)
    return GroupAnswer.of(group)


@router.post(
    "/v1/groups/<group_id>/members",
    summary="Add registered users to a group (admins only); the version moves",
    **_http.bearer("groups", 400, 401, 403, 404, 409, 413, 503, described=_GROUP),
)
def add_members(group_id: GroupId, request: MembersRequest) -> GroupAnswer:
    deps = adapters()
    group = groups.add_members(
        _http.caller(router.context),
        group_id,
        request.user_ids,
        now=time.time(),
        limits=deps.config.limits,
        groups=deps.groups,
        users=deps.known_users,
    )
    _changed(Metric.GROUP_MEMBERS_ADDED, group)
    return GroupAnswer.of(group)


@router.delete(
    "/v1/groups/<group_id>/members/<user_id>",
    summary="Remove a member (admins only), or leave: the caller's own user id",
    description="Leaving answers 204 with no body: the group is no longer the caller's to see.",
    tags=["groups"],
    security=_http.BEARER,
    cache_control="no-store",
    responses={
        200: {
            "description": "the group as it is now",
            "content": {"application/json": {"model": GroupAnswer}},
        },
        204: {"description": "the caller left"},
        **_http.responses(400, 401, 403, 404, 409, 503, described=_GROUP),
    },
)
def remove_member(group_id: GroupId, user_id: UserId) -> Any:
    me = _http.caller(router.context)
    group = groups.remove_member(me, group_id, user_id, groups=adapters().groups)
    _changed(Metric.GROUP_LEFT if user_id == me.user_id else Metric.GROUP_MEMBER_REMOVED, group)
    if group is None:
        return Response(status_code=204, body="", headers={"Cache-Control": "no-store"})
    return GroupAnswer.of(group).model_dump()


@router.post(
    "/v1/groups/<group_id>/admins",
    summary="Make a member an admin (admins only)",
    **_http.bearer("groups", 400, 401, 403, 404, 503, described=_GROUP),
)
def promote_admin(group_id: GroupId, request: PromoteRequest) -> GroupAnswer:
    me = _http.caller(router.context)
    group = groups.promote_admin(me, group_id, request.user_id, groups=adapters().groups)
    _changed(Metric.GROUP_ADMIN_PROMOTED, group)
    return GroupAnswer.of(group)


@router.delete(
    "/v1/groups/<group_id>/admins/<user_id>",
    summary="Make an admin a plain member (admins only; never the last admin)",
    **_http.bearer("groups", 400, 401, 403, 404, 409, 503, described=_GROUP),
)
def dismiss_admin(group_id: GroupId, user_id: UserId) -> GroupAnswer:
    me = _http.caller(router.context)
    group = groups.dismiss_admin(me, group_id, user_id, groups=adapters().groups)
    _changed(Metric.GROUP_ADMIN_DISMISSED, group)
    return GroupAnswer.of(group)
