"""Fixed-window rate-limit counters in DynamoDB (never in Lambda memory).

One conditional UpdateItem per hit: the write itself decides, so there is no
read before it and two concurrent Lambdas cannot both slip past the limit.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from parley_server.models.errors import DependencyUnavailable, RateLimited

__all__ = ["RateLimiter"]


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
    ) -> int:
        """Count one hit; raise RateLimited when the window already holds `limit` hits.

        Returns the number of hits in the window including this one.
        """
        window = int(now // window_s)
        window_end = (window + 1) * window_s
        key = f"{name}#{subject}#{window}"
        try:
            answer = self._ddb.update_item(
                TableName=self._table,
                Key={"key": {"S": key}},
                UpdateExpression="ADD hits :one SET expires_at = if_not_exists(expires_at, :exp)",
                ConditionExpression="attribute_not_exists(hits) OR hits < :limit",
                ExpressionAttributeValues={
                    ":one": {"N": "1"},
                    ":limit": {"N": str(limit)},
                    # kept a little past the window so DynamoDB's lazy TTL never matters
                    ":exp": {"N": str(window_end + 60)},
                },
                ReturnValues="UPDATED_NEW",
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise RateLimited(
                    f"too many requests ({name}); try again later",
                    retry_after=max(1, int(window_end - now + 0.999)),
                    code=code,
                ) from exc
            raise DependencyUnavailable("rate limit store unavailable") from exc
        return int(answer["Attributes"]["hits"]["N"])

    def give_back(self, name: str, subject: str, *, window_s: int, now: float) -> None:
        """Undo one hit of the current window: it was counted for something that
        never happened (a text SNS could not send), so it must not use up a limit."""
        window = int(now // window_s)
        try:
            self._ddb.update_item(
                TableName=self._table,
                Key={"key": {"S": f"{name}#{subject}#{window}"}},
                UpdateExpression="ADD hits :minus_one",
                ConditionExpression="hits > :zero",
                ExpressionAttributeValues={":minus_one": {"N": "-1"}, ":zero": {"N": "0"}},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return  # nothing counted in this window (it has just turned): nothing to undo
            raise DependencyUnavailable("rate limit store unavailable") from exc

    def remaining_window(self, *, window_s: int, now: float) -> int:
        """Seconds until the current window ends."""
        return max(1, int((int(now // window_s) + 1) * window_s - now + 0.999))
