"""What S3 checks when a browser-style form is POSTed to a bucket, written down
so the suites can check the forms the service hands out.

moto's S3 server does not evaluate POST policies at all (a form with another
key, another size, another type or a wrong signature is stored just the same),
so the defence is tested on the policy document itself, as S3 would judge it
(AWS S3 documentation, "Creating a POST policy" and "Signature calculations
for browser-based uploads (AWS Signature Version 4)"):

- the signature is HMAC-SHA256 of the base64 policy under the SigV4 key derived
  from the secret key, date, region and "s3": change the policy, lose the form;
- the policy has not expired;
- every condition holds for the form: {"field": value} and ["eq", "$field",
  value] exactly, ["starts-with", "$field", prefix], ["content-length-range",
  min, max] on the file's size; `bucket` is the bucket posted to;
- every form field is named by some condition (except the signature itself,
  `policy`, `file` and x-ignore-* fields).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Any

__all__ = ["PolicyViolation", "check_form", "sigv4_signature"]

_UNCHECKED = {"x-amz-signature", "policy", "file"}


class PolicyViolation(Exception):
    """S3 would refuse this POST (403 AccessDenied / 400 EntityTooLarge...)."""


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def sigv4_signature(secret_key: str, credential: str, policy_b64: str) -> str:
    """The x-amz-signature S3 expects for `policy_b64` under `credential`."""
    _, date, region, service, terminal = credential.split("/")
    key = _hmac(("AWS4" + secret_key).encode(), date)
    for part in (region, service, terminal):
        key = _hmac(key, part)
    return hmac.new(key, policy_b64.encode(), hashlib.sha256).hexdigest()


def check_form(
    fields: dict[str, str],
    *,
    bucket: str,
    size: int,
    secret_key: str,
    now: datetime | None = None,
) -> None:
    """Raise PolicyViolation unless S3 would accept `fields` plus a `size`-byte file."""
    form = {k.lower(): v for k, v in fields.items()}
    policy_b64 = form.get("policy", "")
    expected = sigv4_signature(secret_key, form.get("x-amz-credential", "///s3/x"), policy_b64)
    if not hmac.compare_digest(expected, form.get("x-amz-signature", "")):
        raise PolicyViolation("signature does not match the policy")
    policy: dict[str, Any] = json.loads(base64.b64decode(policy_b64))
    expiration = datetime.fromisoformat(policy["expiration"].replace("Z", "+00:00"))
    if (now or datetime.now(UTC)) >= expiration:
        raise PolicyViolation("policy expired")
    values = {**form, "bucket": bucket}
    covered: set[str] = set()
    for condition in policy["conditions"]:
        covered |= _check(condition, values, size)
    loose = {
        name
        for name in form
        if name not in _UNCHECKED and not name.startswith("x-ignore-") and name not in covered
    }
    if loose:
        raise PolicyViolation(f"form fields no condition names: {sorted(loose)}")


def _check(condition: Any, values: dict[str, str], size: int) -> set[str]:
    if isinstance(condition, dict):
        ((name, value),) = condition.items()
        return _equal(name.lower(), value, values)
    operator = condition[0]
    if operator == "content-length-range":
        low, high = int(condition[1]), int(condition[2])
        if not low <= size <= high:
            raise PolicyViolation(f"file of {size} bytes outside [{low}, {high}]")
        return set()
    name = condition[1].lower().removeprefix("$")
    if operator == "eq":
        return _equal(name, condition[2], values)
    if operator == "starts-with":
        if not values.get(name, "").startswith(condition[2]):
            raise PolicyViolation(f"{name} does not start with {condition[2]!r}")
        return {name}
    raise PolicyViolation(f"unknown condition {operator!r}")


def _equal(name: str, value: str, values: dict[str, str]) -> set[str]:
    if values.get(name) != value:
        raise PolicyViolation(f"{name} must be {value!r}")
    return {name}
