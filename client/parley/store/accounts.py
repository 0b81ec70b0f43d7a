"""The profile's account: who it is, its identity key, and its service tokens."""

from __future__ import annotations

from dataclasses import dataclass

from parley.crypto import IdentityKeyPair
from parley.errors import NotRegistered
from parley.models import Account
from parley.store.db import Repository

__all__ = ["Accounts", "Tokens"]


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
                "INSERT OR REPLACE INTO account (id, user_id, device_id, phone, identity)"
                " VALUES (1, ?, ?, ?, ?)",
                (
                    account.user_id,
                    account.device_id,
                    account.phone,
                    self._vault.seal(identity.to_bytes()),
                ),
            )

    def get(self) -> Account | None:
        row = self._db.execute("SELECT user_id, device_id, phone FROM account").fetchone()
        return Account(*row) if row else None

    def require(self) -> Account:
        account = self.get()
        if account is None:
            raise NotRegistered("this profile has no account yet: sign up first")
        return account

    def identity(self) -> IdentityKeyPair:
        row = self._db.execute("SELECT identity FROM account").fetchone()
        if row is None:
            raise NotRegistered("this profile has no identity key yet: sign up first")
        return IdentityKeyPair.from_bytes(self._vault.open(row[0]))

    def save_tokens(self, tokens: Tokens) -> None:
        with self.transaction():
            self._db.execute(
                "UPDATE account SET access_token = ?, refresh_token = ?, access_expires_at = ?",
                (
                    self._vault.seal(tokens.access_token.encode()),
                    self._vault.seal(tokens.refresh_token.encode()),
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
            self._vault.open(row[0]).decode(), self._vault.open(row[1]).decode(), float(row[2])
        )
