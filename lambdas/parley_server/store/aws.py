"""boto3 clients, made once per process and shared by every adapter; one reset
forgets them all.

Endpoints come from the standard AWS_ENDPOINT_URL* variables (the local stack
points them at moto's server); the @connections endpoint comes from the
function's configuration. Creation is locked because the local stack invokes
handlers from a thread pool and boto3's default session is not thread-safe.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Hashable
from typing import Any

import boto3
from botocore.config import Config as BotoConfig

__all__ = ["client", "reset_clients", "s3_client"]

_LOCK = threading.Lock()
_CLIENTS: dict[Hashable, Any] = {}
_SESSION: list[boto3.session.Session] = []

# Lambda's budget is seconds, not minutes: fail fast and let the caller retry.
# A Lambda environment runs one invocation at a time, so its pool holds one
# connection; the local stack runs its invocations on 32 threads of one process,
# and a pool smaller than that would open (and drop) a connection per call.
_BOTO_CONFIG = BotoConfig(
    connect_timeout=2,
    read_timeout=5,
    retries={"mode": "standard", "max_attempts": 3},
    max_pool_connections=64,
)


# SigV4 must be explicit: for presigning, botocore otherwise falls back to
# SigV2 in older regions, which S3 refuses for newer buckets and for SSE-KMS.
_S3_BASE = _BOTO_CONFIG.merge(BotoConfig(signature_version="s3v4"))
# On AWS: virtual-hosted and regional, us-east-1 included (botocore would
# otherwise presign with the global s3.amazonaws.com, which redirects).
_S3_ON_AWS = _S3_BASE.merge(
    BotoConfig(s3={"addressing_style": "virtual", "us_east_1_regional_endpoint": "regional"})
)
# At an endpoint override (moto's server on loopback): path style, since
# <bucket>.localhost would not resolve.
_S3_AT_ENDPOINT = _S3_BASE.merge(BotoConfig(s3={"addressing_style": "path"}))


def _cached(key: Hashable, make: Callable[[boto3.session.Session], Any]) -> Any:
    found = _CLIENTS.get(key)
    if found is not None:
        return found
    with _LOCK:
        found = _CLIENTS.get(key)
        if found is None:
            if not _SESSION:
                _SESSION.append(boto3.session.Session())
            found = make(_SESSION[0])
            _CLIENTS[key] = found
        return found


def client(service: str, endpoint_url: str | None = None) -> Any:
    """A cached boto3 client for `service` (optionally at `endpoint_url`)."""
    return _cached(
        (service, endpoint_url),
        lambda session: session.client(service, endpoint_url=endpoint_url, config=_BOTO_CONFIG),
    )


def s3_client() -> Any:
    """A cached SigV4 S3 client for presigned URLs, one per endpoint and region.

    Endpoint and region come from the standard AWS variables, as for every other
    client; the key follows them so a process that switches endpoints (tests,
    the local stack) gets a client for each.
    """
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    config = _S3_AT_ENDPOINT if endpoint else _S3_ON_AWS
    # the region is explicit: the presigned host names it
    return _cached(
        ("s3-presign", endpoint, region),
        lambda session: session.client("s3", region_name=region, config=config),
    )


def reset_clients(*, keep_session: bool = False) -> None:
    """Forget every client (tests switch moto on and off between them), and the
    session too unless `keep_session`: a new session takes botocore's handlers as
    they are now, a kept one saves loading the endpoint rules and service models
    again (most of what a client costs to make)."""
    with _LOCK:
        _CLIENTS.clear()
        if not keep_session:
            _SESSION.clear()
