"""Users, devices, contacts and phone numbers in the users table.

Key design (see store/schema.py):

    USER#<uid>    / PROFILE          phone, created_at, presence setting, last_seen,
                                     registration lock, last_active (see its section)
    USER#<uid>    / DEVICE#<did>     created_at, pending, revoked (revoked_at, and
                                     revoked_reason "reregistered" when the number
                                     moved to a new phone), deleting,
                                     push_platform/token/endpoint (the verified push
                                     token), push_pending_platform/token,
                                     push_challenge, push_challenge_expires_at,
                                     push_challenge_attempts (a token waiting for
                                     its challenge to come back)
    USER#<uid>    / DEVICES          account_identity, max_key_index, the signed device
                                     list (list_version/body/signature, listed), moved_at
                                     (when the number last moved to a new phone)
    USER#<uid>    / CONTACT#<uid>    saved, since: a contact the user saved (store/contacts.py)
    USER#<uid>    / MEDIA#<id>       a media object the user uploaded (store/media.py)
    PHONE#<e164>  / PHONE            user_id (phone numbers are unique by conditional put)
    PUSHTOKEN#<platform>#<sha256(token) hex>
                  / PUSHTOKEN        user_id, device_id: the one device a verified push
                                     token belongs to

A device is *pending* from sign-in until it first uploads its keys: it may use
its tokens, but senders do not see it yet (they could not encrypt for it), so a
device whose app never got as far as uploading keys cannot block anyone's sends.

A push token is used for wake pushes only once verified: PUT /v1/push records it
as *pending* on the device (push_pending_*) with the SHA-256 of a random challenge
that is pushed through the token; POST /v1/push/verify with that challenge makes
it the device's push_platform/token/endpoint and points the token's PUSHTOKEN
record at the device. A token verified by another device moves: that device's
push_* are removed (logic/push.py). Until then a device's verified token is left
as it was, so registering someone else's token takes nothing from them.

A device is *deleting* once its account's deletion has started: senders no longer
see it and its tokens are refused, except by the deletion itself, which a
device of the account may ask again until it is done (logic/accounts.py).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any, Literal

import msgspec
from botocore.exceptions import ClientError

from parley_server.models.errors import DependencyUnavailable, NotFound
from parley_server.store.dynamo import Retry, batch_get, batch_write, query_pages

__all__ = [
    "DEVICE_LIST_SK",
    "PRESENCE_SETTINGS",
    "AccountItem",
    "Device",
    "DeviceListRecord",
    "DeviceRole",
    "DeviceSummary",
    "KnownUsers",
    "Pairing",
    "PairingApproval",
    "PresenceSetting",
    "Profile",
    "PushClaim",
    "PushState",
    "RegistrationLockState",
    "UsersStore",
]

PresenceSetting = Literal["nobody", "contacts", "everybody"]
DeviceRole = Literal["primary", "companion"]
# the account's device list record: sorts right after every DEVICE#<did> ("#" < "S")
DEVICE_LIST_SK = "DEVICES"
PRESENCE_SETTINGS: tuple[PresenceSetting, ...] = ("nobody", "contacts", "everybody")
# Privacy by default: last seen is shown only to people one has exchanged keys with.
DEFAULT_PRESENCE: PresenceSetting = "contacts"
_BATCH = Retry(5, "user store unavailable", "user store is throttling")
# the member check of a group change reads up to a group's worth of profiles
_KNOWN_BATCH = Retry(6, "user store unavailable", "user store is throttling", True)


class Device(msgspec.Struct, frozen=True):
    """A device that can receive messages; push_endpoint is an SNS platform endpoint ARN."""

    device_id: str
    push_platform: str | None
    push_endpoint: str | None
    # access tokens issued before this (ms) are refused (UsersStore.renew_sign_in)
    tokens_after_ms: int = 0


class DeviceSummary(msgspec.Struct, frozen=True):
    """One of a user's signed-in devices, as its owner sees it in a device list."""

    device_id: str
    created_at: int
    ready: bool  # keys uploaded
    push_platform: str | None
    role: DeviceRole = "primary"
    key_index: int = 0


class DeviceListRecord(msgspec.Struct, frozen=True):
    """The account's linked-devices state (sort key DEVICES): the account identity
    (the primary's identity key), the highest key index ever handed out, and the
    last signed device list the service verified, kept as the exact bytes signed."""

    account_identity: bytes | None
    max_key_index: int
    version: int  # 0: no list published yet
    body: bytes | None
    signature: bytes | None


class PairingApproval(msgspec.Struct, frozen=True):
    """What the primary's approval of a pairing carries (logic/linking.py checked it)."""

    user_id: str
    key_index: int
    details: bytes
    account_signature: bytes
    hmac: bytes
    list_version: int
    list_body: bytes
    list_signature: bytes


class Pairing(msgspec.Struct, frozen=True):
    """A companion's pairing request (PAIRING#<ref>), approved by the primary later."""

    ref: str
    device_id: str
    identity: bytes
    claim_hash: bytes
    state: str  # pending, approved, used
    expires_at: int
    approval: PairingApproval | None = None


class AccountItem(msgspec.Struct, frozen=True):
    """One record in a user's partition (its sort key says which kind), as deleting
    the account needs it."""

    sk: str
    push_platform: str | None = None
    push_endpoint: str | None = None
    push_token: str | None = None

    @property
    def device_id(self) -> str | None:
        return self.sk.removeprefix("DEVICE#") if self.sk.startswith("DEVICE#") else None

    @property
    def contact(self) -> str | None:
        return self.sk.removeprefix("CONTACT#") if self.sk.startswith("CONTACT#") else None

    @property
    def media_id(self) -> str | None:
        return self.sk.removeprefix("MEDIA#") if self.sk.startswith("MEDIA#") else None


