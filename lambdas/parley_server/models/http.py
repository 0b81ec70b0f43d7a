"""Request and answer bodies of the HTTP API: `msgspec.Struct`s, which the routes
(handlers/_routes.py) decode and check requests into, encode answers from, and
describe in the OpenAPI document at GET /v1/openapi.json (msgspec's JSON Schema).

A request body refuses unknown fields (`_In`): a typo should fail loudly, not be
ignored. Group bodies are checked first by `checked`, which raises the service's
own BadRequest / PayloadTooLarge (answered as such: 400 naming the field, 413 with
the limit). msgspec, not pydantic: a class costs microseconds to define and the
library milliseconds to import, where pydantic's models and validators were about
70 ms of every cold start of the HTTP API."""

from __future__ import annotations

import base64
from typing import Annotated, Any, ClassVar, Literal

import msgspec
from msgspec import Meta

from parley_server.ids import (
    DEVICE_ID_PATTERN,
    GROUP_ID_PATTERN,
    MEDIA_ID_PATTERN,
    USER_ID_PATTERN,
)
from parley_server.models.errors import BadRequest, PayloadTooLarge
from parley_server.models.groups import (
    MAX_CHANGE_BYTES,
    MAX_IDS_PER_REQUEST,
    MAX_NAME_CHARS,
    ChainEntry,
    ChainPage,
    Group,
    GroupSummary,
)

__all__ = [
    "MAX_CHANGE_BYTES",
    "MAX_IDS_PER_REQUEST",
    "MAX_NAME_CHARS",
    "AccountDeleteRequest",
    "BundleAnswer",
    "CallRelaysAnswer",
    "CertificateAnswer",
    "ChainEntryAnswer",
    "DeviceBundleOut",
    "DeviceId",
    "DeviceListModel",
    "DeviceOut",
    "DevicesAnswer",
    "ErrorAnswer",
    "ErrorBody",
    "GroupAnswer",
    "GroupChangeRequest",
    "GroupId",
    "GroupSummaryAnswer",
    "GroupsAnswer",
    "IceServerModel",
    "KeyCountAnswer",
    "KeysUpload",
    "MediaId",
    "MediaLinkAnswer",
    "MediaUploadAnswer",
    "MediaUploadRequest",
    "OneTimePrekeyModel",
    "OtpAnswer",
    "OtpRequest",
    "PairingAnswer",
    "PairingApproveRequest",
    "PairingClaimRequest",
    "PairingCompleteRequest",
    "PairingRef",
    "PairingRequest",
    "PairingStatusAnswer",
    "PresenceAnswer",
    "PresenceSettingRequest",
    "PushPendingAnswer",
    "PushRequest",
    "PushVerifyRequest",
    "RefreshRequest",
    "RegistrationLockRequest",
    "SignedChangeModel",
    "SignedPrekeyModel",
    "TokenAnswer",
    "UploadForm",
    "UserAnswer",
    "UserId",
    "VerifyRequest",
]

PHONE_EXAMPLE = "+447700900123"

Phone = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=32,
        description="International form; spaces and dashes are fine",
        examples=[PHONE_EXAMPLE],
    ),
]
# Standard base64 with padding; decoded sizes (32-byte keys, 64-byte signatures) are
# checked by the service.
B64Key = Annotated[str, Meta(min_length=1, max_length=64, description="base64 of 32 bytes")]
B64Signature = Annotated[str, Meta(min_length=1, max_length=128, description="base64 of 64 bytes")]
KeyId = Annotated[int, Meta(ge=0, le=2**31 - 1)]

# path parameters
UserId = Annotated[str, Meta(pattern=USER_ID_PATTERN)]
DeviceId = Annotated[str, Meta(pattern=DEVICE_ID_PATTERN)]
GroupId = Annotated[str, Meta(pattern=GROUP_ID_PATTERN)]
MediaId = Annotated[str, Meta(pattern=MEDIA_ID_PATTERN)]
PairingRef = Annotated[str, Meta(pattern=r"^[0-9a-f]{32}$")]

# A registration-lock PIN (logic/registration_lock.py checks it again).
Pin = Annotated[
    str, Meta(pattern=r"^[0-9]{6,64}$", description="6 to 64 digits", examples=["246810"])
]


