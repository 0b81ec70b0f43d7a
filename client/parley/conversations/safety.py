"""Safety numbers: what two people compare to know no one sits between them."""

from __future__ import annotations

from parley.conversations.sealing import Sealer
from parley.crypto import safety_number
from parley.models import Contact

__all__ = ["safety_numbers"]


def safety_numbers(sealer: Sealer, contact: Contact) -> dict[str, str]:
    """Device id -> the 60-digit safety number with that device's identity key."""
    local_id = bytes.fromhex(sealer.account.user_id)
    return {
        device: safety_number(
            local_id, sealer.identity.public_key, bytes.fromhex(contact.user_id), key
        )
        for device, key in sealer.store.contacts.identities(contact.user_id).items()
    }
