"""Request and answer bodies of the HTTP API (validated by the resolver, and the
source of the OpenAPI document at GET /v1/openapi.json).

Group bodies are checked by a `before` validator that raises the service's own
BadRequest / PayloadTooLarge (answered as such: 400 naming the field, 413 with
the limit) rather than pydantic's errors. The domain models stay free of
pydantic: the WebSocket functions import them and never this module."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, model_validator

from parley_server.ids import USER_ID_PATTERN, is_user_id
from parley_server.models.errors import BadRequest, PayloadTooLarge
from parley_server.models.groups import Group, GroupSummary

__all__ = [
    "MAX_IDS_PER_REQUEST",
    "MAX_NAME_CHARS",
    "AccountDeleteRequest",
    "BundleAnswer",
    "DeviceBundleOut",
    "DeviceListModel",
    "DeviceOut",
    "DevicesAnswer",
    "ErrorAnswer",
    "ErrorBody",
    "GroupAnswer",
    "GroupSummaryAnswer",
    "GroupsAnswer",
    "KeyCountAnswer",
    "KeysUpload",
    "MediaLinkAnswer",
    "MediaUploadAnswer",
    "MediaUploadRequest",
    "MembersRequest",
    "NewGroupRequest",
    "OneTimePrekeyModel",
    "OtpAnswer",
    "OtpRequest",
    "PairingAnswer",
    "PairingApproveRequest",
    "PairingClaimRequest",
    "PairingCompleteRequest",
    "PairingRequest",
    "PairingStatusAnswer",
    "PresenceAnswer",
    "PresenceSettingRequest",
    "PromoteRequest",
    "PushPendingAnswer",
    "PushRequest",
    "PushVerifyRequest",
    "RefreshRequest",
    "RegistrationLockRequest",
    "SignedPrekeyModel",
    "TokenAnswer",
    "UploadForm",
    "UserAnswer",
    "VerifyRequest",
]

PHONE_EXAMPLE = "+447700900123"

Phone = Annotated[
    str,
    Field(
        min_length=1,
        max_length=32,
        description="International form; spaces and dashes are fine",
        examples=[PHONE_EXAMPLE],
    ),
]
# Standard base64 with padding; decoded sizes (32-byte keys, 64-byte signatures) are
# checked by the service.
B64Key = Annotated[str, Field(min_length=1, max_length=64, description="base64 of 32 bytes")]
B64Signature = Annotated[str, Field(min_length=1, max_length=128, description="base64 of 64 bytes")]
KeyId = Annotated[int, Field(strict=True, ge=0, le=2**31 - 1)]


# A registration-lock PIN (logic/registration_lock.py checks it again).
Pin = Annotated[
    str, Field(pattern=r"^[0-9]{6,64}$", description="6 to 64 digits", examples=["246810"])
]


class _In(BaseModel):
    # unknown fields are refused: a typo should fail loudly, not be ignored
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class OtpRequest(_In):
    phone: Phone
    purpose: Literal["sign_in", "delete_account"] = Field(
        default="sign_in",
        description=(
            "what the code is for: signing in (the default), or deleting the account"
            " (DELETE /v1/account); a code works only for its purpose"
        ),
    )


class OtpAnswer(BaseModel):
    expires_in: int = Field(description="seconds the code stays valid")
    retry_after: int = Field(description="seconds before another code may be asked for")


class VerifyRequest(_In):
    phone: Phone
    code: Annotated[str, Field(min_length=1, max_length=16, examples=["123456"])]
    pin: Pin | None = Field(
        default=None,
        description=(
            "the account's registration-lock PIN, when the number's account has one"
            " (answered 423 registration_locked without it)"
        ),
    )


class RegistrationLockRequest(_In):
    pin: Pin = Field(
        description=(
            "the PIN that signing in with this number on another phone will ask for;"
            " the service keeps only an Argon2id verifier of it"
        )
    )


class AccountDeleteRequest(_In):
    code: Annotated[
        str,
        Field(
            pattern=r"^[0-9]{6}$",
            description=(
                "a fresh code for the account's number, asked for with"
                ' POST /v1/auth/otp {"phone": ..., "purpose": "delete_account"}'
            ),
            examples=["123456"],
        ),
    ]


class RefreshRequest(_In):
    refresh_token: Annotated[str, Field(min_length=1, max_length=256)]


class TokenAnswer(BaseModel):
    user_id: str
    device_id: str
    access_token: str = Field(description="send as `Authorization: Bearer <access_token>`")
    refresh_token: str = Field(description="single use: each refresh answers a new one")
    expires_in: int = Field(description="seconds the access token is valid")


class SignedPrekeyModel(_In):
    key_id: KeyId
    public_key: B64Key
    signature: B64Signature = Field(description="Ed25519 signature of the 32 public key bytes")


class OneTimePrekeyModel(_In):
    key_id: KeyId
    public_key: B64Key


class KeysUpload(_In):
    identity_key: B64Key = Field(description="Ed25519 public key, base64 of 32 bytes")
    signed_prekey: SignedPrekeyModel
    # the per-upload limit is a tunable, checked by the service (413 when over);
    # this bound only stops absurd bodies early
    one_time_prekeys: Annotated[list[OneTimePrekeyModel], Field(max_length=1000)] = []


class KeyCountAnswer(BaseModel):
    one_time_prekeys: int


# -- linked devices: the signed device list (more models at the end of the file) ---------

# a signed list or ADV details is a few hundred bytes; base64 of at most 4 KiB
B64Signed = Annotated[str, Field(min_length=1, max_length=5464, description="base64")]


class DeviceListModel(_In):
    """A signed device list as it travels: the exact bytes signed, and the signature."""

    body: B64Signed = Field(
        description=(
            "base64 of the list's canonical JSON: user_id, version, ts, account_identity,"
            " devices [{device_id, key_index, identity}] sorted by key_index"
        )
    )
    signature: B64Signature = Field(
        description=(
            'Ed25519 signature by the account identity of b"parley/device-list/v1\\0" + body'
        )
    )


class DeviceBundleOut(BaseModel):
    device_id: str
    identity_key: str
    signed_prekey: SignedPrekeyModel
    one_time_prekey: OneTimePrekeyModel | None = Field(
        description="null when the device has none left: use the signed prekey alone"
    )


class BundleAnswer(BaseModel):
    user_id: str
    devices: list[DeviceBundleOut]
    device_list: DeviceListModel | None = Field(
        default=None,
        description="the user's signed device list (null until the account publishes one)",
    )


class UserAnswer(BaseModel):
    user_id: str


class PushRequest(_In):
    platform: Literal["fcm", "apns"]
    token: Annotated[str, Field(min_length=1, max_length=4096)]


class PushPendingAnswer(BaseModel):
    state: Literal["pending"] = Field(
        description="the token is used once its challenge comes back (POST /v1/push/verify)"
    )
    challenge_sent: bool = Field(
        description="a challenge was pushed through the token (false: this stack has no"
        " push application for the platform, so nothing can be pushed)"
    )
    expires_at: int = Field(description="Unix time after which the challenge is refused")


class PushVerifyRequest(_In):
    challenge: Annotated[
        str, Field(min_length=1, max_length=128, description="as the challenge push carried it")
    ]


class DeviceOut(BaseModel):
    device_id: str
    created_at: int = Field(description="Unix time the device signed in")
    current: bool = Field(description="the device making this request")
    ready: bool = Field(description="keys uploaded: people can send to it")
    push: str | None = Field(description='push platform registered ("fcm", "apns") or null')
    role: Literal["primary", "companion"] = Field(
        default="primary", description="the primary signs the device list; companions are linked"
    )
    key_index: int = Field(default=0, description="the device's key index (primary: 0)")


class DevicesAnswer(BaseModel):
    devices: list[DeviceOut]
    device_list: DeviceListModel | None = Field(
        default=None, description="the account's signed device list (null until published)"
    )


class ContactsAnswer(BaseModel):
    contacts: list[str] = Field(description="user ids of the contacts your devices saved")


class PresenceAnswer(BaseModel):
    user_id: str
    last_seen: float | None = Field(
        description="Unix time the user was last online; null when unknown or not shared with you"
    )


class PresenceSettingRequest(_In):
    last_seen: Literal["nobody", "contacts", "everybody"]


class ErrorBody(BaseModel):
    model_config = ConfigDict(extra="allow")

    code: str = Field(examples=["invalid_request"])
    message: str


class ErrorAnswer(BaseModel):
    error: ErrorBody


# -- media ------------------------------------------------------------------------------


class MediaUploadRequest(_In):
    # strict: "12" or true are not sizes; the upper bound is a tunable, checked by
    # the service so that it answers 413
    size: StrictInt = Field(description="bytes of the encrypted object, exactly")


class UploadForm(BaseModel):
    url: str
    fields: dict[str, str] = Field(description="form fields to send before the file, as given")


class MediaUploadAnswer(BaseModel):
    media_id: str
    upload: UploadForm = Field(description="a presigned S3 POST bound to one key and size")
    expires_in: int = Field(description="seconds the upload form stays valid")


class MediaLinkAnswer(BaseModel):
    url: str = Field(description="a presigned S3 GET of the encrypted object")
    expires_in: int = Field(description="seconds the link stays valid")
    size: int = Field(description="bytes of the encrypted object")


# -- groups -----------------------------------------------------------------------------

MAX_NAME_CHARS = 100  # as WhatsApp's group subject
# One change is one DynamoDB transaction (100 items): the group's META item,
# the creator's member item at creation, and the members named in the request.
MAX_IDS_PER_REQUEST = 98
# Names are shown to people: no control characters (newlines, bidi tricks aside).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")

UserId = Annotated[str, Field(pattern=USER_ID_PATTERN, description="a user id")]


def _object(body: Any, shape: str, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise BadRequest(f"body must be a JSON object: {shape}")
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise BadRequest(f"unknown field(s): {', '.join(unknown)[:200]}", fields=unknown[:10])
    for name in sorted(allowed - {"members"}):
        if name not in body:
            raise BadRequest(f"`{name}` is required", field=name)
    return body


def _user_id(raw: object, field: str) -> str:
    if not is_user_id(raw):
        raise BadRequest(f"`{field}` must be a user id (32 lowercase hex)", field=field)
    return str(raw)


def _user_ids(raw: object, field: str, *, allow_empty: bool) -> list[str]:
    if not isinstance(raw, list) or (not raw and not allow_empty):
        raise BadRequest(f"`{field}` must be a list of user ids", field=field)
    if len(raw) > MAX_IDS_PER_REQUEST:
        raise PayloadTooLarge(
            f"`{field}` may name at most {MAX_IDS_PER_REQUEST} users per request",
            field=field,
            limit=MAX_IDS_PER_REQUEST,
        )
    ids = [_user_id(item, field) for item in raw]
    return list(dict.fromkeys(ids))  # order kept, repeats mean nothing more


def _name(raw: object) -> str:
    if not isinstance(raw, str):
        raise BadRequest("`name` must be a string", field="name")
    name = raw.strip()
    if not name:
        raise BadRequest("`name` must not be empty", field="name")
    if len(name) > MAX_NAME_CHARS:
        raise BadRequest(f"`name` may have at most {MAX_NAME_CHARS} characters", field="name")
    if _CONTROL.search(name):
        raise BadRequest("`name` must not contain control characters", field="name")
    return name


class NewGroupRequest(_In):
    """POST /v1/groups: the caller becomes the group's first admin."""

    name: str = Field(
        min_length=1, max_length=MAX_NAME_CHARS, description="shown to members; trimmed"
    )
    members: list[UserId] = Field(
        default_factory=list,
        max_length=MAX_IDS_PER_REQUEST,
        description="registered users to add besides the caller",
    )

    @model_validator(mode="before")
    @classmethod
    def _checked(cls, body: Any) -> dict[str, Any]:
        obj = _object(body, '{"name": "...", "members": ["<user id>", ...]}', {"name", "members"})
        members = _user_ids(obj.get("members", []), "members", allow_empty=True)
        return {"name": _name(obj["name"]), "members": members}


