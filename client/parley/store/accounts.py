"""The profile's account: who it is, its identity key, and its service tokens."""

from __future__ import annotations

from dataclasses import dataclass

from parley.crypto import IdentityKeyPair
from parley.errors import NotRegistered
from parley.models import Account
from parley.store.db import Cell, Repository

__all__ = ["Accounts", "Tokens"]


def _cell(column: str) -> Cell:
    return Cell("account", column, (1,))


@dataclass(frozen=True)
class Tokens:
    access_token: str
    refresh_token: str
    access_expires_at: float  # epoch seconds


class Accounts(Repository):
    """The one account row of the profile (and its sealed identity key and tokens)."""

    def save(self, account: Account, identity: IdentityKeyPair) -> None:
        with self.transaction():
            self._db.execute(
                "INSERT OR REPLACE INTO account"
                " (id, user_id, device_id, phone, identity, role, key_index)"
                " VALUES (1, ?, ?, ?, ?, ?, ?)",
                (
                    account.user_id,
                    account.device_id,
                    account.phone,
                    self._vault.seal(identity.to_bytes(), _cell("identity")),
                    account.role,
                    account.key_index,
                ),
            )

    def get(self) -> Account | None:
        row = self._db.execute(
            "SELECT user_id, device_id, phone, role, key_index FROM account"
        ).fetchone()
        return Account(*row) if row else None

    def set_role(self, role: str, key_index: int, account_identity: bytes) -> None:
        """This device's place in its account: "primary" (key index 0) or "companion",
        and the account identity (the primary's identity key) pinned with it."""
        if role not in {"primary", "companion"} or (key_index == 0) != (role == "primary"):
            raise ValueError(f"bad role {role!r} with key index {key_index}")
        if len(account_identity) != 32:
            raise ValueError("an account identity is a 32-byte Ed25519 public key")
        with self.transaction():
            self._db.execute(
                "UPDATE account SET role = ?, key_index = ?, account_identity = ?,"
                " max_key_index = MAX(COALESCE(max_key_index, 0), ?)",
                (role, key_index, account_identity, key_index),
            )

    def account_identity(self) -> bytes | None:
        """The pinned account identity (None in a profile made before linked devices)."""
        row = self._db.execute("SELECT account_identity FROM account").fetchone()
        return bytes(row[0]) if row and row[0] is not None else None

    def max_key_index(self) -> int:
        """The highest key index this primary has handed out (never reused)."""
        row = self._db.execute("SELECT max_key_index FROM account").fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    def note_key_index(self, key_index: int) -> None:
        with self.transaction():
            self._db.execute(
                "UPDATE account SET max_key_index = MAX(COALESCE(max_key_index, 0), ?)",
                (key_index,),
            )

    def require(self) -> Account:
        account = self.get()
        if account is None:
            raise NotRegistered("this profile has no account yet: sign up first")
        return account

    def identity(self) -> IdentityKeyPair:
        row = self._db.execute("SELECT identity FROM account").fetchone()
        if row is None:
            raise NotRegistered("this profile has no identity key yet: sign up first")
        return IdentityKeyPair.from_bytes(self._vault.open(row[0], _cell("identity")))

    def save_tokens(self, tokens: Tokens) -> None:
        with self.transaction():
            self._db.execute(
                "UPDATE account SET access_token = ?, refresh_token = ?, access_expires_at = ?",
                (
                    self._vault.seal(tokens.access_token.encode(), _cell("access_token")),
                    self._vault.seal(tokens.refresh_token.encode(), _cell("refresh_token")),
                    tokens.access_expires_at,
                ),
            )

    def forget_tokens(self) -> None:
        """This device was signed out: it can no longer speak to the service."""
        with self.transaction():
            self._db.execute(
                "UPDATE account SET access_token = NULL, refresh_token = NULL,"
                " access_expires_at = NULL"
            )

    def tokens(self) -> Tokens | None:
        row = self._db.execute(
            "SELECT access_token, refresh_token, access_expires_at FROM account"
        ).fetchone()
        if row is None or row[0] is None:
            return None
        return Tokens(
            self._vault.open(row[0], _cell("access_token")).decode(),
            self._vault.open(row[1], _cell("refresh_token")).decode(),
            float(row[2]),
        )
