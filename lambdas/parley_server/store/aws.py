"""boto3 clients, made once per process and shared by every adapter.

Endpoints come from the standard AWS_ENDPOINT_URL* variables (the local stack
points them at moto's server); the @connections endpoint comes from the
function's configuration. Creation is locked because the local stack invokes
handlers from a thread pool and boto3's default session is not thread-safe.
"""

from __future__ import annotations

import threading
from typing import Any

import boto3
from botocore.config import Config as BotoConfig

__all__ = ["client", "reset_clients"]

_LOCK = threading.Lock()
_CLIENTS: dict[tuple[str, str | None], Any] = {}
_SESSION: list[boto3.session.Session] = []

# Lambda's budget is seconds, not minutes: fail fast and let the caller retry.
_BOTO_CONFIG = BotoConfig(
    connect_timeout=2,
    read_timeout=5,
    retries={"mode": "standard", "max_attempts": 3},
)


def client(service: str, endpoint_url: str | None = None) -> Any:
    """A cached boto3 client for `service` (optionally at `endpoint_url`)."""
    key = (service, endpoint_url)
    found = _CLIENTS.get(key)
    if found is not None:
        return found
    with _LOCK:
        found = _CLIENTS.get(key)
        if found is None:
            if not _SESSION:
                _SESSION.append(boto3.session.Session())
            found = _SESSION[0].client(service, endpoint_url=endpoint_url, config=_BOTO_CONFIG)
            _CLIENTS[key] = found
        return found


def reset_clients(*, keep_session: bool = False) -> None:
    """Forget every client (tests switch moto on and off between them), and the
    session too unless `keep_session`: a new session takes botocore's handlers as
    they are now, a kept one saves loading the endpoint rules and service models
    again (most of what a client costs to make)."""
    with _LOCK:
        _CLIENTS.clear()
        if not keep_session:
            _SESSION.clear()
