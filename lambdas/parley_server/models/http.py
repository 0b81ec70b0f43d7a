"""Request and answer bodies of the HTTP API (validated by the resolver, and the
source of the OpenAPI document at GET /v1/openapi.json)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "DEVICE_ID_PATTERN",
    "USER_ID_PATTERN",
    "AccountDeleteRequest",
    "BundleAnswer",
    "DeviceBundleOut",
    "DeviceOut",
    "DevicesAnswer",
    "ErrorAnswer",
    "ErrorBody",
    "KeyCountAnswer",
    "KeysUpload",
    "OneTimePrekeyModel",
    "OtpAnswer",
    "OtpRequest",
    "PresenceAnswer",
    "PresenceSettingRequest",
    "PushRequest",
    "RefreshRequest",
    "SignedPrekeyModel",
    "TokenAnswer",
    "UserAnswer",
    "VerifyRequest",
]

USER_ID_PATTERN = r"^[0-9a-f]{32}$"
DEVICE_ID_PATTERN = r"^[0-9a-f]{16}$"
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


class UserAnswer(BaseModel):
    user_id: str


class PushRequest(_In):
    platform: Literal["fcm", "apns"]
    token: Annotated[str, Field(min_length=1, max_length=4096)]


class DeviceOut(BaseModel):
    device_id: str
    created_at: int = Field(description="Unix time the device signed in")
    current: bool = Field(description="the device making this request")
    ready: bool = Field(description="keys uploaded: people can send to it")
    push: str | None = Field(description='push platform registered ("fcm", "apns") or null')


class DevicesAnswer(BaseModel):
    devices: list[DeviceOut]


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
