"""Posting events to WebSocket connections through API Gateway's @connections API.

The client is boto3's `apigatewaymanagementapi` with endpoint_url set to the
stage's @connections endpoint (the local stack serves the same API). A 410
(GoneException) means the connection is gone for good; anything else that fails
is reported, not raised: the envelope stays in the mailbox for the next sync.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from parley_server.models.frames import PostOutcome

__all__ = ["ConnectionsApi"]

log = logging.getLogger(__name__)


class ConnectionsApi:
    """Sends one JSON event to one connection, or closes it."""

    def __init__(self, management: Any) -> None:
        self._api = management

    def post(self, connection_id: str, event: Mapping[str, Any]) -> PostOutcome:
        data = json.dumps(event, separators=(",", ":")).encode()
        try:
            self._api.post_to_connection(ConnectionId=connection_id, Data=data)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if error.get("Code") == "GoneException" or status == 410:
                return PostOutcome.GONE
            log.warning("post to connection failed: %s", error.get("Code") or status)
            return PostOutcome.FAILED
        except BotoCoreError as exc:
            log.warning("post to connection failed: %s", type(exc).__name__)
            return PostOutcome.FAILED
        return PostOutcome.DELIVERED

    def close(self, connection_id: str) -> bool:
        """Close a connection (API Gateway then runs $disconnect). False if it could not
        be closed now; a connection already gone counts as closed."""
        try:
            self._api.delete_connection(ConnectionId=connection_id)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if error.get("Code") == "GoneException" or status == 410:
                return True
            log.warning("closing a connection failed: %s", error.get("Code") or status)
            return False
        except BotoCoreError as exc:
            log.warning("closing a connection failed: %s", type(exc).__name__)
            return False
        return True
