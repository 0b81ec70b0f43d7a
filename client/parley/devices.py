"""The calls of `parley.Client` about this account's devices: which of them get
copies of what this device sends, one of them signed out, and the account
deleted with its profile here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from parley.api import ApiClient
from parley.assembly import forget_profile
from parley.connection import Connection
from parley.engine import Engine
from parley.models import LinkedDevice
from parley.profiles import profile_dir
from parley.signup import KeyringChoice

__all__ = ["DeviceCalls"]


class DeviceCalls:
    """This account's devices, for a facade over an open profile."""

    profile: str
    _home: Path | None
    _keyring: KeyringChoice
    _live: Connection

    @property
    def api(self) -> ApiClient:
        raise NotImplementedError

    @property
    def engine(self) -> Engine:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    async def devices(self) -> list[LinkedDevice]:
        """This account's signed-in devices, oldest first (`current` marks this one)."""
        return await self.api.devices()

    async def refresh_own_devices(self) -> list[LinkedDevice]:
        """Learn this account's other devices from the service: what this device sends
        is copied to those that are ready (and its group sender keys go to them), so
        every device of the account shows the whole conversation. The client does this
        on connecting; call it after signing in on another device to start at once."""
        found = await self.api.devices()
        before = self.engine.own_devices
        self.engine.set_own_devices(d.device_id for d in found if d.ready and not d.current)
        if self.engine.own_devices - before:
            # a device new to us: our group sender keys go to it with the next message
            self.engine.store.sender_keys.forget_distribution(self.engine.account.user_id)
        return found

    async def sign_out_device(self, device_id: str) -> None:
        """Sign one of this account's devices out for good (a lost phone, an old
        laptop): its tokens stop working, its open connection is closed and people's
        apps stop encrypting for it. Signing out this device also forgets its tokens
        here; the profile keeps its history but can no longer send or receive."""
        await self.api.remove_device(device_id)
        self.engine.own_devices -= {device_id}
        self.engine.store.contacts.forget_device(self.engine.account.user_id, device_id)
        if device_id == self.engine.account.device_id:
            self.engine.store.accounts.forget_tokens()
            await self._live.stop()  # the service closed it; do not dial again

    async def request_account_deletion_code(self) -> dict[str, Any]:
        """Ask the service to text this account's number a code that deletes the
        account (and does nothing else); then `delete_account(code)`."""
        return await self.api.request_code(self.engine.account.phone, "delete_account")

    async def delete_account(self, code: str) -> None:
        """Delete this account for good, with the code `request_account_deletion_code`
        had texted, then wipe this profile from this machine.

        The service removes the account and everything it holds for it (devices,
        keys, contacts, media, waiting messages; its groups go on without it), and
        the number may sign up afresh as a new account. Here, the profile's
        directory goes (store, history, keys, downloaded media) with its key in the
        OS keyring, and the client is closed. A wrong code raises
        AuthenticationError (code `invalid_code`) and changes nothing; a deletion
        cut short raises ServiceUnavailable: call again with the same code to finish.
        """
        await self.api.delete_account(code)
        keyring_name = self.engine.store.keyring_name()
        directory = profile_dir(self.profile, self._home)
        await self.close()
        forget_profile(directory, keyring_name, self._keyring)
