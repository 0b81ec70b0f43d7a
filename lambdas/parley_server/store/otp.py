"""One-time code challenges: one live challenge per phone number.

Item: phone, code_hash (keyed hash, never the code), attempts, wrong (how many
of them were wrong guesses; absent: none), created_at, expires_at (TTL). Every
decision is a conditional write, so concurrent requests cannot both pass a
cool-down, both spend the last attempt or both use a code.
"""

from __future__ import annotations

from typing import Any

import msgspec
from botocore.exceptions import ClientError

from parley_server.models.errors import (
    DependencyUnavailable,
    InvalidCode,
    RateLimited,
    TooManyAttempts,
)

__all__ = ["Attempt", "OtpStore"]


class Attempt(msgspec.Struct, frozen=True):
    """A counted attempt at a live challenge."""

    code_hash: bytes
    attempts_left: int
    created_at: float
    wrong: int = 0  # wrong guesses at this code before this attempt


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class OtpStore:
    """Data access for one-time code challenges."""

    def __init__(self, dynamodb: Any, table: str) -> None:
        self._ddb = dynamodb
        self._table = table

    def start(
        self, phone: str, code_hash: bytes, *, now: float, ttl_s: int, cooldown_s: int
    ) -> None:
        """Replace the phone's challenge, unless the last one is younger than `cooldown_s`."""
        try:
            self._ddb.put_item(
                TableName=self._table,
                Item={
                    "phone": {"S": phone},
                    "code_hash": {"B": code_hash},
                    "attempts": {"N": "0"},
                    "created_at": {"N": repr(float(now))},
                    "expires_at": {"N": str(int(now) + ttl_s)},
                },
                ConditionExpression="attribute_not_exists(phone) OR created_at <= :cutoff",
                ExpressionAttributeValues={":cutoff": {"N": repr(float(now - cooldown_s))}},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if _code(exc) == "ConditionalCheckFailedException":
                created = float(exc.response.get("Item", {}).get("created_at", {}).get("N", now))
                raise RateLimited(
                    "a code was sent moments ago; wait before asking again",
                    retry_after=int(created + cooldown_s - now + 0.999),
                    limit="otp-cooldown",
                ) from exc
            raise DependencyUnavailable("code store unavailable") from exc

    def attempt(self, phone: str, *, now: float, max_attempts: int, cooldown_s: int) -> Attempt:
        """Count one attempt at the phone's live challenge and return what to check it against.

        InvalidCode when there is no live challenge; TooManyAttempts when it is dead.
        """
        try:
            answer = self._ddb.update_item(
                TableName=self._table,
                Key={"phone": {"S": phone}},
                UpdateExpression="ADD attempts :one",
                ConditionExpression=(
                    "attribute_exists(phone) AND expires_at > :now AND attempts < :max"
                ),
                ExpressionAttributeValues={
                    ":one": {"N": "1"},
                    ":now": {"N": str(int(now))},
                    ":max": {"N": str(max_attempts)},
                },
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if _code(exc) != "ConditionalCheckFailedException":
                raise DependencyUnavailable("code store unavailable") from exc
            old = exc.response.get("Item")
            live = old is not None and float(old["expires_at"]["N"]) > now
            if live and old is not None:
                created = float(old["created_at"]["N"])
                raise TooManyAttempts(
                    "too many wrong codes; ask for a new one",
                    retry_after=int(created + cooldown_s - now + 0.999),
                ) from exc
            raise InvalidCode("the code is wrong, expired or already used") from exc
        item = answer["Attributes"]
        return Attempt(
            code_hash=bytes(item["code_hash"]["B"]),
            attempts_left=max_attempts - int(item["attempts"]["N"]),
            created_at=float(item["created_at"]["N"]),
            wrong=int(item.get("wrong", {}).get("N", "0")),
        )

    def mark_wrong(self, phone: str, code_hash: bytes) -> int:
        """Count a wrong guess at the challenge with `code_hash`: how many it has had,
        this one included (0 when that challenge is gone: replaced or used)."""
        try:
            answer = self._ddb.update_item(
                TableName=self._table,
                Key={"phone": {"S": phone}},
                UpdateExpression="ADD wrong :one",
                ConditionExpression="code_hash = :hash",
                ExpressionAttributeValues={":one": {"N": "1"}, ":hash": {"B": code_hash}},
                ReturnValues="UPDATED_NEW",
            )
        except ClientError as exc:
            if _code(exc) == "ConditionalCheckFailedException":
                return 0
            raise DependencyUnavailable("code store unavailable") from exc
        return int(answer["Attributes"]["wrong"]["N"])

    def consume(self, phone: str, code_hash: bytes) -> bool:
        """Delete the challenge if it is still the one with `code_hash`; False if gone."""
        try:
            answer = self._ddb.delete_item(
                TableName=self._table,
                Key={"phone": {"S": phone}},
                ConditionExpression="code_hash = :hash",
                ExpressionAttributeValues={":hash": {"B": code_hash}},
                ReturnValues="ALL_OLD",
            )
        except ClientError as exc:
            if _code(exc) == "ConditionalCheckFailedException":
                return False
            raise DependencyUnavailable("code store unavailable") from exc
        # only the caller whose delete removed the item has used the code
        return "Attributes" in answer