class MembersRequest(_In):
    """POST /v1/groups/{group_id}/members."""

    user_ids: list[UserId] = Field(min_length=1, max_length=MAX_IDS_PER_REQUEST)

    @model_validator(mode="before")
    @classmethod
    def _checked(cls, body: Any) -> dict[str, Any]:
        obj = _object(body, '{"user_ids": ["<user id>", ...]}', {"user_ids"})
        return {"user_ids": _user_ids(obj["user_ids"], "user_ids", allow_empty=False)}


class PromoteRequest(_In):
    """POST /v1/groups/{group_id}/admins."""

    user_id: UserId

    @model_validator(mode="before")
    @classmethod
    def _checked(cls, body: Any) -> dict[str, Any]:
        obj = _object(body, '{"user_id": "<user id>"}', {"user_id"})
        return {"user_id": _user_id(obj["user_id"], "user_id")}


class GroupAnswer(BaseModel):
    group_id: str
    name: str
    version: int = Field(description="goes up with every change of who is in the group")
    members: list[str] = Field(description="user ids, longest-standing first")
    admins: list[str]
    created_by: str
    created_at: int = Field(description="Unix time the group was created")

    @classmethod
    def of(cls, group: Group) -> GroupAnswer:
        return cls(
            group_id=group.group_id,
            name=group.name,
            version=group.version,
            members=group.member_ids,
            admins=group.admin_ids,
            created_by=group.created_by,
            created_at=group.created_ms // 1000,
        )


