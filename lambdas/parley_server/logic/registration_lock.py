"""The registration lock: a PIN that a number's account asks for before the number
can be registered on another phone (PUT/DELETE /v1/account/registration-lock,
POST /v1/auth/verify's `pin`).

Only the primary device sets or removes it. The service keeps an Argon2id
verifier of the PIN, never the PIN. Signing in again with the account's number
(re-registration) needs the PIN while the account is active: a device of it
refreshed a token within `reglock_inactivity_s` (7 days), as an app in use does
at least every 2 h 15 min (an access token lasts 15 minutes, a connection 2 h). An
account inactive for longer has lost its phone for good, as far as the service
can tell: the lock is bypassed and removed.

Wrong PINs are counted on the account, each try before it is checked (a
conditional write, so concurrent tries cannot share one count): the first
`pin_free_tries` (5) are free, then each further try waits 2^(n - 5) times
`pin_backoff_base_s` (a minute) after the last, up to `pin_backoff_max_s` (24 h).
A right PIN resets the count. A try that is refused changes nothing else: the
one-time code is not spent (logic/accounts.py checks the lock before it uses the
code), so the user can try again with the same code until it expires.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

import nacl.exceptions
import nacl.pwhash

from parley_server.logic.ports import Caller
from parley_server.models.errors import (
    BadRequest,
    Forbidden,
    PinBackoff,
    RegistrationLocked,
    Unauthorized,
)

if TYPE_CHECKING:
    from parley_server.config import Limits
    from parley_server.store.users import DeviceSummary, RegistrationLockState

__all__ = [
    "ARGON2_MEMLIMIT",
    "ARGON2_OPSLIMIT",
    "PIN_PATTERN",
    "LockStore",
    "check_reregistration",
    "hash_pin",
    "parse_pin",
    "pin_wait",
    "remove_lock",
    "set_lock",
    "verify_pin",
]

PIN_PATTERN = r"^[0-9]{6,64}$"
_PIN = re.compile(r"[0-9]{6,64}")
ARGON2_OPSLIMIT = 3
ARGON2_MEMLIMIT = 64 * 1024 * 1024
PRIMARY = "primary"


class LockStore(Protocol):
    """What the lock needs of the users table (UsersStore)."""

    def signed_in(self, user_id: str) -> Sequence[DeviceSummary]: ...

    def registration_lock(self, user_id: str) -> RegistrationLockState | None: ...

    def set_registration_lock(self, user_id: str, verifier: str, now: float) -> None: ...

    def remove_registration_lock(self, user_id: str, verifier: str | None = None) -> bool: ...

    def claim_pin_try(
        self, user_id: str, verifier: str, seen_failures: int, now: float
    ) -> bool: ...

    def reset_pin_tries(self, user_id: str) -> None: ...


def parse_pin(pin: object) -> str:
    """A PIN is 6 to 64 ASCII digits; anything else is a BadRequest naming `pin`."""
    if not isinstance(pin, str) or not _PIN.fullmatch(pin):
        raise BadRequest("the PIN is 6 to 64 digits", field="pin")
    return pin


def hash_pin(pin: str) -> str:
    """The Argon2id verifier the service keeps (an ASCII string with its parameters)."""
    verifier: bytes = nacl.pwhash.argon2id.str(
        pin.encode(), opslimit=ARGON2_OPSLIMIT, memlimit=ARGON2_MEMLIMIT
    )
    return verifier.decode("ascii")


def verify_pin(verifier: str, pin: str) -> bool:
    """Whether `pin` is the PIN `verifier` was made from."""
    try:
        return bool(nacl.pwhash.verify(verifier.encode("ascii"), pin.encode()))
    except (nacl.exceptions.InvalidkeyError, nacl.exceptions.CryptoError, ValueError):
        return False


def _require_primary(caller: Caller, users: LockStore) -> None:
    # one strong read of the account's devices: the caller's record, with its role
    mine = next(
        (d for d in users.signed_in(caller.user_id) if d.device_id == caller.device_id), None
    )
    if mine is None:
        raise Unauthorized("this device has been signed out")
    if mine.role != PRIMARY:
        raise Forbidden("only the primary device can change the registration lock")


def set_lock(caller: Caller, pin: str, *, users: LockStore, now: float) -> None:
    """Set (or change) the account's registration lock (primary device only)."""
    checked = parse_pin(pin)
    _require_primary(caller, users)
    users.set_registration_lock(caller.user_id, hash_pin(checked), now)


def remove_lock(caller: Caller, *, users: LockStore) -> None:
    """Remove the account's registration lock (primary only; no lock is no error)."""
    _require_primary(caller, users)
    users.remove_registration_lock(caller.user_id)


def pin_wait(failures: int, limits: Limits) -> int:
    """Seconds the next try must wait after the last counted one, `failures` counted."""
    over = failures - limits.pin_free_tries
    if over < 0:
        return 0
    # 2^over grows past any cap long before it could overflow anything: bound it first
    wait: int = limits.pin_backoff_base_s << min(over, 32)
    return min(wait, limits.pin_backoff_max_s)


def _wait_left(state: RegistrationLockState, limits: Limits, now: float) -> int:
    wait = pin_wait(state.failures, limits)
    if wait == 0 or state.last_try is None:
        return 0
    return max(0, math.ceil(state.last_try + wait - now))


def _locked(message: str, failures: int, wait_left: int, limits: Limits) -> RegistrationLocked:
    return RegistrationLocked(
        message,
        attempts_left=max(0, limits.pin_free_tries - failures),
        retry_after=wait_left if wait_left > 0 else None,
    )


def _last_active(state: RegistrationLockState) -> float:
    # setting the lock counts as activity too: an account whose devices never
    # refreshed since is not taken to be abandoned from the moment it set it
    known = [t for t in (state.last_active, state.set_at, state.created_at) if t is not None]
    return max(known, default=0.0)


def check_reregistration(
    user_id: str, pin: str | None, *, users: LockStore, limits: Limits, now: float
) -> None:
    """Whether the number's account may move to a new phone now; raises if not.

    No lock, or an account inactive for `reglock_inactivity_s` (whose lock is then
    removed), or the right PIN: passes. No PIN: RegistrationLocked. A PIN while a
    wait is due: PinBackoff. A wrong PIN: counted, RegistrationLocked.
    """
    if pin is not None:
        pin = parse_pin(pin)
    state = users.registration_lock(user_id)
    if state is None or state.verifier is None:
        return
    if now - _last_active(state) >= limits.reglock_inactivity_s:
        users.remove_registration_lock(user_id, state.verifier)
        return
    wait_left = _wait_left(state, limits, now)
    if pin is None:
        raise _locked(
            "this number's account has a registration lock: give its PIN",
            state.failures,
            wait_left,
            limits,
        )
    if wait_left > 0:
        raise PinBackoff("too many wrong PINs; wait before trying again", retry_after=wait_left)
    if not users.claim_pin_try(user_id, state.verifier, state.failures, now):
        # another try at the same count got there first: it is the one counted
        raise PinBackoff(
            "another PIN try is being checked; try again",
            retry_after=max(1, pin_wait(state.failures + 1, limits)),
        )
    if verify_pin(state.verifier, pin):
        users.reset_pin_tries(user_id)
        return
    failures = state.failures + 1
    raise _locked("wrong PIN", failures, pin_wait(failures, limits), limits)
