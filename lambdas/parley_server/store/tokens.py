"""Refresh tokens and their families, in the users table.

    REFRESH#<sha256 of token> / REFRESH   family, user_id, device_id, expires_at,
                                          spent_at?, next? (the hash it was traded for)
    FAMILY#<family id>        / FAMILY    user_id, device_id, revoked?, expires_at, tokens

A family is one device's chain of refresh tokens; `tokens` is the set of the
hashes it has issued, so deleting an account can find and delete every one of
them. Only hashes are stored: a copy of the table gives nobody a usable token.
"""

from __future__ import annotations

from typing import Any

import msgspec
from botocore.exceptions import ClientError

from parley_server.models.errors import DependencyUnavailable, InvalidToken, ReusedRefreshToken
from parley_server.store.dynamo import Retry, batch_write

__all__ = ["RefreshRecord", "RefreshStore", "SpentToken"]

_BATCH = Retry(5, "token store unavailable", "token store is throttling")


class RefreshRecord(msgspec.Struct, frozen=True):
    """Who a refresh token was issued to."""

    family: str
    user_id: str
    device_id: str


class SpentToken(msgspec.Struct, frozen=True):
    """A refresh token already traded: when, and for which (its hash)."""

    record: RefreshRecord
    spent_at: int
    next: str | None  # None: spent by a revocation or a reissue, not traded


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _reused(record: RefreshRecord) -> ReusedRefreshToken:
    return ReusedRefreshToken(
        family=record.family, user_id=record.user_id, device_id=record.device_id
    )


def _record(item: dict[str, Any]) -> RefreshRecord:
    return RefreshRecord(
        family=item["family"]["S"], user_id=item["user_id"]["S"], device_id=item["device_id"]["S"]
    )


