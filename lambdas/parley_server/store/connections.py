"""Live WebSocket connections in DynamoDB: pk user_id, sk connection_id.

One Query finds every live connection of a user (all devices). A record carries
a TTL a little past API Gateway's 2-hour connection limit, so a missed
$disconnect cannot leave it forever; reads filter expired records themselves.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from parley_server.models.errors import DependencyUnavailable
from parley_server.models.frames import Connection
from parley_server.store.dynamo import query_pages

__all__ = ["ConnectionsStore"]


class ConnectionsStore:
    """Who is connected, per user and device."""

    def __init__(self, dynamodb: Any, table: str) -> None:
        self._ddb = dynamodb
        self._table = table

    def add(
        self,
        user_id: str,
        connection_id: str,
        device_id: str,
        *,
        now: float,
        ttl_s: int,
        batch: bool = False,
    ) -> None:
        item: dict[str, dict[str, Any]] = {
            "user_id": {"S": user_id},
            "connection_id": {"S": connection_id},
            "device_id": {"S": device_id},
            "connected_at": {"N": str(int(now))},
            "expires_at": {"N": str(int(now) + ttl_s)},
        }
        if batch:  # it reads `batch` events
            item["batched"] = {"BOOL": True}
        try:
            self._ddb.put_item(
                TableName=self._table,
                Item=item,
                ReturnConsumedCapacity="TOTAL",
            )
        except ClientError as exc:
            raise DependencyUnavailable("connection store unavailable") from exc

    def remove(self, user_id: str, connection_id: str) -> None:
        try:
            self._ddb.delete_item(
                TableName=self._table,
                Key={"user_id": {"S": user_id}, "connection_id": {"S": connection_id}},
                ReturnConsumedCapacity="TOTAL",
            )
        except ClientError as exc:
            raise DependencyUnavailable("connection store unavailable") from exc

    def of_user(self, user_id: str, *, now: float) -> list[Connection]:
        """Every live connection of the user (any device): one Query."""
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "user_id = :user",
            "FilterExpression": "expires_at > :now",
            "ProjectionExpression": "connection_id, device_id, connected_at, batched",
            "ExpressionAttributeValues": {
                ":user": {"S": user_id},
                ":now": {"N": str(int(now))},
            },
            "ReturnConsumedCapacity": "TOTAL",
        }
        # a user has a handful of connections: one page in practice
        return [
            Connection(
                item["connection_id"]["S"],
                item["device_id"]["S"],
                float(item["connected_at"]["N"]),
                batch=item.get("batched", {}).get("BOOL", False),
            )
            for page in query_pages(self._ddb, kwargs, "connection store unavailable")
            for item in page.get("Items", [])
        ]
