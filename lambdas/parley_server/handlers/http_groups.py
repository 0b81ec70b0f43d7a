"""HTTP group routes: create, read and list groups; add, remove and leave; admins.

A Powertools Router the HttpApi resolver includes. Wiring only: read the
caller (put in the context by the resolver's auth middleware) and the input,
call logic.groups, shape the answer. Errors are ParleyErrors; the resolver maps
them to HTTP answers.
"""

from __future__ import annotations

import time
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from aws_lambda_powertools.metrics import MetricUnit

from parley_server.config import load_config
from parley_server.logic import groups
from parley_server.models.errors import BadRequest, Unauthorized
from parley_server.models.groups import Group
from parley_server.store.aws import client
from parley_server.store.groups import GroupsStore, KnownUsers

__all__ = ["router"]

router = APIGatewayHttpRouter()  # type: ignore[no-untyped-call]
logger = Logger(child=True)
metrics = Metrics()
tracer = Tracer()

_NO_STORE = {"Cache-Control": "no-store"}
# Return annotations are plain dicts (or Any): the resolver reads them to validate
# answers, and resolves them in the tracer wrapper's module, not this one.


def _caller() -> str:
    user_id = router.context.get("user_id")
    if not isinstance(user_id, str) or not user_id:
        raise Unauthorized("authentication required")
    return user_id


def _json_body() -> Any:
    if not router.current_event.decoded_body:
        raise BadRequest("a JSON body is required")
    try:
        # the resolver's own deserializer: its body size limit (413) holds here too
        return router.current_event.json_body
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError, ...
        raise BadRequest("body is not valid JSON") from exc


def _groups() -> GroupsStore:
    return GroupsStore(client("dynamodb"), load_config().groups_table)


def _users() -> KnownUsers:
    return KnownUsers(client("dynamodb"), load_config().users_table)


def _no_content() -> Response[str]:
    return Response(status_code=204, body="", headers=_NO_STORE)


def _changed(name: str, group: Group | None) -> None:
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)
    if group is not None:
        logger.info(name, extra={"group_id": group.group_id, "version": group.version})


@router.post("/v1/groups", status_code=201, cache_control="no-store")
@tracer.capture_method
def create_group() -> dict[str, Any]:
    caller = _caller()
    name, members = groups.parse_create(_json_body())
    group = groups.create_group(
        caller,
        name,
        members,
        now=time.time(),
        limits=load_config().limits,
        groups=_groups(),
        users=_users(),
    )
    _changed("GroupCreated", group)
    return group.view()


@router.get("/v1/groups", cache_control="no-store")
@tracer.capture_method
def list_groups() -> dict[str, Any]:
    found = groups.list_groups(_caller(), groups=_groups())
    return {"groups": [summary.view() for summary in found]}


@router.get("/v1/groups/<group_id>", cache_control="no-store")
@tracer.capture_method
def get_group(group_id: str) -> dict[str, Any]:
    group = groups.get_group(_caller(), groups.parse_group_id(group_id), groups=_groups())
    return group.view()


@router.post("/v1/groups/<group_id>/members", cache_control="no-store")
@tracer.capture_method
def add_members(group_id: str) -> dict[str, Any]:
    caller = _caller()
    gid = groups.parse_group_id(group_id)
    user_ids = groups.parse_add(_json_body())
    group = groups.add_members(
        caller,
        gid,
        user_ids,
        now=time.time(),
        limits=load_config().limits,
        groups=_groups(),
        users=_users(),
    )
    _changed("GroupMembersAdded", group)
    return group.view()


@router.delete("/v1/groups/<group_id>/members/<user_id>", cache_control="no-store")
@tracer.capture_method
def remove_member(group_id: str, user_id: str) -> Any:
    caller = _caller()
    gid = groups.parse_group_id(group_id)
    uid = groups.parse_user_id(user_id)
    group = groups.remove_member(caller, gid, uid, groups=_groups())
    _changed("GroupLeft" if uid == caller else "GroupMemberRemoved", group)
    # leaving answers 204: the group is no longer the caller's to see
    return _no_content() if group is None else group.view()


@router.post("/v1/groups/<group_id>/admins", cache_control="no-store")
@tracer.capture_method
def promote_admin(group_id: str) -> dict[str, Any]:
    caller = _caller()
    gid = groups.parse_group_id(group_id)
    uid = groups.parse_promote(_json_body())
    group = groups.promote_admin(caller, gid, uid, groups=_groups())
    _changed("GroupAdminPromoted", group)
    return group.view()


@router.delete("/v1/groups/<group_id>/admins/<user_id>", cache_control="no-store")
@tracer.capture_method
def dismiss_admin(group_id: str, user_id: str) -> dict[str, Any]:
    caller = _caller()
    gid = groups.parse_group_id(group_id)
    uid = groups.parse_user_id(user_id)
    group = groups.dismiss_admin(caller, gid, uid, groups=_groups())
    _changed("GroupAdminDismissed", group)
    return group.view()
