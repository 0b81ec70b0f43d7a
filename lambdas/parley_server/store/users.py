"""Users, devices, contacts and phone numbers in the users table.

Key design (see store/schema.py):

    USER#<uid>    / PROFILE          phone, created_at, presence setting, last_seen
    USER#<uid>    / DEVICE#<did>     created_at, pending, revoked, deleting,
                                     push_platform/token/endpoint
    USER#<uid>    / CONTACT#<uid>    since: the two users have exchanged keys
    USER#<uid>    / MEDIA#<id>       a media object the user uploaded (store/media.py)
    PHONE#<e164>  / PHONE            user_id (phone numbers are unique by conditional put)

A device is *pending* from sign-in until it first uploads its keys: it may use
its tokens, but senders do not see it yet (they could not encrypt for it), so a
device whose app never got as far as uploading keys cannot block anyone's sends.

A device is *deleting* once its account's deletion has started: senders no longer
see it and its tokens are refused, except by the deletion itself, which a
device of the account may ask again until it is done (logic/accounts.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from botocore.exceptions import ClientError

from parley_server.models.errors import DependencyUnavailable, NotFound
from parley_server.store.dynamo import Retry, batch_get, batch_write, query_pages

__all__ = [
    "PRESENCE_SETTINGS",
    "AccountItem",
    "Device",
    "DeviceSummary",
    "KnownUsers",
    "PresenceSetting",
    "Profile",
    "UsersStore",
]

PresenceSetting = Literal["nobody", "contacts", "everybody"]
PRESENCE_SETTINGS: tuple[PresenceSetting, ...] = ("nobody", "contacts", "everybody")
# Privacy by default: last seen is shown only to people one has exchanged keys with.
DEFAULT_PRESENCE: PresenceSetting = "contacts"
_BATCH = Retry(5, "user store unavailable", "user store is throttling")
# the member check of a group change reads up to a group's worth of profiles
_KNOWN_BATCH = Retry(6, "user store unavailable", "user store is throttling", True)


@dataclass(frozen=True)
class Device:
    """A device that can receive messages; push_endpoint is an SNS platform endpoint ARN."""

    device_id: str
    push_platform: str | None
    push_endpoint: str | None


@dataclass(frozen=True)
class DeviceSummary:
    """One of a user's signed-in devices, as its owner sees it in a device list."""

    device_id: str
    created_at: int
    ready: bool  # keys uploaded: senders can see it
    push_platform: str | None


@dataclass(frozen=True)
class AccountItem:
    """One record in a user's partition (its sort key says which kind), as deleting
    the account needs it."""

    sk: str
    push_platform: str | None = None
    push_endpoint: str | None = None

    @property
    def device_id(self) -> str | None:
        return self.sk.removeprefix("DEVICE#") if self.sk.startswith("DEVICE#") else None

    @property
    def contact(self) -> str | None:
        return self.sk.removeprefix("CONTACT#") if self.sk.startswith("CONTACT#") else None

    @property
    def media_id(self) -> str | None:
        return self.sk.removeprefix("MEDIA#") if self.sk.startswith("MEDIA#") else None


@dataclass(frozen=True)
class Profile:
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
    )


def _flag(item: dict[str, Any], name: str) -> bool:
    return bool(item.get(name, {}).get("BOOL", False))