class PushState(msgspec.Struct, frozen=True):
    """A device's push registration: the verified token (the one wake pushes use) and
    the token waiting for its challenge, if any."""

    platform: str | None = None
    token: str | None = None
    endpoint: str | None = None
    pending_platform: str | None = None
    pending_token: str | None = None
    challenge_hash: str | None = None  # SHA-256 hex of the challenge pushed
    challenge_expires_at: int = 0
    challenge_attempts: int = 0


PushClaim = Literal["released", "absent", "other"]


class Profile(msgspec.Struct, frozen=True):
    """What presence needs to know about a user."""

    user_id: str
    presence: PresenceSetting
    last_seen: float | None


def _user_pk(user_id: str) -> dict[str, str]:
    return {"S": f"USER#{user_id}"}


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _device_from(item: dict[str, Any]) -> Device:
    return Device(
        device_id=item["sk"]["S"].removeprefix("DEVICE#"),
        push_platform=item["push_platform"]["S"] if "push_platform" in item else None,
        push_endpoint=item["push_endpoint"]["S"] if "push_endpoint" in item else None,
        tokens_after_ms=int(item["tokens_after_ms"]["N"]) if "tokens_after_ms" in item else 0,
    )


# a device's token waiting for its challenge
_PENDING = (
    "push_pending_platform, push_pending_token, push_challenge, push_challenge_expires_at,"
    " push_challenge_attempts"
)


def _claim_key(platform: str, token: str) -> dict[str, dict[str, str]]:
    """The key of the record naming the device a verified push token belongs to (the
    token is hashed: up to 4096 characters, it would not fit in a key)."""
    digest = hashlib.sha256(token.encode()).hexdigest()
    return {"pk": {"S": f"PUSHTOKEN#{platform}#{digest}"}, "sk": {"S": "PUSHTOKEN"}}


def _flag(item: dict[str, Any], name: str) -> bool:
    return bool(item.get(name, {}).get("BOOL", False))


def _role(item: dict[str, Any]) -> DeviceRole:
    # devices registered before roles existed signed in by phone number: primaries
    return "companion" if item.get("role", {}).get("S") == "companion" else "primary"