class _In(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A request body: unknown fields are refused (a typo should fail loudly, not be
    ignored), and nothing is coerced ("12" is no number, 1 no string)."""


class _Out(msgspec.Struct, kw_only=True):
    """An answer body."""


class OtpRequest(_In):
    phone: Phone
    purpose: Annotated[
        Literal["sign_in", "delete_account"],
        Meta(
            description=(
                "what the code is for: signing in (the default), or deleting the account"
                " (DELETE /v1/account); a code works only for its purpose"
            )
        ),
    ] = "sign_in"


class OtpAnswer(_Out):
    expires_in: Annotated[int, Meta(description="seconds the code stays valid")]
    retry_after: Annotated[int, Meta(description="seconds before another code may be asked for")]


class VerifyRequest(_In):
    phone: Phone
    code: Annotated[str, Meta(min_length=1, max_length=16, examples=["123456"])]
    pin: (
        Annotated[
            Pin,
            Meta(
                description=(
                    "the account's registration-lock PIN, when the number's account has one"
                    " (answered 423 registration_locked without it)"
                )
            ),
        ]
        | None
    ) = None


class RegistrationLockRequest(_In):
    pin: Annotated[
        Pin,
        Meta(
            description=(
                "the PIN that signing in with this number on another phone will ask for;"
                " the service keeps only an Argon2id verifier of it"
            )
        ),
    ]


class AccountDeleteRequest(_In):
    code: Annotated[
        str,
        Meta(
            pattern=r"^[0-9]{6}$",
            description=(
                "a fresh code for the account's number, asked for with"
                ' POST /v1/auth/otp {"phone": ..., "purpose": "delete_account"}'
            ),
            examples=["123456"],
        ),
    ]


class RefreshRequest(_In):
    refresh_token: Annotated[str, Meta(min_length=1, max_length=256)]


class TokenAnswer(_Out):
    user_id: str
    device_id: str
    access_token: Annotated[str, Meta(description="send as `Authorization: Bearer <access_token>`")]
    refresh_token: Annotated[str, Meta(description="single use: each refresh answers a new one")]
    expires_in: Annotated[int, Meta(description="seconds the access token is valid")]


class SignedPrekeyModel(_In):
    key_id: KeyId
    public_key: B64Key
    signature: Annotated[
        B64Signature, Meta(description="Ed25519 signature of the 32 public key bytes")
    ]


class OneTimePrekeyModel(_In):
    key_id: KeyId
    public_key: B64Key


class KeysUpload(_In):
    identity_key: Annotated[B64Key, Meta(description="Ed25519 public key, base64 of 32 bytes")]
    signed_prekey: SignedPrekeyModel
    # the per-upload limit is a tunable, checked by the service (413 when over);
    # this bound only stops absurd bodies early
    one_time_prekeys: Annotated[list[OneTimePrekeyModel], Meta(max_length=1000)] = []


class KeyCountAnswer(_Out):
    one_time_prekeys: int


# -- linked devices: the signed device list (more models at the end of the file) ---------

# a signed list or ADV details is a few hundred bytes; base64 of at most 4 KiB
B64Signed = Annotated[str, Meta(min_length=1, max_length=5464, description="base64")]


class DeviceListModel(_In):
    """A signed device list as it travels: the exact bytes signed, and the signature."""

    body: Annotated[
        B64Signed,
        Meta(
            description=(
                "base64 of the list's canonical JSON: user_id, version, ts, account_identity,"
                " devices [{device_id, key_index, identity}] sorted by key_index"
            )
        ),
    ]
    signature: Annotated[
        B64Signature,
        Meta(
            description=(
                'Ed25519 signature by the account identity of b"parley/device-list/v1\\0" + body'
            )
        ),
    ]


class DeviceBundleOut(_Out):
    device_id: str
    identity_key: str
    signed_prekey: SignedPrekeyModel
    one_time_prekey: Annotated[
        OneTimePrekeyModel | None,
        Meta(description="null when the device has none left: use the signed prekey alone"),
    ]


class BundleAnswer(_Out):
    user_id: str
    devices: list[DeviceBundleOut]
    device_list: Annotated[
        DeviceListModel | None,
        Meta(description="the user's signed device list (null until the account publishes one)"),
    ] = None


class UserAnswer(_Out):
    user_id: str


class PushRequest(_In):
    platform: Literal["fcm", "apns"]
    token: Annotated[str, Meta(min_length=1, max_length=4096)]


class PushPendingAnswer(_Out):
    state: Annotated[
        Literal["pending"],
        Meta(description="the token is used once its challenge comes back (POST /v1/push/verify)"),
    ]
    challenge_sent: Annotated[
        bool,
        Meta(
            description=(
                "a challenge was pushed through the token (false: this stack has no"
                " push application for the platform, so nothing can be pushed)"
            )
        ),
    ]
    expires_at: Annotated[int, Meta(description="Unix time after which the challenge is refused")]


class PushVerifyRequest(_In):
    challenge: Annotated[
        str, Meta(min_length=1, max_length=128, description="as the challenge push carried it")
    ]


class DeviceOut(_Out):
    device_id: str
    created_at: Annotated[int, Meta(description="Unix time the device signed in")]
    current: Annotated[bool, Meta(description="the device making this request")]
    ready: Annotated[bool, Meta(description="keys uploaded: people can send to it")]
    push: Annotated[
        str | None, Meta(description='push platform registered ("fcm", "apns") or null')
    ]
    role: Annotated[
        Literal["primary", "companion"],
        Meta(description="the primary signs the device list; companions are linked"),
    ] = "primary"
    key_index: Annotated[int, Meta(description="the device's key index (primary: 0)")] = 0


class DevicesAnswer(_Out):
    devices: list[DeviceOut]
    device_list: Annotated[
        DeviceListModel | None,
        Meta(description="the account's signed device list (null until published)"),
    ] = None


class ContactsAnswer(_Out):
    contacts: Annotated[list[str], Meta(description="user ids of the contacts your devices saved")]


class PresenceAnswer(_Out):
    user_id: str
    last_seen: Annotated[
        float | None,
        Meta(
            description=(
                "Unix time the user was last online; null when unknown or not shared with you"
            )
        ),
    ]


class PresenceSettingRequest(_In):
    last_seen: Literal["nobody", "contacts", "everybody"]


class ErrorBody(_Out):
    """`code` says what went wrong (docs/API.md lists them); some errors add fields
    (`field`, `problems`, `limit`, `retry_after`...)."""

    code: Annotated[str, Meta(examples=["invalid_request"])]
    message: str


class ErrorAnswer(_Out):
    error: ErrorBody


# -- media ------------------------------------------------------------------------------


class MediaUploadRequest(_In):
    # "12" or true are not sizes; the upper bound is a tunable, checked by the service
    # so that it answers 413
    size: Annotated[int, Meta(description="bytes of the encrypted object, exactly")]


class UploadForm(_Out):
    url: str
    fields: Annotated[
        dict[str, str], Meta(description="form fields to send before the file, as given")
    ]


class MediaUploadAnswer(_Out):
    media_id: str
    upload: Annotated[UploadForm, Meta(description="a presigned S3 POST bound to one key and size")]
    expires_in: Annotated[int, Meta(description="seconds the upload form stays valid")]


class MediaLinkAnswer(_Out):
    url: Annotated[str, Meta(description="a presigned S3 GET of the encrypted object")]
    expires_in: Annotated[int, Meta(description="seconds the link stays valid")]
    size: Annotated[int, Meta(description="bytes of the encrypted object")]


# -- calls ------------------------------------------------------------------------------


class IceServerModel(_Out, omit_defaults=True):
    """A W3C RTCIceServer: pass it to RTCPeerConnection as it is (a STUN server has
    no username or credential, and none is sent)."""

    urls: Annotated[list[str], Meta(description="stun:, turn: or turns: URLs of one server")]
    username: str | None = None
    credential: str | None = None


class CallRelaysAnswer(_Out):
    ice_servers: Annotated[
        list[IceServerModel],
        Meta(description="RTCConfiguration.iceServers; empty on the local stack (loopback)"),
    ]
    ttl: Annotated[int, Meta(description="seconds the TURN credentials stay valid")]
    expires_at: Annotated[
        int, Meta(description="Unix time the credentials stop opening allocations")
    ]
    transport: Annotated[
        Literal["internet", "loopback"],
        Meta(
            description=(
                '"internet": STUN and TURN for peers anywhere; "loopback": none, peers '
                "on one machine reach each other directly (the local stack)"
            )
        ),
    ]


# -- groups -----------------------------------------------------------------------------

# base64 of a signed change body of at most MAX_CHANGE_BYTES (logic/group_changes.py
# decodes and checks it; these bounds only stop absurd bodies early)
_CHANGE_B64 = 4 * -(-MAX_CHANGE_BYTES // 3)
_SIGNATURE_B64 = 88  # base64 of 64 bytes
_CHANGE = "invalid_group_change"


class SignedChangeModel(_In):
    """A signed group change as it travels: the exact bytes signed, and the signature."""

    body: Annotated[
        str,
        Meta(
            min_length=1,
            max_length=_CHANGE_B64,
            description=(
                "base64 of the change's canonical JSON: v, group_id, seq, prev, at, author,"
                " device, kind, name, members, admins (docs/API.md, Signed group changes)"
            ),
        ),
    ]
    signature: Annotated[
        str,
        Meta(
            min_length=1,
            max_length=_SIGNATURE_B64,
            description=(
                "Ed25519 signature by the author device's identity key of"
                ' b"parley/group-change/v1\\0" + body'
            ),
        ),
    ]


def _change_envelope(body: Any) -> dict[str, Any]:
    """{"change": {"body": str, "signature": str}}, or a BadRequest naming the field."""
    if not isinstance(body, dict) or set(body) != {"change"}:
        raise BadRequest(
            'the body must be {"change": {"body": "<b64>", "signature": "<b64>"}}',
            code=_CHANGE,
            field="change",
        )
    change = body["change"]
    if not isinstance(change, dict) or set(change) != {"body", "signature"}:
        raise BadRequest(
            "`change` must be an object with exactly the fields body and signature",
            code=_CHANGE,
            field="change",
        )
    for name, most in (("body", _CHANGE_B64), ("signature", _SIGNATURE_B64)):
        value = change[name]
        if not isinstance(value, str) or not value:
            raise BadRequest(
                f"`change.{name}` must be a base64 string", code=_CHANGE, field=f"change.{name}"
            )
        if len(value) > most:
            if name == "body":
                raise PayloadTooLarge(
                    f"`change.body` is larger than {MAX_CHANGE_BYTES} bytes",
                    field="change.body",
                    limit=MAX_CHANGE_BYTES,
                )
            raise BadRequest(
                "`change.signature` must be 64 bytes", code=_CHANGE, field="change.signature"
            )
    return {"change": {"body": change["body"], "signature": change["signature"]}}


class GroupChangeRequest(_In):
    """POST /v1/groups (a `create` change) and POST /v1/groups/{group_id}/changes."""

    change: SignedChangeModel

    # the routes pass the decoded JSON through this before they check it as this struct
    checked: ClassVar = staticmethod(_change_envelope)


class CertificateAnswer(_Out):
    body: Annotated[str, Meta(description="base64 of the author's signed device list")]
    signature: Annotated[str, Meta(description="base64 of its signature by the account identity")]


class ChainEntryAnswer(_Out):
    seq: Annotated[
        int, Meta(description="the entry's place in the chain: the group's rev after it")
    ]
    body: Annotated[str, Meta(description="base64 of the change exactly as it was signed")]
    signature: Annotated[
        str, Meta(description='base64 of its signature ("" for the service\'s entries)')
    ]
    certificate: Annotated[
        CertificateAnswer | None,
        Meta(
            description=(
                "the author's device list as it was when the change was committed"
                " (null for the service's entries)"
            )
        ),
    ]

    @classmethod
    def of(cls, entry: ChainEntry) -> ChainEntryAnswer:
        certificate = (
            CertificateAnswer(body=_b64(entry.cert_body), signature=_b64(entry.cert_signature))
            if entry.cert_body is not None and entry.cert_signature is not None
            else None
        )
        return cls(
            seq=entry.seq,
            body=_b64(entry.body),
            signature=_b64(entry.signature),
            certificate=certificate,
        )


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


class GroupAnswer(_Out, omit_defaults=True):
    """A group; `changes` and `more` only when they were asked for."""

    group_id: str
    name: str
    version: Annotated[int, Meta(description="goes up with every change of who is in the group")]
    members: Annotated[list[str], Meta(description="user ids, longest-standing first")]
    admins: list[str]
    created_by: str
    created_at: Annotated[int, Meta(description="Unix time the group was created")]
    rev: Annotated[
        int, Meta(description="counts every change: the next signed change has seq rev + 1")
    ]
    head: Annotated[
        int, Meta(description="seq of the last entry of the group's chain (0: no chain yet)")
    ]
    changes: Annotated[
        list[ChainEntryAnswer] | None,
        Meta(description="with ?changes_after=N only: the chain's entries after N, in order"),
    ] = None
    more: Annotated[
        bool | None, Meta(description="with ?changes_after=N only: more entries follow these")
    ] = None

    @classmethod
    def of(cls, group: Group, page: ChainPage | None = None) -> GroupAnswer:
        return cls(
            group_id=group.group_id,
            name=group.name,
            version=group.version,
            members=list(group.member_ids),
            admins=list(group.admin_ids),
            created_by=group.created_by,
            created_at=group.created_ms // 1000,
            rev=group.rev,
            head=group.head,
            changes=None if page is None else [ChainEntryAnswer.of(e) for e in page.entries],
            more=None if page is None else page.more,
        )


class GroupSummaryAnswer(_Out):
    group_id: str
    name: str
    version: int
    member_count: int
    role: Annotated[Literal["admin", "member"], Meta(description="the caller's role")]

    @classmethod
    def of(cls, summary: GroupSummary) -> GroupSummaryAnswer:
        return cls(
            group_id=summary.group_id,
            name=summary.name,
            version=summary.version,
            member_count=summary.member_count,
            role=summary.role,
        )


class GroupsAnswer(_Out):
    groups: list[GroupSummaryAnswer]


# -- linked devices: pairing ---------------------------------------------------------------


class PairingRequest(_In):
    identity_key: Annotated[B64Key, Meta(description="the new device's Ed25519 identity key")]


class PairingAnswer(_Out):
    ref: Annotated[str, Meta(description="the pairing's reference (32 hex)")]
    device_id: Annotated[str, Meta(description="the new device's id, if the pairing completes")]
    claim: Annotated[
        str, Meta(description="base64 of 32 random bytes: proves the caller made the pairing")
    ]
    expires_in: Annotated[int, Meta(description="seconds the pairing lives")]


class PairingApproveRequest(_In):
    details: Annotated[
        B64Signed,
        Meta(
            description=(
                "base64 of the canonical JSON {user_id, device_id, key_index, identity, ts}"
            )
        ),
    ]
    account_signature: Annotated[
        B64Signature,
        Meta(
            description=(
                'Ed25519 signature by the account identity of b"parley/adv-account/v1\\0" + details'
            )
        ),
    ]
    hmac: Annotated[
        B64Key,
        Meta(description="HMAC-SHA256 with the link code's secret (the service cannot check it)"),
    ]
    device_list: Annotated[
        DeviceListModel,
        Meta(description="the new device list: the current one plus this device, version + 1"),
    ]


class PairingClaimRequest(_In):
    claim: Annotated[B64Key, Meta(description="the claim the pairing was created with")]


class PairingStatusAnswer(_Out, omit_defaults=True):
    """`state`, and once approved what the new device needs to finish."""

    state: Literal["pending", "approved"]
    user_id: str | None = None
    details: str | None = None
    account_signature: str | None = None
    hmac: str | None = None
    account_identity: str | None = None


class PairingCompleteRequest(_In):
    claim: Annotated[B64Key, Meta(description="the claim the pairing was created with")]
    device_signature: Annotated[
        B64Signature,
        Meta(
            description=(
                "Ed25519 signature by the new device of"
                ' b"parley/adv-device/v1\\0" + details + account_signature + account_identity'
            )
        ),
    ]
    keys: Annotated[
        KeysUpload, Meta(description="the new device's keys, as PUT /v1/keys takes them")
    ]
