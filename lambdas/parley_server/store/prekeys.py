"""End-to-end encryption keys in the prekeys table.

    <uid>#<did> / IDENTITY          identity_key (Ed25519 public, 32 bytes)
    <uid>#<did> / SIGNED            key_id, public_key, signature
    <uid>#<did> / OTK#<key id>      public_key (id zero-padded so a query lists them in id order)

A one-time prekey is claimed by query-then-conditional-delete with ALL_OLD: the
delete that returns the item is the one claim that owns it, however many run at
once; a loser moves on to the next candidate.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Any

import msgspec
from botocore.exceptions import ClientError

from parley_server.models.errors import Conflict, DependencyUnavailable
from parley_server.store.dynamo import Retry, batch_get, batch_write, query_pages

__all__ = ["Claim", "DeviceKeys", "OneTimePrekey", "PrekeysStore", "SignedPrekey"]

# How many candidates one query offers; enough that concurrent claimers rarely collide.
_CANDIDATES = 8
_CLAIM_ROUNDS = 10
_BATCH = Retry(8, "key store unavailable", "key store is throttling; try again")


class SignedPrekey(msgspec.Struct, frozen=True):
    key_id: int
    public_key: bytes
    signature: bytes


class OneTimePrekey(msgspec.Struct, frozen=True):
    key_id: int
    public_key: bytes


class Claim(msgspec.Struct, frozen=True):
    """What one claim took (None: the device had no one-time prekey left), and how
    many the device has left when that is few (None: enough)."""

    key: OneTimePrekey | None
    left: int | None


class DeviceKeys(msgspec.Struct, frozen=True):
    """A device's long-lived keys (no one-time prekey)."""

    identity_key: bytes
    signed_prekey: SignedPrekey


def _pk(user_id: str, device_id: str) -> dict[str, str]:
    return {"S": f"{user_id}#{device_id}"}


