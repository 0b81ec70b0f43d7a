"""What the media bucket is, as plain data: the CDK stack builds the bucket from
it and the local stack configures its bucket from it, without importing the
CDK (which starts Node.js)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["MEDIA_CORS", "MEDIA_EXPIRY_DAYS", "OBJECT_PREFIX", "CorsSpec"]

MEDIA_EXPIRY_DAYS = 30
# Every media object lives under this prefix (m/<uploader>/<media id>); the
# function's permissions are scoped to it.
OBJECT_PREFIX = "m/"


@dataclass(frozen=True)
class CorsSpec:
    methods: tuple[str, ...]
    headers: tuple[str, ...]
    exposed: tuple[str, ...]
    max_age_s: int

    def s3_rule(self, origins: Sequence[str]) -> dict[str, Any]:
        """The rule as boto3's put_bucket_cors takes it (one entry of CORSRules)."""
        return {
            "AllowedMethods": list(self.methods),
            "AllowedOrigins": list(origins),
            "AllowedHeaders": list(self.headers),
            "ExposeHeaders": list(self.exposed),
            "MaxAgeSeconds": self.max_age_s,
        }


# Presigned POST uploads and presigned GET downloads from browser clients.
MEDIA_CORS = CorsSpec(
    methods=("GET", "HEAD", "POST"), headers=("*",), exposed=("ETag",), max_age_s=3000
)
