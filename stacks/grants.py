"""Least privilege, written down: what each function may do to each resource.

A function's settings (parley_server.catalogue) say which resources it can
find; this table says what it may do with them. check_grants() refuses a
function whose settings and grants disagree, so a setting added to the
catalogue without a grant here (or the reverse) fails the synth, not a deploy.

DynamoDB access is granted verb by verb with Table.grant: no function is
given dynamodb:Scan (the key design needs none), and only the functions that
delete get DeleteItem.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Flag, auto

from parley_server.catalogue import FUNCTIONS, FunctionSpec, Setting
from parley_server.store.schema import TABLES

__all__ = [
    "GRANTS",
    "FunctionGrants",
    "Ops",
    "check_grants",
    "table_actions",
]


class Ops(Flag):
    """What a function does to a table's items."""

    READ = auto()
    WRITE = auto()  # put and update
    DELETE = auto()


_R, _W, _D = Ops.READ, Ops.WRITE, Ops.DELETE
_ACTIONS: dict[Ops, tuple[str, ...]] = {
    # ConditionCheckItem: a transaction's condition on an item it does not write
    Ops.READ: (
        "dynamodb:GetItem",
        "dynamodb:BatchGetItem",
        "dynamodb:Query",
        "dynamodb:ConditionCheckItem",
    ),
    # IAM cannot tell a batched put from a batched delete; batches are for puts
    # (prekey uploads), deletes that matter return the old item, which batches can't.
    Ops.WRITE: ("dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:BatchWriteItem"),
    Ops.DELETE: ("dynamodb:DeleteItem",),
}


def table_actions(ops: Ops) -> list[str]:
    """The DynamoDB actions `ops` stands for, in a stable order."""
    actions: list[str] = []
    for op in (Ops.READ, Ops.WRITE, Ops.DELETE):
        if op in ops:
            actions.extend(_ACTIONS[op])
    return actions


@dataclass(frozen=True)
class FunctionGrants:
    tables: Mapping[Setting, Ops] = field(default_factory=dict)
    media_upload: bool = False  # sign presigned POSTs
    media_download: bool = False  # sign presigned GETs
    media_delete: bool = False  # delete objects (an account's media, when it is deleted)
    read_signing_secret: bool = False
    manage_connections: bool = False  # post to / drop WebSocket connections
    send_sms: bool = False
    register_push: bool = False  # create a device's SNS platform endpoint
    publish_push: bool = False  # wake an offline device
    enqueue_group_fanout: bool = False  # queue fan-out jobs for large groups
    # TURN credentials of the call relay channels (stacks/calls.py)
    call_relays: bool = False


