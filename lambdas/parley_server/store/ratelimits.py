"""Fixed-window rate-limit counters in DynamoDB (never in Lambda memory).

One conditional UpdateItem per hit: the write itself decides, so there is no
read before it and two concurrent Lambdas cannot both slip past the limit.

Strikes (`strike`, `forgive`, `strikes`) are the other kind of item: a series of
failures of one subject (key `<name>#<subject>`: strikes, first_at, last_at,
expires_at), which the caller turns into a lockout. A series is open while it is
younger than `span_s` (from its first strike) or, once it holds `threshold`
strikes, until `span_s` after its last; a strike after that starts a new series.
"""

from __future__ import annotations

from typing import Any

import msgspec
from botocore.exceptions import ClientError

from parley_server.models.errors import DependencyUnavailable, RateLimited

__all__ = ["RateLimiter", "Strikes"]


class Strikes(msgspec.Struct, frozen=True):
    """A subject's open series of strikes (count 0: none)."""

    count: int = 0
    first_at: float = 0.0
    last_at: float = 0.0


def _refused(name: str, *, window_end: int, now: float, code: str | None) -> RateLimited:
    return RateLimited(
        f"too many requests ({name}); try again later",
        retry_after=max(1, int(window_end - now + 0.999)),
        code=code,
        limit=name,
    )


class RateLimiter:
    """Counts hits per (name, subject) in windows of `window_s` seconds."""

    def __init__(self, dynamodb: Any, table: str) -> None:
        self._ddb = dynamodb
        self._table = table

    def hit(
        self,
        name: str,
        subject: str,
        *,
        limit: int,
        window_s: int,
        now: float,
        code: str | None = None,
        cost: int = 1,
    ) -> int:
        """Count one hit; raise RateLimited when the window already holds `limit` hits.
        A hit of `cost` counts that many (bytes, say), and is refused unless all of
        them fit.

        Returns the number of hits in the window including this one.
        """
        window = int(now // window_s)
        window_end = (window + 1) * window_s
        key = f"{name}#{subject}#{window}"
        if cost > limit:
            raise _refused(name, window_end=window_end, now=now, code=code)
        try:
            answer = self._ddb.update_item(
                TableName=self._table,
                Key={"key": {"S": key}},
                UpdateExpression="ADD hits :one SET expires_at = if_not_exists(expires_at, :exp)",
                ConditionExpression="attribute_not_exists(hits) OR hits <= :room",
                ExpressionAttributeValues={
                    ":one": {"N": str(cost)},
                    ":room": {"N": str(limit - cost)},
                    # kept a little past the window so DynamoDB's lazy TTL never matters
                    ":exp": {"N": str(window_end + 60)},
                },
                ReturnValues="UPDATED_NEW",
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise _refused(name, window_end=window_end, now=now, code=code) from exc
            raise DependencyUnavailable("rate limit store unavailable") from exc
        return int(answer["Attributes"]["hits"]["N"])

    def give_back(self, name: str, subject: str, *, window_s: int, now: float) -> None:
        """Undo one hit of the current window: it was counted for something that
        never happened (a text SNS could not send), so it must not use up a limit."""
        # nothing counted in this window (it has just turned): nothing to undo
        self._take_one_back(f"{name}#{subject}#{int(now // window_s)}", "hits")

    def remaining_window(self, *, window_s: int, now: float) -> int:
        """Seconds until the current window ends."""
        return max(1, int((int(now // window_s) + 1) * window_s - now + 0.999))

    # -- strikes ------------------------------------------------------------------------

    def strikes(
        self, name: str, subject: str, *, threshold: int, span_s: int, now: float
    ) -> Strikes:
        """The subject's open series (a consistent read); Strikes() when there is none."""
        try:
            answer = self._ddb.get_item(
                TableName=self._table,
                Key={"key": {"S": f"{name}#{subject}"}},
                ConsistentRead=True,
            )
        except ClientError as exc:
            raise DependencyUnavailable("rate limit store unavailable") from exc
        item = answer.get("Item")
        if item is None or "strikes" not in item:
            return Strikes()
        found = Strikes(
            count=int(item["strikes"]["N"]),
            first_at=float(item["first_at"]["N"]),
            last_at=float(item["last_at"]["N"]),
        )
        cutoff = now - span_s
        if found.count <= 0:
            return Strikes()
        if found.count < threshold and found.first_at <= cutoff:
            return Strikes()
        if found.count >= threshold and found.last_at <= cutoff:
            return Strikes()
        return found

    def strike(
        self, name: str, subject: str, *, threshold: int, span_s: int, now: float
    ) -> Strikes:
        """Count one strike: in the open series, or as the first of a new one. Two
        conditional writes at most (three if a concurrent strike opens the series
        between them); the series as it is after this strike."""
        key = {"key": {"S": f"{name}#{subject}"}}
        values = {
            ":t": {"N": str(threshold)},
            ":cut": {"N": repr(float(now - span_s))},
            ":now": {"N": repr(float(now))},
            ":one": {"N": "1"},
            ":exp": {"N": str(int(now) + span_s + 60)},
        }
        open_series = "(strikes < :t AND first_at > :cut) OR (strikes >= :t AND last_at > :cut)"
        for _ in range(3):
            try:
                answer = self._ddb.update_item(
                    TableName=self._table,
                    Key=key,
                    UpdateExpression="ADD strikes :one SET last_at = :now, expires_at = :exp",
                    ConditionExpression=f"attribute_exists(strikes) AND ({open_series})",
                    ExpressionAttributeValues=values,
                    ReturnValues="ALL_NEW",
                )
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                    raise DependencyUnavailable("rate limit store unavailable") from exc
            else:
                item = answer["Attributes"]
                return Strikes(
                    count=int(item["strikes"]["N"]),
                    first_at=float(item["first_at"]["N"]),
                    last_at=float(item["last_at"]["N"]),
                )
            try:
                self._ddb.update_item(
                    TableName=self._table,
                    Key=key,
                    UpdateExpression=(
                        "SET strikes = :one, first_at = :now, last_at = :now, expires_at = :exp"
                    ),
                    ConditionExpression=f"attribute_not_exists(strikes) OR NOT ({open_series})",
                    ExpressionAttributeValues=values,
                )
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                    raise DependencyUnavailable("rate limit store unavailable") from exc
                continue  # a concurrent strike opened a series: count in it
            return Strikes(count=1, first_at=now, last_at=now)
        raise DependencyUnavailable("rate limit store contended")

    def forgive(self, name: str, subject: str) -> None:
        """Take back one strike (what it counted turned out well)."""
        self._take_one_back(f"{name}#{subject}", "strikes")

    def _take_one_back(self, key: str, counter: str) -> None:
        """Count one less in `counter` of item `key`, if it counts anything at all."""
        try:
            self._ddb.update_item(
                TableName=self._table,
                Key={"key": {"S": key}},
                UpdateExpression=f"ADD {counter} :minus_one",
                ConditionExpression=f"{counter} > :zero",
                ExpressionAttributeValues={":minus_one": {"N": "-1"}, ":zero": {"N": "0"}},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return  # nothing to take back
            raise DependencyUnavailable("rate limit store unavailable") from exc
