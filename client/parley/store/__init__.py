"""The profile's local store: one SQLite file per profile directory.

`Store` opens it and composes one small repository per aggregate:

- `accounts`: the account, its identity key and its tokens;
- `prekeys`: signed and one-time prekeys, and the base keys of the session starts
  accepted (also the crypto's `PreKeySource`);
- `sessions`: one Double Ratchet session per remote device, and the ones replaced
  (their skipped message keys capped in total);
- `contacts`: contacts, their devices' identity keys, and whether they are verified;
- `device_lists`: each user's signed device list as last verified (its pinned
  account identity and highest version), this account's own too;
- `messages`: messages with their tick state (and, for anything but text, the
  content that shows it and where its file was saved);
- `outbox`: entries not yet accepted by the service;
- `groups`: each group as last seen on the service;
- `sender_keys`: this device's sender key per group (and which members were given
  it), the sender keys other member devices gave us, and group messages held until
  their sender's key arrives;
- `receipts`: the per-member ticks of the group messages we sent;
- `payment_address`: this user's own UPI ID (VPA) and payee name, for requests;
- `seen`: the (sender, client id) pairs already received;
- `search`: the messages whose text matches a query (no index: see its module);
- `stars`: the messages starred on this device.

Secrets (private keys, sessions, sender keys, tokens, message texts and contents,
attachment keys, where files were saved, group ticks) are sealed by the profile's
`Vault`, each bound to its table, column and row; see `parley.store.vault` for
where its key lives and `parley.store.db` for the binding.

Everything that must change together does so in one transaction
(`with store.transaction():`), e.g. a decrypted message, the session it advanced,
the one-time prekey it consumed (or the base key of the session it started) and
its (sender, client id) pair.
"""

from __future__ import annotations

import time
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Literal

from parley.store.accounts import Accounts, Tokens
from parley.store.calls import CallLog
from parley.store.contacts import Contacts
from parley.store.db import DB_FILE, SCHEMA_VERSION, Database
from parley.store.device_lists import DeviceLists, StoredList
from parley.store.groups import Groups
from parley.store.messages import Messages
from parley.store.outbox import Outbox, OutboxItem
from parley.store.payments import PaymentAddresses
from parley.store.prekeys import MAX_PREKEY_ID, PreKeys
from parley.store.receipts import Receipts
from parley.store.search import Search
from parley.store.seen import Seen
from parley.store.sender_keys import HeldMessage, OwnSenderKey, SenderKeys
from parley.store.sessions import Sessions
from parley.store.stars import Stars
from parley.store.vault import KDF_MEMLIMIT, KDF_OPSLIMIT, KeyringLike, Protection

__all__ = [
    "DB_FILE",
    "MAX_PREKEY_ID",
    "SCHEMA_VERSION",
    "HeldMessage",
    "OutboxItem",
    "OwnSenderKey",
    "Store",
    "StoredList",
    "Tokens",
]


class Store:
    """The store of one profile. Open with `Store.open(directory, ...)`."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self.path: Path = db.path
        self.accounts = Accounts(db)
        self.prekeys = PreKeys(db)
        self.sessions = Sessions(db)
        self.contacts = Contacts(db)
        self.device_lists = DeviceLists(db)
        self.messages = Messages(db)
        self.outbox = Outbox(db)
        self.groups = Groups(db)
        self.sender_keys = SenderKeys(db)
        self.receipts = Receipts(db)
        self.seen = Seen(db)
        self.payment_address = PaymentAddresses(db)
        self.search = Search(db)
        self.stars = Stars(db)
        self.calls = CallLog(db)

    @classmethod
    def open(
        cls,
        directory: Path,
        *,
        passphrase: str | None = None,
        keyring: KeyringLike | Literal["auto"] | None = "auto",
        allow_plaintext: bool = False,
        kdf_limits: tuple[int, int] = (KDF_OPSLIMIT, KDF_MEMLIMIT),
        create: bool = True,
    ) -> Store:
        """Open (or, with `create`, create) the profile in `directory`.

        A new profile is protected by the OS keyring when one is usable, else by
        `passphrase`, else -- only with `allow_plaintext` -- not at all (dev mode).
        A given passphrase is always preferred over the keyring for a new profile.
        """
        db = Database.open(
            directory,
            passphrase=passphrase,
            keyring=keyring,
            allow_plaintext=allow_plaintext,
            kdf_limits=kdf_limits,
            create=create,
        )
        store = cls(db)
        now = time.time()
        store.seen.prune(now)
        store.prekeys.prune_session_starts(now)
        store.sessions.prune_skipped(now)
        return store

    @property
    def protection(self) -> Protection:
        return self._db.protection

    def keyring_name(self) -> str | None:
        """The name this profile's key has in the OS keyring (None when it has none)."""
        return self._db.keyring_name()

    def close(self) -> None:
        self._db.close()

    def transaction(self) -> AbstractContextManager[None]:
        """All or nothing; nests (only the outermost commits)."""
        return self._db.transaction()