class RefreshStore:
    """Data access for refresh tokens (by hash) and token families."""

    def __init__(self, dynamodb: Any, table: str) -> None:
        self._ddb = dynamodb
        self._table = table

    def _token_put(self, token_hash: str, record: RefreshRecord, expires_at: int) -> dict[str, Any]:
        return {
            "Put": {
                "TableName": self._table,
                "Item": {
                    "pk": {"S": f"REFRESH#{token_hash}"},
                    "sk": {"S": "REFRESH"},
                    "family": {"S": record.family},
                    "user_id": {"S": record.user_id},
                    "device_id": {"S": record.device_id},
                    "expires_at": {"N": str(expires_at)},
                },
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }

    def start_family(self, token_hash: str, record: RefreshRecord, *, expires_at: int) -> None:
        """Create a family with its first token (one transaction)."""
        family = {
            "Put": {
                "TableName": self._table,
                "Item": {
                    "pk": {"S": f"FAMILY#{record.family}"},
                    "sk": {"S": "FAMILY"},
                    "user_id": {"S": record.user_id},
                    "device_id": {"S": record.device_id},
                    "expires_at": {"N": str(expires_at)},
                    "tokens": {"SS": [token_hash]},
                },
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }
        try:
            self._ddb.transact_write_items(
                TransactItems=[family, self._token_put(token_hash, record, expires_at)]
            )
        except ClientError as exc:
            raise DependencyUnavailable("token store unavailable") from exc

    def find(self, token_hash: str, *, now: float) -> RefreshRecord | SpentToken:
        """Whose live token this is, and if it was spent, when and for which.

        InvalidToken if unknown or expired.
        """
        try:
            answer = self._ddb.get_item(
                TableName=self._table,
                Key={"pk": {"S": f"REFRESH#{token_hash}"}, "sk": {"S": "REFRESH"}},
                ConsistentRead=True,
            )
        except ClientError as exc:
            raise DependencyUnavailable("token store unavailable") from exc
        item = answer.get("Item")
        # TTL deletion is lazy: an expired item may still be there
        if item is None or float(item["expires_at"]["N"]) <= now:
            raise InvalidToken("refresh token unknown or expired")
        if "spent_at" in item:
            successor = item.get("next", {}).get("S")
            return SpentToken(_record(item), int(item["spent_at"]["N"]), successor)
        return _record(item)

    def rotate(
        self,
        old_hash: str,
        new_hash: str,
        record: RefreshRecord,
        *,
        now: float,
        expires_at: int,
    ) -> None:
        """Spend the old token and add the family's next one, in one transaction.

        The old token's condition decides: of two concurrent uses exactly one wins,
        and the loser is told the token was reused. A revoked or expired family
        refuses (InvalidToken). A failure changes nothing, so the old token still works.
        """
        old = {
            "Update": {
                "TableName": self._table,
                "Key": {"pk": {"S": f"REFRESH#{old_hash}"}, "sk": {"S": "REFRESH"}},
                "UpdateExpression": "SET spent_at = :now, #next = :new",
                "ConditionExpression": "attribute_exists(pk) AND attribute_not_exists(spent_at)",
                "ExpressionAttributeNames": {"#next": "next"},
                "ExpressionAttributeValues": {
                    ":now": {"N": str(int(now))},
                    ":new": {"S": new_hash},
                },
            }
        }
        self._trade(old, new_hash, record, now=now, expires_at=expires_at)

    def reissue(
        self,
        spent: str,
        lost: str,
        new_hash: str,
        record: RefreshRecord,
        *,
        now: float,
        expires_at: int,
    ) -> None:
        """Trade the spent token `spent` again, for `new_hash`, when what it was traded
        for (`lost`: the answer never reached the device) was never used. `lost` is
        spent too, without a successor, so it is worth nothing from now on.

        ReusedRefreshToken if `lost` was used, or `spent` was traded again meanwhile:
        then two parties hold the family's tokens after all.
        """
        old = {
            "Update": {
                "TableName": self._table,
                "Key": {"pk": {"S": f"REFRESH#{spent}"}, "sk": {"S": "REFRESH"}},
                "UpdateExpression": "SET #next = :new",
                "ConditionExpression": "#next = :lost",
                "ExpressionAttributeNames": {"#next": "next"},
                "ExpressionAttributeValues": {":lost": {"S": lost}, ":new": {"S": new_hash}},
            }
        }
        voided = {
            "Update": {
                "TableName": self._table,
                "Key": {"pk": {"S": f"REFRESH#{lost}"}, "sk": {"S": "REFRESH"}},
                "UpdateExpression": "SET spent_at = :now",
                "ConditionExpression": "attribute_exists(pk) AND attribute_not_exists(spent_at)",
                "ExpressionAttributeValues": {":now": {"N": str(int(now))}},
            }
        }
        self._trade(old, new_hash, record, now=now, expires_at=expires_at, also=voided)

    def _trade(
        self,
        old: dict[str, Any],
        new_hash: str,
        record: RefreshRecord,
        *,
        now: float,
        expires_at: int,
        also: dict[str, Any] | None = None,
    ) -> None:
        """`old` (the update that spends a token, first), the family's next token, and
        `also` (a condition that must hold too, last), in one transaction."""
        family = {
            "Update": {
                "TableName": self._table,
                "Key": {"pk": {"S": f"FAMILY#{record.family}"}, "sk": {"S": "FAMILY"}},
                "UpdateExpression": "SET expires_at = :exp ADD #tokens :new",
                "ExpressionAttributeNames": {"#tokens": "tokens"},
                "ConditionExpression": (
                    "attribute_exists(pk) AND attribute_not_exists(revoked) AND expires_at > :now"
                ),
                "ExpressionAttributeValues": {
                    ":exp": {"N": str(expires_at)},
                    ":now": {"N": str(int(now))},
                    ":new": {"SS": [new_hash]},
                },
            }
        }
        items = [old, family, self._token_put(new_hash, record, expires_at)]
        try:
            self._ddb.transact_write_items(TransactItems=items + ([also] if also else []))
        except ClientError as exc:
            if _code(exc) != "TransactionCanceledException":
                raise DependencyUnavailable("token store unavailable") from exc
            reasons = [r.get("Code") for r in exc.response.get("CancellationReasons", [])]
            if reasons[:1] == ["ConditionalCheckFailed"] or reasons[3:4] == [
                "ConditionalCheckFailed"
            ]:
                raise _reused(record) from exc
            if reasons[1:2] == ["ConditionalCheckFailed"]:
                raise InvalidToken("this device's sign-in was revoked") from exc
            # e.g. TransactionConflict with a concurrent use: nothing changed, retry
            raise DependencyUnavailable("token store busy; try again") from exc

    def revoke_family(self, family: str, *, now: float) -> None:
        """Refuse every token of the family from now on."""
        try:
            self._ddb.update_item(
                TableName=self._table,
                Key={"pk": {"S": f"FAMILY#{family}"}, "sk": {"S": "FAMILY"}},
                UpdateExpression="SET revoked = :now",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues={":now": {"N": str(int(now))}},
            )
        except ClientError as exc:
            if _code(exc) == "ConditionalCheckFailedException":
                return  # expired and gone: nothing left to refuse
            raise DependencyUnavailable("token store unavailable") from exc

    def forget_family(self, family: str) -> int:
        """Delete the family and every refresh token it issued (spent ones too); how
        many tokens went. Safe to repeat: a family already gone deletes nothing."""
        try:
            answer = self._ddb.get_item(
                TableName=self._table,
                Key={"pk": {"S": f"FAMILY#{family}"}, "sk": {"S": "FAMILY"}},
                ConsistentRead=True,
                ProjectionExpression="#t",
                ExpressionAttributeNames={"#t": "tokens"},
            )
        except ClientError as exc:
            raise DependencyUnavailable("token store unavailable") from exc
        item = answer.get("Item")
        if item is None:
            return 0
        hashes = sorted(item.get("tokens", {}).get("SS", []))
        requests = [
            {"DeleteRequest": {"Key": {"pk": {"S": f"REFRESH#{h}"}, "sk": {"S": "REFRESH"}}}}
            for h in hashes
        ]
        # the tokens first: the family (which lists them) goes only once they are gone
        requests.append(
            {"DeleteRequest": {"Key": {"pk": {"S": f"FAMILY#{family}"}, "sk": {"S": "FAMILY"}}}}
        )
        batch_write(self._ddb, self._table, requests[:-1], _BATCH)
        batch_write(self._ddb, self._table, requests[-1:], _BATCH)
        return len(hashes)
