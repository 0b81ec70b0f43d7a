"""The token signing secret, from Secrets Manager through Powertools' parameters
utility (cached for `max_age_s`, so a warm function reads it a few times an hour).

Fails closed: when the secret cannot be read and no fresh cached copy exists,
DependencyUnavailable is raised and nothing can be signed or verified.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.parameters import SecretsProvider
from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError

from parley_server.models.errors import ConfigError, DependencyUnavailable

__all__ = ["MIN_SECRET_BYTES", "SigningSecret"]

# HS256 wants a key at least as long as its output (RFC 7518 §3.2).
MIN_SECRET_BYTES = 32


class SigningSecret:
    """Reads the signing secret string, caching it in the process."""

    def __init__(self, secretsmanager: Any, arn: str, *, max_age_s: int = 300) -> None:
        self._provider = SecretsProvider(boto3_client=secretsmanager)
        self._arn = arn
        self._max_age_s = max_age_s

    def value(self) -> bytes:
        """The secret's bytes; DependencyUnavailable when Secrets Manager cannot be read."""
        try:
            raw = self._provider.get(self._arn, max_age=self._max_age_s)
        except GetParameterError as exc:
            raise DependencyUnavailable("signing key unavailable") from exc
        secret = raw.encode() if isinstance(raw, str) else raw
        if not isinstance(secret, bytes) or len(secret) < MIN_SECRET_BYTES:
            raise ConfigError(f"the signing secret must be at least {MIN_SECRET_BYTES} bytes")
        return secret
