"""This user's own UPI payment address (VPA and payee name), which fills their
payment requests. Sealed like every secret of the profile, on this device only:
it is never sent anywhere but inside a request."""

from __future__ import annotations

import json

from parley.content import ContentError
from parley.content.payment import PaymentAddress
from parley.store.db import Cell, Repository

__all__ = ["PaymentAddresses"]

_CELL = Cell("payment_address", "address", (1,))


class PaymentAddresses(Repository):
    """The one payment address of the profile (none until the user sets it)."""

    def get(self) -> PaymentAddress | None:
        row = self._db.execute("SELECT address FROM payment_address WHERE id = 1").fetchone()
        if row is None:
            return None
        data = json.loads(self._vault.open(row[0], _CELL))
        try:
            return PaymentAddress(data["vpa"], data.get("name"))
        except (ContentError, KeyError, TypeError):
            return None  # written by a version with other rules: set it again

    def set(self, address: PaymentAddress | None) -> None:
        """Keep `address` (None: forget it)."""
        with self.transaction():
            if address is None:
                self._db.execute("DELETE FROM payment_address WHERE id = 1")
                return
            sealed = self._vault.seal(
                json.dumps({"vpa": address.vpa, "name": address.name}).encode(), _CELL
            )
            self._db.execute(
                "INSERT OR REPLACE INTO payment_address (id, address) VALUES (1, ?)", (sealed,)
            )