def _otk_sk(key_id: int) -> str:
    return f"OTK#{key_id:010d}"


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class PrekeysStore:
    """Data access for identity keys, signed prekeys and one-time prekeys."""

    def __init__(self, dynamodb: Any, table: str) -> None:
        self._ddb = dynamodb
        self._table = table

    def set_identity(self, user_id: str, device_id: str, identity_key: bytes) -> None:
        """Record the device's identity key; Conflict if it already has a different one."""
        try:
            self._ddb.put_item(
                TableName=self._table,
                Item={
                    "device": _pk(user_id, device_id),
                    "sk": {"S": "IDENTITY"},
                    "identity_key": {"B": identity_key},
                },
                ConditionExpression="attribute_not_exists(sk) OR identity_key = :key",
                ExpressionAttributeValues={":key": {"B": identity_key}},
            )
        except ClientError as exc:
            if _code(exc) == "ConditionalCheckFailedException":
                raise Conflict(
                    "this device already has a different identity key; sign in again as a"
                    " new device to use a new one",
                    code="identity_key_changed",
                ) from exc
            raise DependencyUnavailable("key store unavailable") from exc

    def set_signed(self, user_id: str, device_id: str, signed: SignedPrekey) -> None:
        """Replace the device's signed prekey (rotation)."""
        try:
            self._ddb.put_item(
                TableName=self._table,
                Item={
                    "device": _pk(user_id, device_id),
                    "sk": {"S": "SIGNED"},
                    "key_id": {"N": str(signed.key_id)},
                    "public_key": {"B": signed.public_key},
                    "signature": {"B": signed.signature},
                },
            )
        except ClientError as exc:
            raise DependencyUnavailable("key store unavailable") from exc

    def add_one_time(self, user_id: str, device_id: str, keys: Iterable[OneTimePrekey]) -> None:
        """Store one-time prekeys (a key id already present is replaced)."""
        requests = [
            {
                "PutRequest": {
                    "Item": {
                        "device": _pk(user_id, device_id),
                        "sk": {"S": _otk_sk(key.key_id)},
                        "public_key": {"B": key.public_key},
                    }
                }
            }
            for key in keys
        ]
        batch_write(self._ddb, self._table, requests, _BATCH)

    def count_one_time(self, user_id: str, device_id: str) -> int:
        """How many one-time prekeys the device has left."""
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "device = :pk AND begins_with(sk, :otk)",
            "ExpressionAttributeValues": {":pk": _pk(user_id, device_id), ":otk": {"S": "OTK#"}},
            "Select": "COUNT",
        }
        pages = query_pages(self._ddb, kwargs, "key store unavailable")
        return sum(int(page.get("Count", 0)) for page in pages)

    def device_keys(self, user_id: str, device_ids: list[str]) -> dict[str, DeviceKeys]:
        """The long-lived keys of each device that has uploaded them (one batch read)."""
        if not device_ids:
            return {}
        keys = [
            {"device": _pk(user_id, did), "sk": {"S": sk}}
            for did in device_ids
            for sk in ("IDENTITY", "SIGNED")
        ]
        items = batch_get(self._ddb, self._table, keys, _BATCH)
        identity: dict[str, bytes] = {}
        signed: dict[str, SignedPrekey] = {}
        for item in items:
            did = item["device"]["S"].split("#", 1)[1]
            if item["sk"]["S"] == "IDENTITY":
                identity[did] = bytes(item["identity_key"]["B"])
            else:
                signed[did] = SignedPrekey(
                    key_id=int(item["key_id"]["N"]),
                    public_key=bytes(item["public_key"]["B"]),
                    signature=bytes(item["signature"]["B"]),
                )
        return {
            did: DeviceKeys(identity[did], signed[did])
            for did in device_ids
            if did in identity and did in signed
        }

    def claim_one_time(self, user_id: str, device_id: str) -> OneTimePrekey | None:
        """Take one one-time prekey for good; None when the device has none left."""
        return self.claim(user_id, device_id).key

    def claim(self, user_id: str, device_id: str, *, low_below: int = 0) -> Claim:
        """Take one one-time prekey for good, and say how many are left when that is
        fewer than `low_below`. The candidates' query reads that many more keys of a
        few bytes each, so the count costs no more capacity."""
        pk = _pk(user_id, device_id)
        try:
            for _ in range(_CLAIM_ROUNDS):
                page = self._ddb.query(
                    TableName=self._table,
                    KeyConditionExpression="device = :pk AND begins_with(sk, :otk)",
                    ExpressionAttributeValues={":pk": pk, ":otk": {"S": "OTK#"}},
                    ProjectionExpression="sk",
                    Limit=max(_CANDIDATES, low_below + 1),
                    # a stale read would offer keys already claimed, wasting deletes
                    ConsistentRead=True,
                )
                candidates = [item["sk"]["S"] for item in page.get("Items", [])]
                if not candidates:
                    return Claim(None, 0)
                # a page shorter than the query's limit holds every key the device has
                left = len(candidates) - 1 if len(candidates) <= low_below else None
                # concurrent claimers spread over the page instead of all racing for the first
                random.shuffle(candidates)
                for sk in candidates:
                    claimed = self._take(pk, sk)
                    if claimed is not None:
                        return Claim(claimed, left)
        except ClientError as exc:
            raise DependencyUnavailable("key store unavailable") from exc
        raise DependencyUnavailable("too many concurrent claims; try again")

    def _take(self, pk: dict[str, str], sk: str) -> OneTimePrekey | None:
        try:
            answer = self._ddb.delete_item(
                TableName=self._table,
                Key={"device": pk, "sk": {"S": sk}},
                ConditionExpression="attribute_exists(sk)",
                ReturnValues="ALL_OLD",
            )
        except ClientError as exc:
            if _code(exc) == "ConditionalCheckFailedException":
                return None  # someone else claimed it first
            raise
        item = answer.get("Attributes")
        if item is None:
            return None  # no item came back: not ours
        return OneTimePrekey(
            key_id=int(item["sk"]["S"].removeprefix("OTK#")),
            public_key=bytes(item["public_key"]["B"]),
        )

    def forget_device(self, user_id: str, device_id: str) -> int:
        """Delete the device's identity key, signed prekey and one-time prekeys; how
        many records went (none when they are gone already)."""
        pk = _pk(user_id, device_id)
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "device = :pk",
            "ExpressionAttributeValues": {":pk": pk},
            "ProjectionExpression": "sk",
            "ConsistentRead": True,
        }
        keys = [
            item["sk"]
            for page in query_pages(self._ddb, kwargs, "key store unavailable")
            for item in page.get("Items", [])
        ]
        requests = [{"DeleteRequest": {"Key": {"device": pk, "sk": sk}}} for sk in keys]
        batch_write(self._ddb, self._table, requests, _BATCH)
        return len(keys)