class UsersStore:
    """Data access for users, their devices, contacts and phone numbers."""

    def __init__(self, dynamodb: Any, table: str) -> None:
        self._ddb = dynamodb
        self._table = table

    # -- devices -----------------------------------------------------------------

    def devices(self, user_id: str) -> list[Device]:
        """The user's devices that can receive messages: not revoked, keys uploaded and
        on the account's signed device list (the one the service verified); [] for an
        unknown user or an account that has published no list yet. One Query: the
        device records and the list record (sort key DEVICES) are neighbours."""
        return self.devices_and_move(user_id)[0]

    def devices_and_move(self, user_id: str) -> tuple[list[Device], int]:
        """`devices`, and when the number last moved to a new phone (microseconds, as
        an envelope's `ord` counts; 0 if it never did), from the same Query."""
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk AND sk BETWEEN :first AND :last",
            "ExpressionAttributeValues": {
                ":pk": _user_pk(user_id),
                ":first": {"S": "DEVICE#"},
                ":last": {"S": DEVICE_LIST_SK},
            },
            "ProjectionExpression": "sk, revoked, pending, deleting, push_platform, push_endpoint,"
            " listed, moved_at",
            "ConsistentRead": False,
        }
        items = [
            item
            for page in query_pages(self._ddb, kwargs, "user store unavailable")
            for item in page.get("Items", [])
        ]
        listed: set[str] = set()
        moved_at = 0
        for item in items:
            if item["sk"]["S"] == DEVICE_LIST_SK:
                listed = set(item.get("listed", {}).get("SS", []))
                moved_at = int(item.get("moved_at", {}).get("N", "0"))
        devices = [
            _device_from(item)
            for item in items
            if item["sk"]["S"].startswith("DEVICE#")
            and item["sk"]["S"].removeprefix("DEVICE#") in listed
            and not _flag(item, "pending")
            and not _flag(item, "revoked")
            and not _flag(item, "deleting")
        ]
        return devices, moved_at

    def signed_in(self, user_id: str) -> list[DeviceSummary]:
        """Every signed-in device of the user, pending ones too (not revoked), oldest first."""
        found = [
            DeviceSummary(
                device_id=item["sk"]["S"].removeprefix("DEVICE#"),
                created_at=int(item.get("created_at", {}).get("N", "0")),
                ready=not _flag(item, "pending"),
                push_platform=item["push_platform"]["S"] if "push_platform" in item else None,
                role=_role(item),
                key_index=int(item["key_index"]["N"]) if "key_index" in item else 0,
            )
            for item in self._device_items(
                user_id, "created_at, push_platform, #role, key_index", consistent=True
            )
        ]
        return sorted(found, key=lambda d: (d.created_at, d.device_id))

    def _device_items(self, user_id: str, attributes: str, *, consistent: bool) -> list[Any]:
        """The user's device records that are not revoked (pending ones included), with
        `attributes` besides sk and the flags: one Query (a handful of devices: one page)."""
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :device)",
            "ExpressionAttributeValues": {":pk": _user_pk(user_id), ":device": {"S": "DEVICE#"}},
            "ProjectionExpression": f"sk, revoked, pending, deleting, {attributes}",
            "ConsistentRead": consistent,
        }
        if "#role" in attributes:
            kwargs["ExpressionAttributeNames"] = {"#role": "role"}
        return [
            item
            for page in query_pages(self._ddb, kwargs, "user store unavailable")
            for item in page.get("Items", [])
            if not _flag(item, "revoked") and not _flag(item, "deleting")
        ]

    def device(self, user_id: str, device_id: str, *, deleting: bool = False) -> Device | None:
        """A signed-in device (active or pending), or None if unknown or revoked, or
        if its account is being deleted (unless `deleting`: the deletion's own check).

        Strongly consistent: a revocation must take effect at once.
        """
        item = self._device_item(user_id, device_id)
        if item is None or _flag(item, "revoked"):
            return None
        if _flag(item, "deleting") and not deleting:
            return None
        return _device_from(item)

    def add_device(
        self,
        user_id: str,
        device_id: str,
        now: float,
        *,
        role: DeviceRole = "primary",
        key_index: int = 0,
    ) -> None:
        """Register a new, pending device (it becomes active when it uploads keys). A
        device signed in by phone number is the account's primary (key index 0); a
        linked one is a companion with the key index its approval gave it."""
        try:
            self._ddb.put_item(
                TableName=self._table,
                Item={
                    "pk": _user_pk(user_id),
                    "sk": {"S": f"DEVICE#{device_id}"},
                    "created_at": {"N": str(int(now))},
                    "pending": {"BOOL": True},
                    "role": {"S": role},
                    "key_index": {"N": str(key_index)},
                },
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as exc:
            raise DependencyUnavailable("user store unavailable") from exc

    def activate_device(self, user_id: str, device_id: str) -> None:
        """Make a device visible to senders (called once its keys are stored)."""
        self._update_device(user_id, device_id, "REMOVE pending", {})

    def revoke_device(
        self, user_id: str, device_id: str, now: float, *, reason: str | None = None
    ) -> None:
        """Sign a device out for good: its tokens are refused and senders stop seeing it.
        `reason` (kept as `revoked_reason`) is what its refresh is told later."""
        expression = "SET revoked = :yes, revoked_at = :now"
        values: dict[str, Any] = {":yes": {"BOOL": True}, ":now": {"N": str(int(now))}}
        if reason is not None:
            expression += ", revoked_reason = :why"
            values[":why"] = {"S": reason}
        try:
            self._update_device(user_id, device_id, expression, values)
        except NotFound:
            return  # nothing to revoke

    def revoked_reason(self, user_id: str, device_id: str) -> str | None:
        """Why a signed-out device was signed out, when it was for a reason of its own
        ("reregistered"); None for a device signed out by its owner, or not signed out.
        Strongly consistent, as `device` is."""
        item = self._device_item(user_id, device_id, "revoked, revoked_reason")
        if item is None or not _flag(item, "revoked"):
            return None
        reason = item.get("revoked_reason", {}).get("S")
        return str(reason) if reason is not None else None

    def _device_item(
        self, user_id: str, device_id: str, projection: str | None = None
    ) -> dict[str, Any] | None:
        """The device's item (only `projection`'s attributes, when given), read strongly
        consistent: a revocation or a deletion must take effect at once."""
        extra = {"ProjectionExpression": projection} if projection else {}
        try:
            answer = self._ddb.get_item(
                TableName=self._table,
                Key={"pk": _user_pk(user_id), "sk": {"S": f"DEVICE#{device_id}"}},
                ConsistentRead=True,
                **extra,
            )
        except ClientError as exc:
            raise DependencyUnavailable("user store unavailable") from exc
        item: dict[str, Any] | None = answer.get("Item")
        return item

    def set_push(
        self, user_id: str, device_id: str, platform: str, token: str, endpoint: str | None
    ) -> None:
        """Record a device's push registration (endpoint None when no platform app exists)."""
        values: dict[str, Any] = {":platform": {"S": platform}, ":token": {"S": token}}
        expression = "SET push_platform = :platform, push_token = :token"
        if endpoint is None:
            expression += " REMOVE push_endpoint"
        else:
            expression += ", push_endpoint = :endpoint"
            values[":endpoint"] = {"S": endpoint}
        self._update_device(user_id, device_id, expression, values)

    # -- push tokens -------------------------------------------------------------

    def push_state(self, user_id: str, device_id: str) -> PushState | None:
        """The device's push registration; None if it is unknown, revoked or deleting."""
        item = self._device_item(user_id, device_id)
        if item is None or _flag(item, "revoked") or _flag(item, "deleting"):
            return None

        def text(name: str) -> str | None:
            return str(item[name]["S"]) if name in item else None

        def number(name: str) -> int:
            return int(item[name]["N"]) if name in item else 0

        return PushState(
            platform=text("push_platform"),
            token=text("push_token"),
            endpoint=text("push_endpoint"),
            pending_platform=text("push_pending_platform"),
            pending_token=text("push_pending_token"),
            challenge_hash=text("push_challenge"),
            challenge_expires_at=number("push_challenge_expires_at"),
            challenge_attempts=number("push_challenge_attempts"),
        )

    def set_push_pending(
        self,
        user_id: str,
        device_id: str,
        platform: str,
        token: str,
        challenge_hash: str | None,
        expires_at: int,
    ) -> None:
        """Record a token waiting for its challenge (replacing any waiting one); the
        device's verified token is left as it is. No `challenge_hash`: nothing could
        push one (no platform application), so none waits."""
        values: dict[str, Any] = {":platform": {"S": platform}, ":token": {"S": token}}
        expression = "SET push_pending_platform = :platform, push_pending_token = :token"
        if challenge_hash is None:
            expression += (
                " REMOVE push_challenge, push_challenge_expires_at, push_challenge_attempts"
            )
        else:
            expression += (
                ", push_challenge = :challenge, push_challenge_expires_at = :expires,"
                " push_challenge_attempts = :zero"
            )
            values[":challenge"] = {"S": challenge_hash}
            values[":expires"] = {"N": str(int(expires_at))}
            values[":zero"] = {"N": "0"}
        self._update_device(user_id, device_id, expression, values)

    def count_push_attempt(self, user_id: str, device_id: str, challenge_hash: str) -> int | None:
        """Count a wrong answer to the waiting challenge `challenge_hash`: the attempts
        so far, or None when that challenge is no longer the one waiting."""
        try:
            answer = self._ddb.update_item(
                TableName=self._table,
                Key={"pk": _user_pk(user_id), "sk": {"S": f"DEVICE#{device_id}"}},
                UpdateExpression="ADD push_challenge_attempts :one",
                ConditionExpression="push_challenge = :challenge",
                ExpressionAttributeValues={
                    ":one": {"N": "1"},
                    ":challenge": {"S": challenge_hash},
                },
                ReturnValues="UPDATED_NEW",
            )
        except ClientError as exc:
            if _code(exc) == "ConditionalCheckFailedException":
                return None
            raise DependencyUnavailable("user store unavailable") from exc
        return int(answer["Attributes"]["push_challenge_attempts"]["N"])

    def drop_push_pending(self, user_id: str, device_id: str, challenge_hash: str) -> None:
        """Forget the waiting token if `challenge_hash` is still its challenge."""
        self._update_if(
            Key={"pk": _user_pk(user_id), "sk": {"S": f"DEVICE#{device_id}"}},
            UpdateExpression=f"REMOVE {_PENDING}",
            ConditionExpression="push_challenge = :challenge",
            ExpressionAttributeValues={":challenge": {"S": challenge_hash}},
        )  # replaced or verified meanwhile

    def push_claim(self, platform: str, token: str) -> tuple[str, str] | None:
        """(user id, device id) of the device the verified token belongs to, if any."""
        try:
            answer = self._ddb.get_item(
                TableName=self._table, Key=_claim_key(platform, token), ConsistentRead=True
            )
        except ClientError as exc:
            raise DependencyUnavailable("user store unavailable") from exc
        item = answer.get("Item")
        if item is None:
            return None
        return str(item["user_id"]["S"]), str(item["device_id"]["S"])

    def verify_push(
        self,
        user_id: str,
        device_id: str,
        challenge_hash: str,
        platform: str,
        token: str,
        endpoint: str | None,
    ) -> bool:
        """In one transaction: the waiting token becomes the device's verified one (if
        `challenge_hash` is still the challenge waiting) and the token's record names
        this device. False when the challenge was replaced or the device signed out
        meanwhile (nothing written)."""
        values: dict[str, Any] = {
            ":platform": {"S": platform},
            ":token": {"S": token},
            ":challenge": {"S": challenge_hash},
            ":no": {"BOOL": False},
        }
        expression = "SET push_platform = :platform, push_token = :token"
        if endpoint is None:
            expression += f" REMOVE push_endpoint, {_PENDING}"
        else:
            expression += f", push_endpoint = :endpoint REMOVE {_PENDING}"
            values[":endpoint"] = {"S": endpoint}
        try:
            self._ddb.transact_write_items(
                TransactItems=[
                    {
                        "Update": {
                            "TableName": self._table,
                            "Key": {"pk": _user_pk(user_id), "sk": {"S": f"DEVICE#{device_id}"}},
                            "UpdateExpression": expression,
                            "ConditionExpression": "push_challenge = :challenge"
                            " AND (attribute_not_exists(revoked) OR revoked = :no)"
                            " AND (attribute_not_exists(deleting) OR deleting = :no)",
                            "ExpressionAttributeValues": values,
                        }
                    },
                    {
                        "Put": {
                            "TableName": self._table,
                            "Item": {
                                **_claim_key(platform, token),
                                "user_id": {"S": user_id},
                                "device_id": {"S": device_id},
                            },
                        }
                    },
                ]
            )
        except ClientError as exc:
            if _code(exc) == "TransactionCanceledException":
                return False
            raise DependencyUnavailable("user store unavailable") from exc
        return True

    def drop_push(self, user_id: str, device_id: str, token: str) -> None:
        """Stop using `token` for the device (it was verified by another device); a
        device that holds another token by now is left as it is."""
        self._update_if(
            Key={"pk": _user_pk(user_id), "sk": {"S": f"DEVICE#{device_id}"}},
            UpdateExpression="REMOVE push_platform, push_token, push_endpoint",
            ConditionExpression="push_token = :token",
            ExpressionAttributeValues={":token": {"S": token}},
        )

    def release_push_claim(
        self, platform: str, token: str, user_id: str, device_id: str
    ) -> PushClaim:
        """Forget that the verified `token` belongs to this device: "released", or
        "absent" when no record names the token (a registration older than the
        records), or "other" when another device verified it since (left as it is)."""
        try:
            answer = self._ddb.delete_item(
                TableName=self._table,
                Key=_claim_key(platform, token),
                ConditionExpression="attribute_not_exists(pk) OR"
                " (user_id = :uid AND device_id = :did)",
                ExpressionAttributeValues={":uid": {"S": user_id}, ":did": {"S": device_id}},
                ReturnValues="ALL_OLD",
            )
        except ClientError as exc:
            if _code(exc) == "ConditionalCheckFailedException":
                return "other"
            raise DependencyUnavailable("user store unavailable") from exc
        # a delete that matched no item returns no attributes
        return "released" if answer.get("Attributes") else "absent"

    def _update_if(self, **update: Any) -> bool:
        """One conditional UpdateItem on this table; False when its condition did not
        hold (nothing was written)."""
        try:
            self._ddb.update_item(TableName=self._table, **update)
        except ClientError as exc:
            if _code(exc) == "ConditionalCheckFailedException":
                return False
            raise DependencyUnavailable("user store unavailable") from exc
        return True

    def _update_device(
        self, user_id: str, device_id: str, expression: str, values: dict[str, Any]
    ) -> None:
        condition = "attribute_exists(pk) AND (attribute_not_exists(revoked) OR revoked = :no)"
        if not self._update_if(
            Key={"pk": _user_pk(user_id), "sk": {"S": f"DEVICE#{device_id}"}},
            UpdateExpression=expression,
            ConditionExpression=condition,
            ExpressionAttributeValues={**values, ":no": {"BOOL": False}},
        ):
            raise NotFound("device not found or signed out")

    # -- users and phone numbers -------------------------------------------------

    def user_by_phone(self, phone: str) -> str | None:
        """The user id registered with an E.164 phone number, if any."""
        try:
            answer = self._ddb.get_item(
                TableName=self._table,
                Key={"pk": {"S": f"PHONE#{phone}"}, "sk": {"S": "PHONE"}},
                ConsistentRead=True,
            )
        except ClientError as exc:
            raise DependencyUnavailable("user store unavailable") from exc
        item = answer.get("Item")
        return item["user_id"]["S"] if item else None

    def create_user(self, user_id: str, phone: str, now: float) -> str:
        """Create a user for `phone`; if someone else just did, return that user's id."""
        try:
            self._ddb.transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": self._table,
                            "Item": {
                                "pk": {"S": f"PHONE#{phone}"},
                                "sk": {"S": "PHONE"},
                                "user_id": {"S": user_id},
                            },
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    },
                    {
                        "Put": {
                            "TableName": self._table,
                            "Item": {
                                "pk": _user_pk(user_id),
                                "sk": {"S": "PROFILE"},
                                "phone": {"S": phone},
                                "created_at": {"N": str(int(now))},
                            },
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    },
                ]
            )
        except ClientError as exc:
            if _code(exc) == "TransactionCanceledException":
                # the phone was taken by a concurrent sign-up: join that account
                existing = self.user_by_phone(phone)
                if existing is not None:
                    return existing
            raise DependencyUnavailable("user store unavailable") from exc
        return user_id

    # -- deleting an account -----------------------------------------------------

    def is_deleting(self, user_id: str, device_id: str) -> bool:
        """Whether this device's account deletion has started (marked by `mark_deleting`)."""
        return _flag(self._device_item(user_id, device_id, "deleting") or {}, "deleting")

    def mark_deleting(self, user_id: str, device_id: str) -> None:
        """Hide a device from senders and refuse its tokens (but for the deletion)."""
        self._update_if(
            Key={"pk": _user_pk(user_id), "sk": {"S": f"DEVICE#{device_id}"}},
            UpdateExpression="SET deleting = :yes",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeValues={":yes": {"BOOL": True}},
        )  # already gone

    def phone_of(self, user_id: str) -> str | None:
        """The E.164 number on the user's profile; None once the profile is gone."""
        try:
            answer = self._ddb.get_item(
                TableName=self._table,
                Key={"pk": _user_pk(user_id), "sk": {"S": "PROFILE"}},
                ConsistentRead=True,
                ProjectionExpression="phone",
            )
        except ClientError as exc:
            raise DependencyUnavailable("user store unavailable") from exc
        item = answer.get("Item")
        return item["phone"]["S"] if item and "phone" in item else None

    def account_items(self, user_id: str) -> list[AccountItem]:
        """Every record in the user's partition: profile, devices (revoked ones too),
        contacts, media ids."""
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": _user_pk(user_id)},
            "ProjectionExpression": "sk, push_platform, push_endpoint, push_token",
            "ConsistentRead": True,
        }
        return [
            AccountItem(
                sk=item["sk"]["S"],
                push_platform=item["push_platform"]["S"] if "push_platform" in item else None,
                push_endpoint=item["push_endpoint"]["S"] if "push_endpoint" in item else None,
                push_token=item["push_token"]["S"] if "push_token" in item else None,
            )
            for page in query_pages(self._ddb, kwargs, "user store unavailable")
            for item in page.get("Items", [])
        ]

    def delete_records(self, user_id: str, sort_keys: list[str]) -> None:
        """Delete records of the user's partition (missing ones are no error)."""
        requests = [
            {"DeleteRequest": {"Key": {"pk": _user_pk(user_id), "sk": {"S": sk}}}}
            for sk in dict.fromkeys(sort_keys)
        ]
        batch_write(self._ddb, self._table, requests, _BATCH)

    def forget_contact(self, user_id: str, contacts: list[str]) -> None:
        """Delete the contact records that other users hold of `user_id`."""
        requests = [
            {"DeleteRequest": {"Key": {"pk": _user_pk(c), "sk": {"S": f"CONTACT#{user_id}"}}}}
            for c in dict.fromkeys(contacts)
        ]
        batch_write(self._ddb, self._table, requests, _BATCH)

    def release_phone(self, phone: str, user_id: str) -> None:
        """Forget that `phone` belongs to `user_id` (so it may sign up afresh); a number
        already released, or taken since by a new account, is left as it is."""
        try:
            self._ddb.delete_item(
                TableName=self._table,
                Key={"pk": {"S": f"PHONE#{phone}"}, "sk": {"S": "PHONE"}},
                ConditionExpression="user_id = :uid",
                ExpressionAttributeValues={":uid": {"S": user_id}},
            )
        except ClientError as exc:
            if _code(exc) == "ConditionalCheckFailedException":
                return
            raise DependencyUnavailable("user store unavailable") from exc

    # -- presence ----------------------------------------------------------------

    def record_last_seen(self, user_id: str, ts: float) -> None:
        """Record when the user was last online (never moves backwards; unknown users ignored)."""
        self._update_if(
            Key={"pk": _user_pk(user_id), "sk": {"S": "PROFILE"}},
            UpdateExpression="SET last_seen = :ts",
            ConditionExpression=(
                "attribute_exists(pk) AND (attribute_not_exists(last_seen) OR last_seen < :ts)"
            ),
            ExpressionAttributeValues={":ts": {"N": repr(float(ts))}},
        )  # unknown user, or a later time is already recorded

    def set_presence(self, user_id: str, setting: PresenceSetting) -> None:
        """Who may see the user's last seen."""
        if not self._update_if(
            Key={"pk": _user_pk(user_id), "sk": {"S": "PROFILE"}},
            UpdateExpression="SET presence = :setting",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeValues={":setting": {"S": setting}},
        ):
            raise NotFound("user not found")

    def presence_view(
        self, viewer: str, target: str
    ) -> tuple[Profile | None, Profile | None, bool]:
        """(viewer's profile, target's profile, target saved viewer as a contact): one read."""
        keys = [
            {"pk": _user_pk(viewer), "sk": {"S": "PROFILE"}},
            {"pk": _user_pk(target), "sk": {"S": "PROFILE"}},
            {"pk": _user_pk(target), "sk": {"S": f"CONTACT#{viewer}"}},
        ]
        if viewer == target:
            keys = keys[:1]
        items = batch_get(self._ddb, self._table, keys, _BATCH, ConsistentRead=True)
        profiles = {
            item["pk"]["S"].removeprefix("USER#"): _profile_from(item)
            for item in items
            if item["sk"]["S"] == "PROFILE"
        }
        is_contact = any(
            item["sk"]["S"].startswith("CONTACT#") and item.get("saved", {}).get("BOOL") is True
            for item in items
        )
        return profiles.get(viewer), profiles.get(target), is_contact

    # -- linked devices: account identity, device list, pairings -------------------
    # (USER#<uid> / DEVICES and PAIRING#<ref> / PAIRING; see logic/linking.py)

    def device_list(self, user_id: str) -> DeviceListRecord:
        """The account's linked-devices state (all empty for an account without one)."""
        try:
            answer = self._ddb.get_item(
                TableName=self._table,
                Key={"pk": _user_pk(user_id), "sk": {"S": DEVICE_LIST_SK}},
                ConsistentRead=True,
            )
        except ClientError as exc:
            raise DependencyUnavailable("user store unavailable") from exc
        item = answer.get("Item") or {}
        return DeviceListRecord(
            account_identity=item["account_identity"]["B"] if "account_identity" in item else None,
            max_key_index=int(item.get("max_key_index", {}).get("N", "0")),
            version=int(item.get("list_version", {}).get("N", "0")),
            body=item["list_body"]["B"] if "list_body" in item else None,
            signature=item["list_signature"]["B"] if "list_signature" in item else None,
        )

    def set_account_identity(self, user_id: str, identity: bytes) -> bool:
        """Record the account identity if the account has none yet; whether it did."""
        return self._update_if(
            Key={"pk": _user_pk(user_id), "sk": {"S": DEVICE_LIST_SK}},
            UpdateExpression="SET account_identity = :id, max_key_index = :zero",
            ConditionExpression="attribute_not_exists(account_identity)",
            ExpressionAttributeValues={":id": {"B": identity}, ":zero": {"N": "0"}},
        )

    def reserve_key_index(self, user_id: str, identity: bytes, key_index: int) -> bool:
        """Raise max_key_index to `key_index` if it is higher (and the account identity
        is still `identity`); False if that index was handed out already."""
        return self._update_if(
            Key={"pk": _user_pk(user_id), "sk": {"S": DEVICE_LIST_SK}},
            UpdateExpression="SET max_key_index = :k",
            ConditionExpression="account_identity = :id AND max_key_index < :k",
            ExpressionAttributeValues={":id": {"B": identity}, ":k": {"N": str(key_index)}},
        )

    def install_device_list(
        self,
        user_id: str,
        identity: bytes,
        *,
        previous_version: int,
        version: int,
        body: bytes,
        signature: bytes,
        listed: list[str],
        max_key_index: int,
    ) -> bool:
        """Replace the stored list (version `previous_version`, 0 for none) with a
        verified one; False if the list moved meanwhile or the identity changed."""
        condition = "account_identity = :id AND " + (
            "attribute_not_exists(list_version)"
            if previous_version == 0
            else "list_version = :previous"
        )
        values: dict[str, Any] = {
            ":id": {"B": identity},
            ":version": {"N": str(version)},
            ":body": {"B": body},
            ":signature": {"B": signature},
            ":listed": {"SS": sorted(set(listed))},
            ":k": {"N": str(max_key_index)},
        }
        if previous_version:
            values[":previous"] = {"N": str(previous_version)}
        installed = self._update_if(
            Key={"pk": _user_pk(user_id), "sk": {"S": DEVICE_LIST_SK}},
            UpdateExpression="SET list_version = :version, list_body = :body,"
            " list_signature = :signature, listed = :listed,"
            " max_key_index = if_not_exists(max_key_index, :k)",
            ConditionExpression=condition,
            ExpressionAttributeValues=values,
        )
        if not installed:
            return False
        if max_key_index:
            self.reserve_key_index(user_id, identity, max_key_index)
        return True

    def reset_devices(self, user_id: str, now: float) -> None:
        """Forget the account identity, the device list and max_key_index (the account
        moved to a new primary, which starts a new chain of lists at version 1), and
        record when (`moved_at`, microseconds, as an envelope's `ord` counts): what the
        account sent before then was its previous owner's (see `devices_and_move`)."""
        try:
            self._ddb.put_item(
                TableName=self._table,
                Item={
                    "pk": _user_pk(user_id),
                    "sk": {"S": DEVICE_LIST_SK},
                    "moved_at": {"N": str(round(now * 1_000_000))},
                },
            )
        except ClientError as exc:
            raise DependencyUnavailable("user store unavailable") from exc

    def create_pairing(self, pairing: Pairing, now: float) -> None:
        """Store a new pending pairing (expires with the table's TTL, and is treated as
        gone once `expires_at` has passed even before the sweep)."""
        try:
            self._ddb.put_item(
                TableName=self._table,
                Item={
                    "pk": {"S": f"PAIRING#{pairing.ref}"},
                    "sk": {"S": "PAIRING"},
                    "device_id": {"S": pairing.device_id},
                    "identity": {"B": pairing.identity},
                    "claim_hash": {"B": pairing.claim_hash},
                    "state": {"S": "pending"},
                    "created_at": {"N": str(int(now))},
                    "expires_at": {"N": str(pairing.expires_at)},
                },
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as exc:
            raise DependencyUnavailable("user store unavailable") from exc

    def pairing(self, ref: str, now: float) -> Pairing | None:
        """A pairing that has not expired, or None."""
        try:
            answer = self._ddb.get_item(
                TableName=self._table,
                Key={"pk": {"S": f"PAIRING#{ref}"}, "sk": {"S": "PAIRING"}},
                ConsistentRead=True,
            )
        except ClientError as exc:
            raise DependencyUnavailable("user store unavailable") from exc
        item = answer.get("Item")
        if item is None or int(item["expires_at"]["N"]) <= now:
            return None

        approval = None
        if "user_id" in item:
            approval = PairingApproval(
                user_id=item["user_id"]["S"],
                key_index=int(item["key_index"]["N"]),
                details=item["details"]["B"],
                account_signature=item["account_signature"]["B"],
                hmac=item["hmac"]["B"],
                list_version=int(item["list_version"]["N"]),
                list_body=item["list_body"]["B"],
                list_signature=item["list_signature"]["B"],
            )
        return Pairing(
            ref=ref,
            device_id=item["device_id"]["S"],
            identity=item["identity"]["B"],
            claim_hash=item["claim_hash"]["B"],
            state=item["state"]["S"],
            expires_at=int(item["expires_at"]["N"]),
            approval=approval,
        )

    def approve_pairing(self, ref: str, approved: PairingApproval, now: float) -> bool:
        """Record the primary's approval on a pending, unexpired pairing; False if it is
        no longer pending (or has expired)."""
        return self._update_if(
            Key={"pk": {"S": f"PAIRING#{ref}"}, "sk": {"S": "PAIRING"}},
            UpdateExpression="SET #state = :approved, user_id = :uid, key_index = :k,"
            " details = :details, account_signature = :asig, hmac = :hmac,"
            " list_version = :version, list_body = :body, list_signature = :lsig",
            ConditionExpression="#state = :pending AND expires_at > :now",
            ExpressionAttributeNames={"#state": "state"},
            ExpressionAttributeValues={
                ":approved": {"S": "approved"},
                ":pending": {"S": "pending"},
                ":now": {"N": str(int(now))},
                ":uid": {"S": approved.user_id},
                ":k": {"N": str(approved.key_index)},
                ":details": {"B": approved.details},
                ":asig": {"B": approved.account_signature},
                ":hmac": {"B": approved.hmac},
                ":version": {"N": str(approved.list_version)},
                ":body": {"B": approved.list_body},
                ":lsig": {"B": approved.list_signature},
            },
        )

    def use_pairing(self, ref: str) -> bool:
        """Mark an approved pairing used; False if it was not approved (used already)."""
        return self._update_if(
            Key={"pk": {"S": f"PAIRING#{ref}"}, "sk": {"S": "PAIRING"}},
            # the approval has served its purpose: keep no trace of the account
            UpdateExpression="SET #state = :used REMOVE user_id, key_index, details,"
            " account_signature, hmac, list_version, list_body, list_signature",
            ConditionExpression="#state = :approved",
            ExpressionAttributeNames={"#state": "state"},
            ExpressionAttributeValues={":used": {"S": "used"}, ":approved": {"S": "approved"}},
        )

    # -- end of linked devices -----------------------------------------------------

    # -- registration lock and activity (on the PROFILE item; logic/registration_lock.py)
    #
    # reglock_verifier  Argon2id verifier of the PIN (never the PIN)
    # reglock_set_at    when the lock was set
    # pin_failures      PIN tries counted since the last right one
    # pin_last_try      when the last counted try was made
    # last_active       the last time a device of the account refreshed a token

    def registration_lock(self, user_id: str) -> RegistrationLockState | None:
        """The account's lock and activity (None for an unknown user): one strong read."""
        try:
            answer = self._ddb.get_item(
                TableName=self._table,
                Key={"pk": _user_pk(user_id), "sk": {"S": "PROFILE"}},
                ConsistentRead=True,
                ProjectionExpression=(
                    "reglock_verifier, reglock_set_at, pin_failures, pin_last_try, last_active,"
                    " created_at"
                ),
            )
        except ClientError as exc:
            raise DependencyUnavailable("user store unavailable") from exc
        item = answer.get("Item")
        if item is None:
            return None

        def number(name: str) -> float | None:
            return float(item[name]["N"]) if name in item else None

        return RegistrationLockState(
            verifier=item["reglock_verifier"]["S"] if "reglock_verifier" in item else None,
            set_at=number("reglock_set_at"),
            failures=int(number("pin_failures") or 0),
            last_try=number("pin_last_try"),
            last_active=number("last_active"),
            created_at=number("created_at"),
        )

    def set_registration_lock(self, user_id: str, verifier: str, now: float) -> None:
        """Set (or replace) the account's PIN verifier; the try count starts afresh."""
        self._update_profile(
            user_id,
            "SET reglock_verifier = :v, reglock_set_at = :now REMOVE pin_failures, pin_last_try",
            {":v": {"S": verifier}, ":now": {"N": repr(float(now))}},
        )

    def remove_registration_lock(self, user_id: str, verifier: str | None = None) -> bool:
        """Remove the lock (only if it is still `verifier`, when given); False if it was
        not there (or had been replaced)."""
        values: dict[str, Any] = {}
        condition = "attribute_exists(pk) AND attribute_exists(reglock_verifier)"
        if verifier is not None:
            condition += " AND reglock_verifier = :v"
            values[":v"] = {"S": verifier}
        return self._update_if(
            Key={"pk": _user_pk(user_id), "sk": {"S": "PROFILE"}},
            UpdateExpression=(
                "REMOVE reglock_verifier, reglock_set_at, pin_failures, pin_last_try"
            ),
            ConditionExpression=condition,
            **({"ExpressionAttributeValues": values} if values else {}),
        )

    def claim_pin_try(self, user_id: str, verifier: str, seen_failures: int, now: float) -> bool:
        """Count one PIN try before it is checked, if the count is still `seen_failures`
        and the lock still `verifier`: of concurrent tries at one count only one goes on."""
        if seen_failures == 0:
            counted = "(attribute_not_exists(pin_failures) OR pin_failures = :seen)"
        else:
            counted = "pin_failures = :seen"
        return self._update_if(
            Key={"pk": _user_pk(user_id), "sk": {"S": "PROFILE"}},
            UpdateExpression="SET pin_failures = :next, pin_last_try = :now",
            ConditionExpression=f"reglock_verifier = :v AND {counted}",
            ExpressionAttributeValues={
                ":v": {"S": verifier},
                ":seen": {"N": str(seen_failures)},
                ":next": {"N": str(seen_failures + 1)},
                ":now": {"N": repr(float(now))},
            },
        )

    def reset_pin_tries(self, user_id: str) -> None:
        """A right PIN: the count starts afresh."""
        try:
            self._update_profile(user_id, "REMOVE pin_failures, pin_last_try", {})
        except NotFound:
            return

    def renew_sign_in(self, user_id: str, device_id: str, at_ms: int) -> None:
        """Refuse the device's access tokens issued before `at_ms` (a signed-in device
        only; never moves backwards): one conditional UpdateItem."""
        self._update_if(
            Key={"pk": _user_pk(user_id), "sk": {"S": f"DEVICE#{device_id}"}},
            UpdateExpression="SET tokens_after_ms = :at",
            ConditionExpression=(
                "attribute_exists(pk) AND (attribute_not_exists(revoked) OR revoked = :no) AND"
                " (attribute_not_exists(tokens_after_ms) OR tokens_after_ms < :at)"
            ),
            ExpressionAttributeValues={":at": {"N": str(at_ms)}, ":no": {"BOOL": False}},
        )

    def record_active(self, user_id: str, now: float) -> None:
        """A device of the account refreshed a token (never moves backwards; unknown
        users ignored): one conditional UpdateItem."""
        self._update_if(
            Key={"pk": _user_pk(user_id), "sk": {"S": "PROFILE"}},
            UpdateExpression="SET last_active = :now",
            ConditionExpression=(
                "attribute_exists(pk) AND (attribute_not_exists(last_active) OR last_active < :now)"
            ),
            ExpressionAttributeValues={":now": {"N": repr(float(now))}},
        )

    def _update_profile(self, user_id: str, expression: str, values: dict[str, Any]) -> None:
        if not self._update_if(
            Key={"pk": _user_pk(user_id), "sk": {"S": "PROFILE"}},
            UpdateExpression=expression,
            ConditionExpression="attribute_exists(pk)",
            **({"ExpressionAttributeValues": values} if values else {}),
        ):
            raise NotFound("user not found")


class RegistrationLockState(msgspec.Struct, frozen=True):
    """An account's registration lock and activity, as re-registration needs them."""

    verifier: str | None  # Argon2id verifier of the PIN; None: no lock
    set_at: float | None
    failures: int  # PIN tries counted since the last right one
    last_try: float | None
    last_active: float | None  # a device refreshed a token
    created_at: float | None


def _profile_from(item: dict[str, Any]) -> Profile:
    raw = item.get("presence", {}).get("S")
    presence = next((p for p in PRESENCE_SETTINGS if p == raw), DEFAULT_PRESENCE)
    return Profile(
        user_id=item["pk"]["S"].removeprefix("USER#"),
        presence=presence,
        last_seen=float(item["last_seen"]["N"]) if "last_seen" in item else None,
    )


class KnownUsers:
    """Which user ids belong to registered users (their profile item exists)."""

    def __init__(self, dynamodb: Any, users_table: str) -> None:
        self._ddb = dynamodb
        self._table = users_table

    def existing(self, user_ids: Iterable[str]) -> set[str]:
        keys = [{"pk": _user_pk(uid), "sk": {"S": "PROFILE"}} for uid in dict.fromkeys(user_ids)]
        items = batch_get(self._ddb, self._table, keys, _KNOWN_BATCH, ProjectionExpression="pk")
        return {item["pk"]["S"].removeprefix("USER#") for item in items}
