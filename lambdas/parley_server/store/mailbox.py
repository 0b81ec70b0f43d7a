"""Per-device mailboxes in DynamoDB: envelopes wait here until their device acks them.

Item (see store/schema.py): pk `device` = "<uid>#<did>" of the recipient device,
sk = the server id ("m#<sender>#<sender device>#<client id>" or
"r#<reader>#<reader device>#<receipt id>"), `ord` (time-ordered, LSI `by_order`),
`body` (ciphertext bytes, stored raw: a quarter smaller than its base64) or
`status` + `ids`, and `expires_at` (TTL). Sender, client id and time are read
back from the keys, so the item carries nothing twice.

TTL deletion is lazy, so every read here treats an item whose `expires_at` has
passed as absent, and a put may overwrite such an item.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from botocore.exceptions import ClientError

from parley_server.models.errors import DependencyUnavailable
from parley_server.models.frames import (
    Envelope,
    MessageEnvelope,
    Page,
    Position,
    ReceiptEnvelope,
    mailbox_key,
    parse_server_id,
)
from parley_server.store.dynamo import Retry, batch_write, query_pages

__all__ = ["EnvelopeWriter", "Mailbox"]

_BY_ORDER = "by_order"
# A page is read in rounds of Query; a run of expired items cannot keep one
# invocation busy for long: after this many rounds the page ends early.
_MAX_ROUNDS = 5
_BATCH = Retry(6, "mailbox unavailable", "mailbox is throttling", True)


def _item(envelope: Envelope) -> dict[str, Any]:
    item: dict[str, Any] = {
        "device": {"S": mailbox_key(envelope.recipient, envelope.recipient_device)},
        "sk": {"S": envelope.server_id},
        "ord": {"S": envelope.ord},
        "expires_at": {"N": str(envelope.expires_at)},
    }
    if isinstance(envelope, MessageEnvelope):
        item["body"] = {"B": envelope.body}
        if envelope.group is not None:
            item["group"] = {"S": envelope.group}
    else:
        item["status"] = {"S": envelope.status}
        item["ids"] = {"L": [{"S": i} for i in envelope.ids]}
    return item


def _envelope(item: dict[str, Any]) -> Envelope | None:
    """The envelope an item holds, or None for an item this code did not write."""
    recipient, _, recipient_device = item["device"]["S"].partition("#")
    parsed = parse_server_id(item["sk"]["S"])
    if parsed is None:
        return None
    ord_ = item["ord"]["S"]
    expires_at = int(item["expires_at"]["N"])
    if parsed.kind == "m":
        return MessageEnvelope(
            recipient=recipient,
            recipient_device=recipient_device,
            sender=parsed.sender,
            sender_device=parsed.sender_device,
            client_id=parsed.key,
            body=bytes(item["body"]["B"]),
            ord=ord_,
            expires_at=expires_at,
            group=item["group"]["S"] if "group" in item else None,
        )
    return ReceiptEnvelope(
        recipient=recipient,
        recipient_device=recipient_device,
        sender=parsed.sender,
        sender_device=parsed.sender_device,
        status=item["status"]["S"],
        ids=tuple(v["S"] for v in item["ids"]["L"]),
        ord=ord_,
        expires_at=expires_at,
    )


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class Mailbox:
    """Envelopes per recipient device: put once, read in order, delete on ack."""

    def __init__(self, dynamodb: Any, table: str) -> None:
        self._ddb = dynamodb
        self._table = table

    def put(self, envelope: Envelope, *, now: float) -> Envelope | None:
        """Store `envelope` unless the same id is pending; then return the pending one.

        The condition decides, so there is no read first: a retried send costs
        one refused write and learns the original (its time, for `sent`).
        """
        try:
            self._ddb.put_item(
                TableName=self._table,
                Item=_item(envelope),
                ConditionExpression="attribute_not_exists(sk) OR expires_at <= :now",
                ExpressionAttributeValues={":now": {"N": str(int(now))}},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
                ReturnConsumedCapacity="TOTAL",
            )
        except ClientError as exc:
            if _code(exc) == "ConditionalCheckFailedException":
                old = exc.response.get("Item")
                return _envelope(old) if old else envelope
            raise DependencyUnavailable("mailbox unavailable") from exc
        return None

    def get_many(
        self, user_id: str, device_id: str, server_ids: Sequence[str], *, now: float
    ) -> dict[str, Envelope]:
        """The live envelopes of this device's mailbox among `server_ids`, by server id
        (one strongly consistent BatchGetItem per 100 ids)."""
        device = mailbox_key(user_id, device_id)
        keys = [{"device": {"S": device}, "sk": {"S": sid}} for sid in dict.fromkeys(server_ids)]
        found: dict[str, Envelope] = {}
        try:
            for start in range(0, len(keys), 100):  # BatchGetItem's limit
                request: dict[str, Any] = {
                    self._table: {"Keys": keys[start : start + 100], "ConsistentRead": True}
                }
                for _ in range(_MAX_ROUNDS):
                    answer = self._ddb.batch_get_item(
                        RequestItems=request, ReturnConsumedCapacity="TOTAL"
                    )
                    for item in answer.get("Responses", {}).get(self._table, []):
                        envelope = _envelope(item)
                        if envelope is not None and envelope.expires_at > now:
                            found[envelope.server_id] = envelope
                    request = answer.get("UnprocessedKeys") or {}
                    if not request:
                        break
                else:
                    raise DependencyUnavailable("mailbox is throttling; try again")
        except ClientError as exc:
            raise DependencyUnavailable("mailbox unavailable") from exc
        return found

    def delete(
        self, user_id: str, device_id: str, server_id: str, *, now: float
    ) -> Envelope | None:
        """Delete one envelope of this device's mailbox; what was deleted, if it was live."""
        try:
            answer = self._ddb.delete_item(
                TableName=self._table,
                Key={"device": {"S": mailbox_key(user_id, device_id)}, "sk": {"S": server_id}},
                ReturnValues="ALL_OLD",
                ReturnConsumedCapacity="TOTAL",
            )
        except ClientError as exc:
            raise DependencyUnavailable("mailbox unavailable") from exc
        old = answer.get("Attributes")
        if not old or int(old["expires_at"]["N"]) <= now:
            return None
        return _envelope(old)

    def delete_many(self, user_id: str, device_id: str, server_ids: Sequence[str]) -> int:
        """Delete envelopes of this device's mailbox that were just read (so what they
        were is known): one BatchWriteItem per 25, not a DeleteItem each. Missing
        ones are no error. How many calls it took."""
        device = mailbox_key(user_id, device_id)
        requests = [
            {"DeleteRequest": {"Key": {"device": {"S": device}, "sk": {"S": sid}}}}
            for sid in dict.fromkeys(server_ids)
        ]
        return batch_write(self._ddb, self._table, requests, _BATCH)

    def clear(self, user_id: str, device_id: str) -> int:
        """Delete everything waiting in this device's mailbox, expired or not; how many
        envelopes went. One Query of keys, then a DeleteItem each (the function that
        does this may delete from mailboxes but never write to them)."""
        device = mailbox_key(user_id, device_id)
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "device = :device",
            "ExpressionAttributeValues": {":device": {"S": device}},
            "ProjectionExpression": "sk",
            "ConsistentRead": True,
        }
        deleted = 0
        for page in query_pages(self._ddb, kwargs, "mailbox unavailable"):
            for item in page.get("Items", []):
                try:
                    self._ddb.delete_item(
                        TableName=self._table, Key={"device": {"S": device}, "sk": item["sk"]}
                    )
                except ClientError as exc:
                    raise DependencyUnavailable("mailbox unavailable") from exc
                deleted += 1
        return deleted

    def page(
        self,
        user_id: str,
        device_id: str,
        *,
        after: Position | None,
        limit: int,
        now: float,
    ) -> Page:
        """Up to `limit` live envelopes after `after`, oldest first."""
        device = mailbox_key(user_id, device_id)
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": _BY_ORDER,
            "KeyConditionExpression": "device = :device",
            "FilterExpression": "expires_at > :now",
            "ExpressionAttributeValues": {
                ":device": {"S": device},
                ":now": {"N": str(int(now))},
            },
            "ReturnConsumedCapacity": "TOTAL",
        }
        if after is not None:
            kwargs["ExclusiveStartKey"] = {
                "device": {"S": device},
                "sk": {"S": after.server_id},
                "ord": {"S": after.ord},
            }
        found: list[Envelope] = []
        last: dict[str, Any] | None = None
        try:
            for _ in range(_MAX_ROUNDS):
                # Limit counts items read before the filter: never read past the page.
                kwargs["Limit"] = limit - len(found)
                answer = self._ddb.query(**kwargs)
                for item in answer.get("Items", []):
                    envelope = _envelope(item)
                    if envelope is not None:
                        found.append(envelope)
                last = answer.get("LastEvaluatedKey")
                if last is None or len(found) >= limit:
                    break
                kwargs["ExclusiveStartKey"] = last
        except ClientError as exc:
            raise DependencyUnavailable("mailbox unavailable") from exc
        if last is None:
            return Page(found, None)
        return Page(found, Position(last["ord"]["S"], last["sk"]["S"]))


class EnvelopeWriter:
    """Writes many mailbox envelopes with BatchWriteItem, 25 at a time (a group
    message's fan-out).

    Unconditional on purpose: a fan-out job may run twice (SQS delivers at
    least once), and writing the same envelope again is harmless: same key,
    same content. A pending envelope is never doubled.
    """

    def __init__(self, dynamodb: Any, mailbox_table: str) -> None:
        self._ddb = dynamodb
        self._table = mailbox_table

    def write(self, envelopes: Sequence[MessageEnvelope]) -> int:
        """Store every envelope; the number of BatchWriteItem calls it took."""
        requests = [{"PutRequest": {"Item": _item(envelope)}} for envelope in envelopes]
        return batch_write(self._ddb, self._table, requests, _BATCH)
