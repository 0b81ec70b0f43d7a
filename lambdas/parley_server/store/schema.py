"""Table schemas: the one definition the CDK stack, the local stack and the
test fixtures all build their DynamoDB tables from.

Access patterns (none needs a Scan):

users        pk=USER#<uid>  sk=PROFILE            phone, presence setting, last seen
             pk=USER#<uid>  sk=DEVICE#<did>       device record (revoked flag, push endpoint)
             pk=USER#<uid>  sk=CONTACT#<uid>      "has exchanged keys with" (presence privacy)
             pk=PHONE#<e164> sk=PHONE             phone -> user id (unique by conditional put)
             pk=REFRESH#<hash> sk=REFRESH          refresh token (TTL)
             pk=FAMILY#<id> sk=FAMILY              refresh token family state (TTL)
connections  pk=user_id     sk=connection_id      one Query finds a user's live connections
mailbox      pk=<uid>#<did> sk=<kind>#<sender>#<sender device>#<client id>
             LSI by_order on `ord` (time-ordered) so sync reads oldest first while the
             deterministic sort key lets a conditional put refuse a retried send.
otp          pk=phone                              one live challenge per phone (TTL)
prekeys      pk=<uid>#<did> sk=IDENTITY | SIGNED | OTK#<key id>
groups       pk=group_id    sk=META | MEMBER#<uid>; GSI by_member(member, group_id)
ratelimits   pk=key (window counter, TTL)
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from parley_server.catalogue import Setting

__all__ = ["TABLES", "Attr", "Index", "TableSpec", "create_table_kwargs", "table"]

AttrType = Literal["S", "N", "B"]


class Attr(msgspec.Struct, frozen=True):
    name: str
    type: AttrType = "S"


class Index(msgspec.Struct, frozen=True):
    name: str
    kind: Literal["lsi", "gsi"]
    sort: Attr
    partition: Attr | None = None  # GSIs only; LSIs share the table's partition key
    projection: Literal["ALL", "KEYS_ONLY"] = "ALL"


class TableSpec(msgspec.Struct, frozen=True):
    id: str  # construct id and logical name
    setting: Setting  # the environment variable that carries the table name
    partition: Attr
    sort: Attr | None = None
    ttl_attribute: str | None = None
    indexes: tuple[Index, ...] = ()


TTL = "expires_at"

TABLES: tuple[TableSpec, ...] = (
    TableSpec("Users", Setting.USERS_TABLE, Attr("pk"), Attr("sk"), ttl_attribute=TTL),
    TableSpec(
        "Connections",
        Setting.CONNECTIONS_TABLE,
        Attr("user_id"),
        Attr("connection_id"),
        ttl_attribute=TTL,
    ),
    TableSpec(
        "Mailbox",
        Setting.MAILBOX_TABLE,
        Attr("device"),
        Attr("sk"),
        ttl_attribute=TTL,
        indexes=(Index("by_order", "lsi", sort=Attr("ord")),),
    ),
    TableSpec("Otp", Setting.OTP_TABLE, Attr("phone"), ttl_attribute=TTL),
    TableSpec("Prekeys", Setting.PREKEYS_TABLE, Attr("device"), Attr("sk")),
    TableSpec(
        "Groups",
        Setting.GROUPS_TABLE,
        Attr("group_id"),
        Attr("sk"),
        indexes=(Index("by_member", "gsi", partition=Attr("member"), sort=Attr("group_id")),),
    ),
    TableSpec("RateLimits", Setting.RATELIMITS_TABLE, Attr("key"), ttl_attribute=TTL),
)


def table(table_id: str) -> TableSpec:
    for spec in TABLES:
        if spec.id == table_id:
            return spec
    raise KeyError(table_id)


def create_table_kwargs(spec: TableSpec, name: str) -> dict[str, Any]:
    """Arguments for boto3's create_table that build `spec` (on-demand billing)."""
    attrs: dict[str, AttrType] = {spec.partition.name: spec.partition.type}
    schema = [{"AttributeName": spec.partition.name, "KeyType": "HASH"}]
    if spec.sort:
        attrs[spec.sort.name] = spec.sort.type
        schema.append({"AttributeName": spec.sort.name, "KeyType": "RANGE"})
    lsis: list[dict[str, Any]] = []
    gsis: list[dict[str, Any]] = []
    for index in spec.indexes:
        attrs[index.sort.name] = index.sort.type
        partition = index.partition or spec.partition
        attrs[partition.name] = partition.type
        definition = {
            "IndexName": index.name,
            "KeySchema": [
                {"AttributeName": partition.name, "KeyType": "HASH"},
                {"AttributeName": index.sort.name, "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": index.projection},
        }
        (lsis if index.kind == "lsi" else gsis).append(definition)
    kwargs: dict[str, Any] = {
        "TableName": name,
        "AttributeDefinitions": [
            {"AttributeName": k, "AttributeType": v} for k, v in attrs.items()
        ],
        "KeySchema": schema,
        "BillingMode": "PAY_PER_REQUEST",
    }
    if lsis:
        kwargs["LocalSecondaryIndexes"] = lsis
    if gsis:
        kwargs["GlobalSecondaryIndexes"] = gsis
    return kwargs