class UsersStore:
    """Data access for users, their devices, contacts and phone numbers."""

    def __init__(self, dynamodb: Any, table: str) -> None:
        self._ddb = dynamodb
        self._table = table

    # -- devices -----------------------------------------------------------------

    def devices(self, user_id: str) -> list[Device]:
        """The user's active devices (not revoked, keys uploaded); [] for an unknown user."""
        items = self._device_items(user_id, "push_platform, push_endpoint", consistent=False)
        return [_device_from(item) for item in items if not _flag(item, "pending")]

    def signed_in(self, user_id: str) -> list[DeviceSummary]:
        """Every signed-in device of the user, pending ones too (not revoked), oldest first."""
        found = [
            DeviceSummary(
                device_id=item["sk"]["S"].removeprefix("DEVICE#"),
                created_at=int(item.get("created_at", {}).get("N", "0")),
                ready=not _flag(item, "pending"),
                push_platform=item["push_platform"]["S"] if "push_platform" in item else None,
            )
            for item in self._device_items(user_id, "created_at, push_platform", consistent=True)
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
        try:
            answer = self._ddb.get_item(
                TableName=self._table,
                Key={"pk": _user_pk(user_id), "sk": {"S": f"DEVICE#{device_id}"}},
                ConsistentRead=True,
            )
        except ClientError as exc:
            raise DependencyUnavailable("user store unavailable") from exc
        item = answer.get("Item")
        if item is None or _flag(item, "revoked"):
            return None
        if _flag(item, "deleting") and not deleting:
            return None
        return _device_from(item)

    def add_device(self, user_id: str, device_id: str, now: float) -> None:
        """Register a new, pending device (it becomes active when it uploads keys)."""
        try:
            self._ddb.put_item(
                TableName=self._table,
                Item={
                    "pk": _user_pk(user_id),
                    "sk": {"S": f"DEVICE#{device_id}"},
                    "created_at": {"N": str(int(now))},
                    "pending": {"BOOL": True},
                },
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as exc:
            raise DependencyUnavailable("user store unavailable") from exc

    def activate_device(self, user_id: str, device_id: str) -> None:
        """Make a device visible to senders (called once its keys are stored)."""
        self._update_device(user_id, device_id, "REMOVE pending", {})

    def revoke_device(self, user_id: str, device_id: str, now: float) -> None:
        """Sign a device out for good: its tokens are refused and senders stop seeing it."""
        try:
            self._update_device(
                user_id,
                device_id,
                "SET revoked = :yes, revoked_at = :now",
                {":yes": {"BOOL": True}, ":now": {"N": str(int(now))}},
            )
        except NotFound:
            return  # nothing to revoke

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

    def _update_device(
        self, user_id: str, device_id: str, expression: str, values: dict[str, Any]
    ) -> None:
        condition = "attribute_exists(pk) AND (attribute_not_exists(revoked) OR revoked = :no)"
        try:
            self._ddb.update_item(
                TableName=self._table,
                Key={"pk": _user_pk(user_id), "sk": {"S": f"DEVICE#{device_id}"}},
                UpdateExpression=expression,
                ConditionExpression=condition,
                ExpressionAttributeValues={**values, ":no": {"BOOL": False}},
            )
        except ClientError as exc:
            if _code(exc) == "ConditionalCheckFailedException":
                raise NotFound("device not found or signed out") from exc
            raise DependencyUnavailable("user store unavailable") from exc

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
        try:
            answer = self._ddb.get_item(
                TableName=self._table,
                Key={"pk": _user_pk(user_id), "sk": {"S": f"DEVICE#{device_id}"}},
                ConsistentRead=True,
                ProjectionExpression="deleting",
            )
        except ClientError as exc:
            raise DependencyUnavailable("user store unavailable") from exc
        return _flag(answer.get("Item", {}), "deleting")

    def mark_deleting(self, user_id: str, device_id: str) -> None:
        """Hide a device from senders and refuse its tokens (but for the deletion)."""
        try:
            self._ddb.update_item(
                TableName=self._table,
                Key={"pk": _user_pk(user_id), "sk": {"S": f"DEVICE#{device_id}"}},
                UpdateExpression="SET deleting = :yes",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues={":yes": {"BOOL": True}},
            )
        except ClientError as exc:
            if _code(exc) == "ConditionalCheckFailedException":
                return  # already gone
            raise DependencyUnavailable("user store unavailable") from exc

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
            "ProjectionExpression": "sk, push_platform, push_endpoint",
            "ConsistentRead": True,
        }
        return [
            AccountItem(
                sk=item["sk"]["S"],
                push_platform=item["push_platform"]["S"] if "push_platform" in item else None,
                push_endpoint=item["push_endpoint"]["S"] if "push_endpoint" in item else None,
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
        try:
            self._ddb.update_item(
                TableName=self._table,
                Key={"pk": _user_pk(user_id), "sk": {"S": "PROFILE"}},
                UpdateExpression="SET last_seen = :ts",
                ConditionExpression=(
                    "attribute_exists(pk) AND (attribute_not_exists(last_seen) OR last_seen < :ts)"
                ),
                ExpressionAttributeValues={":ts": {"N": repr(float(ts))}},
            )
        except ClientError as exc:
            if _code(exc) == "ConditionalCheckFailedException":
                return  # unknown user, or a later time is already recorded
            raise DependencyUnavailable("user store unavailable") from exc

    def set_presence(self, user_id: str, setting: PresenceSetting) -> None:
        """Who may see the user's last seen."""
        try:
            self._ddb.update_item(
                TableName=self._table,
                Key={"pk": _user_pk(user_id), "sk": {"S": "PROFILE"}},
                UpdateExpression="SET presence = :setting",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues={":setting": {"S": setting}},
            )
        except ClientError as exc:
            if _code(exc) == "ConditionalCheckFailedException":
                raise NotFound("user not found") from exc
            raise DependencyUnavailable("user store unavailable") from exc

    def presence_view(
        self, viewer: str, target: str
    ) -> tuple[Profile | None, Profile | None, bool]:
        """(viewer's profile, target's profile, target counts viewer as a contact): one read."""
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
        is_contact = any(item["sk"]["S"].startswith("CONTACT#") for item in items)
        return profiles.get(viewer), profiles.get(target), is_contact

    # -- contacts ----------------------------------------------------------------

    def add_contacts(self, a: str, b: str, now: float) -> None:
        """Record that users a and b have exchanged keys (both directions)."""
        if a == b:
            return
        since = {"N": str(int(now))}
        requests = [
            {
                "PutRequest": {
                    "Item": {"pk": _user_pk(x), "sk": {"S": f"CONTACT#{y}"}, "since": since}
                }
            }
            for x, y in ((a, b), (b, a))
        ]
        batch_write(self._ddb, self._table, requests, _BATCH)


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