class GroupSummaryAnswer(BaseModel):
    group_id: str
    name: str
    version: int
    member_count: int
    role: Literal["admin", "member"] = Field(description="the caller's role")

    @classmethod
    def of(cls, summary: GroupSummary) -> GroupSummaryAnswer:
        return cls(
            group_id=summary.group_id,
            name=summary.name,
            version=summary.version,
            member_count=summary.member_count,
            role=summary.role,
        )


class GroupsAnswer(BaseModel):
    groups: list[GroupSummaryAnswer]


# -- linked devices: pairing ---------------------------------------------------------------


class PairingRequest(_In):
    identity_key: B64Key = Field(description="the new device's Ed25519 identity key")


class PairingAnswer(BaseModel):
    ref: str = Field(description="the pairing's reference (32 hex)")
    device_id: str = Field(description="the new device's id, if the pairing completes")
    claim: str = Field(description="base64 of 32 random bytes: proves the caller made the pairing")
    expires_in: int = Field(description="seconds the pairing lives")


class PairingApproveRequest(_In):
    details: B64Signed = Field(
        description="base64 of the canonical JSON {user_id, device_id, key_index, identity, ts}"
    )
    account_signature: B64Signature = Field(
        description=(
            'Ed25519 signature by the account identity of b"parley/adv-account/v1\\0" + details'
        )
    )
    hmac: B64Key = Field(
        description="HMAC-SHA256 with the link code's secret (the service cannot check it)"
    )
    device_list: DeviceListModel = Field(
        description="the new device list: the current one plus this device, version + 1"
    )


class PairingClaimRequest(_In):
    claim: B64Key = Field(description="the claim the pairing was created with")


class PairingStatusAnswer(BaseModel):
    state: Literal["pending", "approved"]
    user_id: str | None = None
    details: str | None = None
    account_signature: str | None = None
    hmac: str | None = None
    account_identity: str | None = None


class PairingCompleteRequest(_In):
    claim: B64Key = Field(description="the claim the pairing was created with")
    device_signature: B64Signature = Field(
        description=(
            "Ed25519 signature by the new device of"
            ' b"parley/adv-device/v1\\0" + details + account_signature + account_identity'
        )
    )
    keys: KeysUpload = Field(description="the new device's keys, as PUT /v1/keys takes them")
