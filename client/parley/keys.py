"""Prekey management: what a device publishes so others can start sessions with it.

- At signup: an identity key, a signed prekey and 100 one-time prekeys.
- One-time prekeys are consumed by others' first messages; when the server's
  count falls below `REPLENISH_BELOW`, new ones top it back up to `TARGET`.
- The signed prekey is rotated every `ROTATE_AFTER_S`; the previous ones are
  kept for `GRACE_S` (longer than the server keeps a message) so a first
  message written against an old bundle can still be opened.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

from parley.crypto import IdentityKeyPair, OneTimePreKey, SignedPreKey
from parley.store import Store

__all__ = [
    "GRACE_S",
    "REPLENISH_BELOW",
    "ROTATE_AFTER_S",
    "TARGET",
    "KeyUploader",
    "Maintenance",
    "maintain",
    "publish_initial_keys",
]

log = logging.getLogger("parley.keys")

TARGET = 100
REPLENISH_BELOW = 25
ROTATE_AFTER_S = 7 * 24 * 3600
GRACE_S = 35 * 24 * 3600


class KeyUploader(Protocol):
    """The part of the HTTP API this module needs."""

    async def upload_keys(
        self,
        identity_key: bytes,
        signed_prekey: SignedPreKey,
        one_time_prekeys: list[OneTimePreKey],
    ) -> None: ...

    async def key_count(self) -> int: ...


@dataclass(frozen=True)
class Maintenance:
    uploaded: int  # new one-time prekeys published
    rotated: bool  # a new signed prekey was published
    dropped: int  # retired signed prekeys past their grace period, deleted


def _new_signed_prekey(store: Store, identity: IdentityKeyPair, now: float) -> SignedPreKey:
    key = SignedPreKey.generate(identity, store.prekeys.allocate_signed_id(), now)
    store.prekeys.add_signed(key)
    return key


def _new_one_time_prekeys(store: Store, count: int, now: float) -> list[OneTimePreKey]:
    if count <= 0:
        return []
    keys = OneTimePreKey.generate_batch(store.prekeys.allocate_ids(count), count)
    store.prekeys.add_one_time(keys, now)
    return keys


async def publish_initial_keys(api: KeyUploader, store: Store, now: float) -> None:
    """Right after signup: generate and publish a signed prekey and TARGET one-time prekeys."""
    identity = store.accounts.identity()
    signed = store.prekeys.current_signed() or _new_signed_prekey(store, identity, now)
    keys = _new_one_time_prekeys(store, TARGET, now)
    await api.upload_keys(identity.public_key, signed, keys)


async def maintain(api: KeyUploader, store: Store, now: float) -> Maintenance:
    """Replenish one-time prekeys, rotate the signed prekey, forget expired ones."""
    identity = store.accounts.identity()
    signed = store.prekeys.current_signed()
    rotated = False
    if signed is None or now - signed.created_at >= ROTATE_AFTER_S:
        signed = _new_signed_prekey(store, identity, now)
        rotated = True
    count = await api.key_count()
    fresh = _new_one_time_prekeys(store, TARGET - count, now) if count < REPLENISH_BELOW else []
    if fresh or rotated:
        await api.upload_keys(identity.public_key, signed, fresh)
        log.info(
            "published %d one-time prekeys%s", len(fresh), " and a new signed prekey" * rotated
        )
    dropped = store.prekeys.drop_retired_before(now - GRACE_S)
    return Maintenance(len(fresh), rotated, dropped)