S = Setting
GRANTS: dict[str, FunctionGrants] = {
    "HttpApi": FunctionGrants(
        tables={
            # accounts, devices, refresh tokens (rotated, revoked), contacts, media ids
            S.USERS_TABLE: _R | _W | _D,
            # a challenge is consumed (deleted) once verified
            S.OTP_TABLE: _R | _W | _D,
            # a one-time prekey is claimed by a conditional delete
            S.PREKEYS_TABLE: _R | _W | _D,
            S.GROUPS_TABLE: _R | _W | _D,
            # one conditional UpdateItem per hit, no read; a GetItem of a phone
            # number's failed codes (its lockout) before a code is texted or checked
            S.RATELIMITS_TABLE: _R | _W,
            # a device signed out has its open connections closed and forgotten
            S.CONNECTIONS_TABLE: _R | _D,
            # deleting an account empties its devices' mailboxes: a Query of the keys,
            # then DeleteItem each (never a write: the HTTP API puts nothing there)
            S.MAILBOX_TABLE: _R | _D,
        },
        media_upload=True,
        media_download=True,
        media_delete=True,
        read_signing_secret=True,
        send_sms=True,
        # also DeleteEndpoint: a replaced token's endpoint, and every endpoint of an
        # account being deleted
        register_push=True,
        # the challenge of a token being registered (PUT /v1/push) is queued for
        # GroupFanout to push: a function that texts codes never publishes to endpoints
        enqueue_group_fanout=True,
        manage_connections=True,
        # GET /v1/calls/relays: each channel's endpoint and TURN credentials
        call_relays=True,
    ),
    # verifies the token and that the device is not revoked
    "WsAuthorizer": FunctionGrants(tables={S.USERS_TABLE: _R}, read_signing_secret=True),
    # records the connection (one PutItem, nothing else: logic/connections.py)
    "WsConnect": FunctionGrants(tables={S.CONNECTIONS_TABLE: _W}),
    # forgets the connection; records last seen on the profile
    "WsDisconnect": FunctionGrants(tables={S.CONNECTIONS_TABLE: _D, S.USERS_TABLE: _W}),
    "WsDefault": FunctionGrants(manage_connections=True),
    "WsSend": FunctionGrants(
        tables={
            S.USERS_TABLE: _R,  # the recipient's devices
            S.CONNECTIONS_TABLE: _R | _D,  # live connections; stale ones are dropped
            S.MAILBOX_TABLE: _W,  # conditional put: a retried send is refused by the write
            S.RATELIMITS_TABLE: _W,
            S.GROUPS_TABLE: _R,  # members of a group
        },
        manage_connections=True,
        publish_push=True,
        enqueue_group_fanout=True,
    ),
    # reads the acked envelopes (BatchGetItem) to learn their senders, stores and
    # posts each sender's delivered receipt, then deletes the envelopes (DeleteItem,
    # or BatchWriteItem for several)
    "WsAck": FunctionGrants(
        tables={
            S.USERS_TABLE: _R,
            S.CONNECTIONS_TABLE: _R | _D,
            S.MAILBOX_TABLE: _R | _W | _D,
        },
        manage_connections=True,
    ),
    # read receipts and typing count each frame: one conditional UpdateItem per window
    "WsReceipt": FunctionGrants(
        tables={
            S.USERS_TABLE: _R,
            S.CONNECTIONS_TABLE: _R | _D,
            S.MAILBOX_TABLE: _W,
            S.RATELIMITS_TABLE: _W,
        },
        manage_connections=True,
    ),
    # only reads the mailbox: envelopes leave it by ack
    "WsSync": FunctionGrants(tables={S.MAILBOX_TABLE: _R}, manage_connections=True),
    # a group's roster is read to relay typing to its other members
    "WsTyping": FunctionGrants(
        tables={S.CONNECTIONS_TABLE: _R | _D, S.GROUPS_TABLE: _R, S.RATELIMITS_TABLE: _W},
        manage_connections=True,
    ),
    # one slice of a large group's message: members' devices, batched envelope
    # writes, posts (stale connections dropped) and pushes; its queue is its
    # event source (stacks/fanout.py), which grants the consuming itself
    "GroupFanout": FunctionGrants(
        tables={S.USERS_TABLE: _R, S.CONNECTIONS_TABLE: _R | _D, S.MAILBOX_TABLE: _W},
        manage_connections=True,
        publish_push=True,
    ),
}

_TABLE_SETTINGS = frozenset(spec.setting for spec in TABLES)


def _implied_settings(grants: FunctionGrants) -> set[Setting]:
    implied = set(grants.tables)
    if grants.media_upload or grants.media_download or grants.media_delete:
        implied.add(Setting.MEDIA_BUCKET)
    if grants.read_signing_secret:
        implied.add(Setting.SIGNING_SECRET_ARN)
    if grants.manage_connections:
        implied.add(Setting.WS_ENDPOINT)
    if grants.register_push or grants.publish_push:
        implied.add(Setting.PUSH_APPS)
    if grants.enqueue_group_fanout:
        implied.add(Setting.GROUP_FANOUT_QUEUE)
    if grants.send_sms:
        # who the texts come from: whoever sends SMS reads it, nobody else does
        implied.add(Setting.SMS_ORIGINATION)
    if grants.call_relays:
        implied.add(Setting.CALL_CHANNELS)
    return implied


_PLAIN = frozenset({Setting.LIMITS, Setting.TEST_NUMBERS, Setting.CALL_RELAYS})


def check_grants(
    functions: tuple[FunctionSpec, ...] = FUNCTIONS,
    grants: Mapping[str, FunctionGrants] = GRANTS,
) -> None:
    """Raise ValueError unless every function's grants match its settings exactly."""
    problems: list[str] = []
    ids = {spec.id for spec in functions}
    for extra in sorted(set(grants) - ids):
        problems.append(f"{extra}: granted, but not in the catalogue")
    for spec in functions:
        if spec.id not in grants:
            problems.append(f"{spec.id}: no entry in stacks/grants.py GRANTS")
            continue
        # PARLEY_LIMITS, PARLEY_TEST_NUMBERS and PARLEY_CALL_RELAYS are plain
        # configuration: they name no resource
        needs = set(spec.settings) - _PLAIN
        has = _implied_settings(grants[spec.id])
        if needs - has:
            problems.append(f"{spec.id}: reads {sorted(needs - has)} but is granted nothing on it")
        if has - needs:
            problems.append(f"{spec.id}: granted {sorted(has - needs)} but does not read it")
        bad_tables = set(grants[spec.id].tables) - _TABLE_SETTINGS
        if bad_tables:
            problems.append(f"{spec.id}: {sorted(bad_tables)} are not tables")
        if any(not ops for ops in grants[spec.id].tables.values()):
            problems.append(f"{spec.id}: a table with no operations")
    if problems:
        raise ValueError("grants and catalogue disagree:\n  " + "\n  ".join(problems))
