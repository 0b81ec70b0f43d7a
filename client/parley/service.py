"""Which service a profile belongs to, and what to say when its account is gone.

A profile is one account on one service. At sign-up it remembers that service in
<profile>/service.json: the HTTP URL and, for the local stack, the id of the
stack's state (`stack_id` in the endpoints file; a stack started with --fresh or
after `python -m local reset` has a new one). Opening the profile against other
endpoints is refused with a message naming both, instead of failing later with a
bare 401:

- the same local state at another URL (the local stack picked another port) is
  the same service: the URL remembered is updated;
- another local state: the account does not exist there (AccountGone "forgotten");
- any other pair that differs (a local profile against AWS endpoints, two
  deployments): ServiceMismatch.

A profile made before this file existed adopts the service it is first opened with.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from parley.endpoints import Endpoints
from parley.errors import AccountGone, AuthenticationError, ServiceMismatch

__all__ = ["SERVICE_FILE", "account_gone", "check_service", "remember_service"]

SERVICE_FILE = "service.json"


def _identity(endpoints: Endpoints) -> dict[str, Any]:
    identity: dict[str, Any] = {"http_url": endpoints.http_url}
    if endpoints.stack_id:
        identity["stack_id"] = endpoints.stack_id
    return identity


def remember_service(directory: Path, endpoints: Endpoints) -> None:
    """Record in the profile at `directory` the service its account lives on."""
    path = directory / SERVICE_FILE
    partial = path.with_name(SERVICE_FILE + ".partial")
    partial.write_text(json.dumps(_identity(endpoints), indent=2) + "\n")
    os.replace(partial, path)


def _remembered(directory: Path) -> dict[str, Any] | None:
    try:
        raw = json.loads((directory / SERVICE_FILE).read_text())
    except (OSError, ValueError):
        return None
    return raw if isinstance(raw, dict) and isinstance(raw.get("http_url"), str) else None


def _describe(identity: dict[str, Any]) -> str:
    kind = "a local stack" if identity.get("stack_id") else "a deployed service"
    return f"{identity['http_url']} ({kind})"


def check_service(directory: Path, endpoints: Endpoints, profile: str) -> None:
    """Refuse to use the profile at `directory` against a service it does not belong to."""
    saved = _remembered(directory)
    current = _identity(endpoints)
    if saved is None:
        remember_service(directory, endpoints)  # a profile from before: adopt this one
        return
    saved_stack, current_stack = saved.get("stack_id"), current.get("stack_id")
    if saved_stack and current_stack:
        if saved_stack == current_stack:
            if saved["http_url"] != current["http_url"]:
                remember_service(directory, endpoints)  # same state, another port
            return
        raise AccountGone(
            "forgotten",
            f"profile {profile!r} was signed up on a local stack whose data has since been "
            "discarded (started with --fresh, reset with `python -m local reset`, or now "
            "running on another --state-dir), so its account does not exist there. "
            + _sign_up_again(directory, profile),
        )
    if saved_stack or current_stack or saved["http_url"] != current["http_url"]:
        raise ServiceMismatch(
            f"profile {profile!r} belongs to the service at {_describe(saved)}, but the "
            f"endpoints now point at {_describe(current)}; it is not used there. Point the "
            f"client back at its service, or use another profile for this one "
            f"(parley --profile NEW signup <phone>)."
        )


def _sign_up_again(directory: Path, profile: str) -> str:
    return (
        f"To sign up again, move this profile aside (its messages stay readable there): "
        f"mv {directory} {directory}.old, then: parley --profile {profile} signup <phone>"
    )


def account_gone(
    error: AuthenticationError, *, profile: str, directory: Path
) -> AuthenticationError:
    """What a refused refresh token means for this profile, in plain words (an
    AccountGone), or `error` itself when it means something else."""
    if error.code == "device_signed_out" and error.details.get("reason") == "reregistered":
        return AccountGone(
            "moved",
            f"this device (profile {profile!r}) has been signed out: the account's phone "
            "number was registered on another phone, a new phone of its owner's or "
            "someone who received a code sent to the number. If that was not you, sign "
            "up with the number again at once (the other phone is then signed out) and "
            "set a registration lock (parley pin set), which a code alone cannot get "
            "past. " + _sign_up_again(directory, profile),
            status=error.status,
            code=error.code,
            details=error.details,
        )
    if error.code == "device_signed_out":
        return AccountGone(
            "signed_out",
            f"this device (profile {profile!r}) has been signed out: its owner signed it "
            "out (from this device or another one). The account itself still exists: to "
            "use it here, link this device again with the account's phone number. "
            + _sign_up_again(directory, profile),
            status=error.status,
            code=error.code,
            details=error.details,
        )
    if error.code == "invalid_token":
        return AccountGone(
            "unknown",
            f"the service no longer knows the account or device of profile {profile!r}: "
            "the account was deleted, this device's sign-in expired unused or was revoked "
            "(its refresh token was used twice), or the service's data was reset. "
            + _sign_up_again(directory, profile),
            status=error.status,
            code=error.code,
            details=error.details,
        )
    return error
