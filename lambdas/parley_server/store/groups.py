"""Groups in DynamoDB, and the writes a group message fans out into.

Groups table (see store/schema.py):

    group_id / CHANGE#<seq:010d> body, signature (empty for the service's entries),
                                 cert_body, cert_signature (the author's signed
                                 device list at commit time; absent for the
                                 service's entries)
    group_id / META              name, created_by, created_ms, version, rev,
                                 member_count, admin_count, head, head_hash
                                 (head: the seq of the chain's last entry; both
                                 absent for a group that has no chain yet)
    group_id / MEMBER#<uid>      member (= uid, the by_member GSI's key), role,
                                 joined_ms, added_by

Every change is one TransactWriteItems: the META update is conditional on the
`rev` the change was computed from, and each member item on being as the change
expects (absent for an add, present with the expected role for a remove or a
role change); the change's chain entry is put in the same transaction, on
condition that its seq is free. Two concurrent changes cannot both commit, so
neither the member limit nor "at least one admin" can be broken by a race, nor
the chain forked; the loser gets a Conflict with code `group_changed`.

Sort keys sort as bytes: CHANGE#... < MEMBER#... < META ("MEM" < "MET"). A group's
META and members are the key range MEMBER# .. META and its chain the range
CHANGE#0000000001 .. CHANGE#9999999999, so reading the one never reads the other
(a roster read stays one small Query however long the chain grows).

Also here: the SQS queue of fan-out jobs. (The envelopes a job writes go through
store/mailbox.py's `EnvelopeWriter`; the member check, store/users.py's `KnownUsers`.)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from parley_server.models.errors import DependencyUnavailable, GroupChanged, PayloadTooLarge
from parley_server.models.groups import (
    ADMIN,
    MEMBER,
    ChainEntry,
    ChainPage,
    FanoutJob,
    Group,
    GroupChange,
    GroupSummary,
    Member,
    Membership,
    Role,
    Roster,
)
from parley_server.store.dynamo import (
    BATCH_WRITE_MAX,
    Retry,
    backoff,
    batch_get,
    query_pages,
)

__all__ = [
    "BATCH_WRITE_MAX",
    "CHANGES_PAGE",
    "MAX_SEQ",
    "TRANSACT_MAX_ITEMS",
    "FanoutQueue",
    "GroupsStore",
]

META = "META"
MEMBER_PREFIX = "MEMBER#"
CHANGE_PREFIX = "CHANGE#"
MAX_SEQ = 9_999_999_999  # a seq is ten digits in its sort key
CHANGES_PAGE = 100  # chain entries one read answers at most
BY_MEMBER = "by_member"
TRANSACT_MAX_ITEMS = 100  # DynamoDB's limit on one TransactWriteItems
# Unprocessed batch items are retried this many times, with a short backoff.
_BATCH_ROUNDS = 6
# A group read again because a change committed while it was being read, at most.
_SNAPSHOT_TRIES = 3
_GROUPS_BATCH = Retry(_BATCH_ROUNDS, "group store unavailable", "group store is throttling", True)
_RETRYABLE_CANCEL = frozenset({"ConditionalCheckFailed", "TransactionConflict"})


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _role(raw: str) -> Role:
    return ADMIN if raw == ADMIN else MEMBER


def _member_key(group_id: str, user_id: str) -> dict[str, Any]:
    return {"group_id": {"S": group_id}, "sk": {"S": MEMBER_PREFIX + user_id}}


def _meta_key(group_id: str) -> dict[str, Any]:
    return {"group_id": {"S": group_id}, "sk": {"S": META}}


def _member_item(group_id: str, member: Member) -> dict[str, Any]:
    return {
        **_member_key(group_id, member.user_id),
        "member": {"S": member.user_id},
        "role": {"S": member.role},
        "joined_ms": {"N": str(member.joined_ms)},
        "added_by": {"S": member.added_by},
    }


def _change_key(group_id: str, seq: int) -> dict[str, Any]:
    return {"group_id": {"S": group_id}, "sk": {"S": f"{CHANGE_PREFIX}{seq:010d}"}}


def _change_item(group_id: str, entry: ChainEntry) -> dict[str, Any]:
    item: dict[str, Any] = {
        **_change_key(group_id, entry.seq),
        "body": {"B": entry.body},
        "signature": {"B": entry.signature},
    }
    if entry.cert_body is not None and entry.cert_signature is not None:
        item["cert_body"] = {"B": entry.cert_body}
        item["cert_signature"] = {"B": entry.cert_signature}
    return item


def _change_from(item: dict[str, Any]) -> ChainEntry:
    return ChainEntry(
        seq=int(item["sk"]["S"].removeprefix(CHANGE_PREFIX)),
        body=bytes(item["body"]["B"]),
        signature=bytes(item["signature"]["B"]),
        cert_body=bytes(item["cert_body"]["B"]) if "cert_body" in item else None,
        cert_signature=bytes(item["cert_signature"]["B"]) if "cert_signature" in item else None,
    )


def _group_from(group_id: str, meta: dict[str, Any], members: list[Member]) -> Group:
    return Group(
        group_id=group_id,
        name=meta["name"]["S"],
        created_by=meta["created_by"]["S"],
        created_ms=int(meta["created_ms"]["N"]),
        version=int(meta["version"]["N"]),
        rev=int(meta["rev"]["N"]),
        members=tuple(members),
        head=int(meta["head"]["N"]) if "head" in meta else 0,
        head_hash=bytes(meta["head_hash"]["B"]) if "head_hash" in meta else b"",
    )


def _member_from(item: dict[str, Any]) -> Member:
    return Member(
        user_id=item["sk"]["S"].removeprefix(MEMBER_PREFIX),
        role=_role(item["role"]["S"]),
        joined_ms=int(item["joined_ms"]["N"]),
        added_by=item["added_by"]["S"],
    )


class GroupsStore:
    """Groups, their members and admins. Takes its DynamoDB client; owns every call."""

    def __init__(self, dynamodb: Any, table: str) -> None:
        self._ddb = dynamodb
        self._table = table

    # -- reading -------------------------------------------------------------------

    def load(self, group_id: str) -> Group | None:
        """The group and all its members as of one moment (strongly consistent), or None.

        META, the members, then META again: a change that commits between the reads
        moves `rev`, and the reads are made again (a few times, then GroupChanged).
        So the members always match the version and head the answer names: a member
        added a moment ago never shows up in a snapshot of the chain before them
        (members' apps would take them for one the service slipped in).
        """
        meta = self._meta(group_id)
        for _ in range(_SNAPSHOT_TRIES):
            if meta is None:
                return None
            members = [
                _member_from(item)
                for item in self._query_partition(group_id, prefix=MEMBER_PREFIX, consistent=True)
            ]
            after = self._meta(group_id)
            if after is not None and after["rev"] == meta["rev"]:
                members.sort(key=lambda m: m.seniority)
                return _group_from(group_id, meta, members)
            meta = after
        raise GroupChanged("the group keeps changing; try again")

    def _meta(self, group_id: str) -> dict[str, Any] | None:
        try:
            answer = self._ddb.get_item(
                TableName=self._table, Key=_meta_key(group_id), ConsistentRead=True
            )
        except ClientError as exc:
            raise DependencyUnavailable("group store unavailable") from exc
        item: dict[str, Any] | None = answer.get("Item")
        return item

    def changes(self, group_id: str, after: int, head: int) -> ChainPage:
        """The chain's entries with `after` < seq <= `head`, in order: at most
        CHANGES_PAGE, and fewer when DynamoDB's 1 MB page ends first (`more` says
        whether any follow). One strongly consistent Query of that key range."""
        head = min(head, MAX_SEQ)
        if after >= head:
            return ChainPage((), False)
        try:
            answer = self._ddb.query(
                TableName=self._table,
                KeyConditionExpression="group_id = :g AND sk BETWEEN :lo AND :hi",
                ExpressionAttributeValues={
                    ":g": {"S": group_id},
                    ":lo": {"S": f"{CHANGE_PREFIX}{after + 1:010d}"},
                    ":hi": {"S": f"{CHANGE_PREFIX}{head:010d}"},
                },
                ConsistentRead=True,
                Limit=CHANGES_PAGE + 1,  # one more than a page: whether more follow
            )
        except ClientError as exc:
            raise DependencyUnavailable("group store unavailable") from exc
        items = answer.get("Items", [])
        entries = tuple(_change_from(item) for item in items[:CHANGES_PAGE])
        more = len(items) > CHANGES_PAGE or "LastEvaluatedKey" in answer
        return ChainPage(entries, more)

    def forget_changes(self, group_id: str) -> int:
        """Delete every entry of the chain of a group that has ended; how many went.
        One Query of the keys, then a DeleteItem each."""
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "group_id = :g AND begins_with(sk, :p)",
            "ExpressionAttributeValues": {":g": {"S": group_id}, ":p": {"S": CHANGE_PREFIX}},
            "ProjectionExpression": "group_id, sk",
            "ConsistentRead": True,
        }
        deleted = 0
        for page in query_pages(self._ddb, kwargs, "group store unavailable"):
            for item in page.get("Items", []):
                try:
                    self._ddb.delete_item(
                        TableName=self._table,
                        Key={"group_id": item["group_id"], "sk": item["sk"]},
                    )
                except ClientError as exc:
                    raise DependencyUnavailable("group store unavailable") from exc
                deleted += 1
        return deleted

    def roster(self, group_id: str) -> Roster | None:
        """Who a message to the group goes to now: one strongly consistent Query (of
        META and the members: never the chain)."""
        items = self._query_partition(group_id, prefix=None, consistent=True)
        meta = next((item for item in items if item["sk"]["S"] == META), None)
        if meta is None:
            return None
        members = tuple(
            item["sk"]["S"].removeprefix(MEMBER_PREFIX)
            for item in items
            if item["sk"]["S"].startswith(MEMBER_PREFIX)
        )
        return Roster(group_id, int(meta["version"]["N"]), members)

    def memberships(self, user_id: str) -> list[Membership]:
        """The groups `user_id` is in, from the by_member index (eventually consistent)."""
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": BY_MEMBER,
            "KeyConditionExpression": "#m = :uid",
            "ExpressionAttributeNames": {"#m": "member", "#r": "role"},
            "ExpressionAttributeValues": {":uid": {"S": user_id}},
            "ProjectionExpression": "group_id, #r",
        }
        return [
            Membership(item["group_id"]["S"], _role(item["role"]["S"]))
            for page in query_pages(self._ddb, kwargs, "group store unavailable")
            for item in page.get("Items", [])
        ]

    def summaries(self, memberships: Sequence[Membership]) -> list[GroupSummary]:
        """Name, version and size of each group (groups deleted meanwhile are left out)."""
        roles = {m.group_id: m.role for m in memberships}
        found: list[GroupSummary] = []
        keys = [_meta_key(group_id) for group_id in roles]
        for item in batch_get(self._ddb, self._table, keys, _GROUPS_BATCH):
            group_id = item["group_id"]["S"]
            found.append(
                GroupSummary(
                    group_id=group_id,
                    name=item["name"]["S"],
                    version=int(item["version"]["N"]),
                    member_count=int(item["member_count"]["N"]),
                    role=roles[group_id],
                )
            )
        found.sort(key=lambda s: (s.name.casefold(), s.group_id))
        return found

    def _query_partition(
        self, group_id: str, *, prefix: str | None, consistent: bool
    ) -> list[dict[str, Any]]:
        condition = "group_id = :g"
        values: dict[str, Any] = {":g": {"S": group_id}}
        if prefix is not None:
            condition += " AND begins_with(sk, :p)"
            values[":p"] = {"S": prefix}
        else:  # META and every MEMBER# item, none of the chain's
            condition += " AND sk BETWEEN :lo AND :hi"
            values[":lo"] = {"S": MEMBER_PREFIX}
            values[":hi"] = {"S": META}
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": condition,
            "ExpressionAttributeValues": values,
            "ConsistentRead": consistent,
        }
        # 1024 members of ~150 bytes: one 1 MB page in practice
        return [
            item
            for page in query_pages(self._ddb, kwargs, "group store unavailable")
            for item in page.get("Items", [])
        ]

    # -- writing -------------------------------------------------------------------

    def create(self, group: Group, entry: ChainEntry | None = None) -> None:
        """Store a new group with its first members and the first entry of its chain
        (its signed create; the group's head must name it), all or nothing.

        Raises Conflict (code `group_changed`) when the group id is taken."""
        extra = 1 + (1 if entry is not None else 0)
        if len(group.members) + extra > TRANSACT_MAX_ITEMS:
            raise PayloadTooLarge(
                f"a group starts with at most {TRANSACT_MAX_ITEMS - extra} members",
                limit=TRANSACT_MAX_ITEMS - extra,
            )
        meta = {
            **_meta_key(group.group_id),
            "name": {"S": group.name},
            "created_by": {"S": group.created_by},
            "created_ms": {"N": str(group.created_ms)},
            "version": {"N": str(group.version)},
            "rev": {"N": str(group.rev)},
            "member_count": {"N": str(len(group.members))},
            "admin_count": {"N": str(len(group.admin_ids))},
        }
        if entry is not None:
            meta["head"] = {"N": str(group.head)}
            meta["head_hash"] = {"B": group.head_hash}
        items: list[dict[str, Any]] = [
            {
                "Put": {
                    "TableName": self._table,
                    "Item": meta,
                    "ConditionExpression": "attribute_not_exists(group_id)",
                }
            }
        ]
        items.extend(
            {"Put": {"TableName": self._table, "Item": _member_item(group.group_id, member)}}
            for member in group.members
        )
        if entry is not None:
            items.append(self._put_change(group.group_id, entry))
        self._transact(items)

    def commit(self, change: GroupChange) -> None:
        """Apply `change` if the group is still as it was computed from.

        Raises Conflict (code `group_changed`) when anything moved meanwhile.
        """
        touched = len(change.added) + len(change.removed) + len(change.role_changes)
        extra = 1 + (1 if change.entry is not None else 0)  # META, and the chain entry
        if touched + extra > TRANSACT_MAX_ITEMS:
            raise PayloadTooLarge(
                f"one change may touch at most {TRANSACT_MAX_ITEMS - extra} members",
                limit=TRANSACT_MAX_ITEMS - extra,
            )
        table = self._table
        items: list[dict[str, Any]] = []
        if change.delete_group:
            items.append(
                {
                    "Delete": {
                        "TableName": table,
                        "Key": _meta_key(change.group_id),
                        "ConditionExpression": "rev = :rev",
                        "ExpressionAttributeValues": {":rev": {"N": str(change.rev)}},
                    }
                }
            )
        else:
            update = (
                "SET rev = :next, version = :version, member_count = :members, "
                "admin_count = :admins"
            )
            values: dict[str, Any] = {
                ":rev": {"N": str(change.rev)},
                ":next": {"N": str(change.rev + 1)},
                ":version": {"N": str(change.version)},
                ":members": {"N": str(change.member_count)},
                ":admins": {"N": str(change.admin_count)},
            }
            if change.entry is not None:
                update += ", head = :head, head_hash = :hash"
                values[":head"] = {"N": str(change.entry.seq)}
                values[":hash"] = {"B": change.head_hash}
            items.append(
                {
                    "Update": {
                        "TableName": table,
                        "Key": _meta_key(change.group_id),
                        "UpdateExpression": update,
                        "ConditionExpression": "rev = :rev",
                        "ExpressionAttributeValues": values,
                    }
                }
            )
            if change.entry is not None:
                items.append(self._put_change(change.group_id, change.entry))
        for member in change.added:
            items.append(
                {
                    "Put": {
                        "TableName": table,
                        "Item": _member_item(change.group_id, member),
                        "ConditionExpression": "attribute_not_exists(sk)",
                    }
                }
            )
        for member in change.removed:
            items.append(
                {
                    "Delete": {
                        "TableName": table,
                        "Key": _member_key(change.group_id, member.user_id),
                        "ConditionExpression": "#r = :role",
                        "ExpressionAttributeNames": {"#r": "role"},
                        "ExpressionAttributeValues": {":role": {"S": member.role}},
                    }
                }
            )
        for member, role in change.role_changes:
            items.append(
                {
                    "Update": {
                        "TableName": table,
                        "Key": _member_key(change.group_id, member.user_id),
                        "UpdateExpression": "SET #r = :new",
                        "ConditionExpression": "#r = :old",
                        "ExpressionAttributeNames": {"#r": "role"},
                        "ExpressionAttributeValues": {
                            ":old": {"S": member.role},
                            ":new": {"S": role},
                        },
                    }
                }
            )
        self._transact(items)

    def _put_change(self, group_id: str, entry: ChainEntry) -> dict[str, Any]:
        return {
            "Put": {
                "TableName": self._table,
                "Item": _change_item(group_id, entry),
                "ConditionExpression": "attribute_not_exists(sk)",
            }
        }

    def _transact(self, items: list[dict[str, Any]]) -> None:
        try:
            self._ddb.transact_write_items(TransactItems=items)
        except ClientError as exc:
            if _code(exc) == "TransactionCanceledException":
                reasons = {str(r.get("Code")) for r in exc.response.get("CancellationReasons", [])}
                if reasons & _RETRYABLE_CANCEL or not reasons:
                    raise GroupChanged("the group changed meanwhile; try again") from exc
            raise DependencyUnavailable("group store unavailable") from exc


# SQS limits: 10 entries and 256 KiB per SendMessageBatch (and per message).
_SQS_BATCH_ENTRIES = 10
_SQS_BATCH_BYTES = 256 * 1024


class FanoutQueue:
    """The FIFO queue of fan-out jobs (consumed by the GroupFanout function).

    Message group = group id + slice: slice k of message n is processed before
    slice k of message n+1, so each member still gets a sender's messages in
    order, while different slices of one message run in parallel. The
    deduplication id names the message and slice, so a send retried within
    SQS's five-minute window is not fanned out twice.
    """

    def __init__(self, sqs: Any, queue_url: str) -> None:
        self._sqs = sqs
        self._url = queue_url

    def enqueue(self, jobs: Sequence[FanoutJob]) -> int:
        """Queue every job; the number of SendMessageBatch calls it took."""
        calls = 0
        batch: list[dict[str, Any]] = []
        size = 0
        for job in jobs:
            body = job.to_json()
            entry = {
                "Id": str(job.chunk),
                "MessageBody": body,
                "MessageGroupId": f"{job.group_id}-{job.chunk}",
                "MessageDeduplicationId": (
                    f"{job.sender}-{job.sender_device}-{job.client_id}-{job.chunk}"
                ),
            }
            if batch and (len(batch) == _SQS_BATCH_ENTRIES or size + len(body) > _SQS_BATCH_BYTES):
                calls += self._send(batch)
                batch, size = [], 0
            batch.append(entry)
            size += len(body)
        if batch:
            calls += self._send(batch)
        return calls

    def _send(self, entries: list[dict[str, Any]]) -> int:
        calls = 0
        pending = entries
        try:
            for round_ in range(_BATCH_ROUNDS):
                backoff(round_)
                calls += 1
                answer = self._sqs.send_message_batch(QueueUrl=self._url, Entries=pending)
                failed = {f["Id"] for f in answer.get("Failed", []) if not f.get("SenderFault")}
                if any(f.get("SenderFault") for f in answer.get("Failed", [])):
                    raise DependencyUnavailable("fan-out queue refused a job")
                pending = [e for e in pending if e["Id"] in failed]
                if not pending:
                    return calls
        except (ClientError, BotoCoreError) as exc:
            raise DependencyUnavailable("fan-out queue unavailable") from exc
        raise DependencyUnavailable("fan-out queue is throttling")
