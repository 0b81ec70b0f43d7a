"""The calls of `parley.Client` about this account's devices: which of them get
copies of what this device sends, linking and unlinking companions, the
registration lock, one of them signed out, and the account deleted with its
profile here."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from parley.api import ApiClient
from parley.assembly import forget_profile
from parley.connection import Connection
from parley.devices.linking import approve_link
from parley.devices.lists import DeviceList, ListedDevice, sign_list
from parley.engine import Engine
from parley.errors import (
    ApiError,
    AuthenticationError,
    NotFound,
    ParleyClientError,
)
from parley.models import (
    AccountMoved,
    DeviceLinked,
    DevicesChanged,
    DeviceUnlinked,
    Event,
    LinkedDevice,
)
from parley.profiles import profile_dir
from parley.signup import KeyringChoice

__all__ = ["DeviceCalls", "check_pin"]

log = logging.getLogger("parley.devices")

_PIN = re.compile(r"[0-9]{6,64}")


def check_pin(pin: str) -> str:
    """A registration-lock PIN: 6 to 64 digits (ValueError otherwise)."""
    if not isinstance(pin, str) or not _PIN.fullmatch(pin):
        raise ValueError("a registration-lock PIN is 6 to 64 digits")
    return pin


class DeviceCalls:
    """This account's devices, for a facade over an open profile."""

    profile: str
    _home: Path | None
    _keyring: KeyringChoice
    _live: Connection
    _clock: Callable[[], float]
    _emit: Callable[[Event], None]

    @property
    def api(self) -> ApiClient:
        raise NotImplementedError

    @property
    def engine(self) -> Engine:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    def _send_history_soon(self, device_id: str) -> None:
        raise NotImplementedError  # Client: parley.devices.history, in the background

    async def devices(self) -> list[LinkedDevice]:
        """This account's signed-in devices, oldest first (`current` marks this one;
        `role` and `key_index` say primary or companion; `listed` whether the
        account's signed device list, as verified here, vouches for it)."""
        return await self.refresh_own_devices()

    async def refresh_own_devices(self) -> list[LinkedDevice]:
        """Learn this account's devices from the service and verify its signed device
        list: what this device sends is copied to the listed ones that are ready (and
        its group sender keys go to them), so every device of the account shows the
        whole conversation. Devices linked or unlinked since the last look come out as
        DeviceLinked / DeviceUnlinked events. The client does this on connecting and
        when the service says the account's devices changed."""
        engine = self.engine
        answer = await self.api.own_devices()
        wire = answer.device_list
        if wire is None and engine.account.role == "primary":
            # signed up but the first list did not go out: publish it now
            first = self._first_list()
            await self.api.publish_device_list(first.wire())
            wire = dict(first.wire())
        listed: DeviceList | None = None
        if wire is not None:
            listed, events = engine.sealer.check_list(engine.sealer.me(), wire)
            self._own_events(events)
        found = [
            dataclasses.replace(
                d, listed=None if listed is None else d.device_id in listed.device_ids
            )
            for d in answer.devices
        ]
        before = engine.own_devices
        ready = {d.device_id for d in found if d.ready and not d.current}
        engine.set_own_devices(ready if listed is None else ready & listed.device_ids)
        if engine.own_devices - before:
            # a device new to us: our group sender keys go to it with the next message
            engine.store.sender_keys.forget_distribution(engine.account.user_id)
        return found

    def _own_events(self, events: list[Event]) -> None:
        for event in events:
            self._emit(event)
            if isinstance(event, DevicesChanged):
                for added in event.added:
                    self._emit(DeviceLinked(added))
                for removed in event.removed:
                    self._emit(DeviceUnlinked(removed))

    def _first_list(self) -> DeviceList:
        account = self.engine.account
        identity = self.engine.sealer.identity
        me = ListedDevice(account.device_id, 0, identity.public_key)
        return sign_list(identity, account.user_id, 1, [me], int(self._clock() * 1000))

    async def own_list(self) -> DeviceList:
        """This account's signed device list as the service holds it now, verified."""
        await self.refresh_own_devices()
        listed = self.engine.sealer.verified_list(self.engine.account.user_id)
        if listed is None:
            raise ParleyClientError("this account has no signed device list yet")
        return listed

    async def link_device(self, code: str) -> str:
        """On the primary: link the new device showing `code` (its QR code or text) to
        this account. Signs its approval and the account's new device list; the new
        device completes the link on its side. Returns the new device's id.
        MalformedLinkCode for a code that is not one, LinkRefused if this is not the
        primary or the account has all the companions it may have, LinkExpired if the
        pairing is gone."""
        self._require_primary("link devices")
        current = await self.own_list()
        device_id = await approve_link(
            self.api,
            self.engine.store,
            self.engine.sealer.identity,
            current,
            code,
            now_ms=int(self._clock() * 1000),
        )
        log.info("approved the link of device %s", device_id)
        # its history follows once it finished linking (`Client.history_sent`)
        self._send_history_soon(device_id)
        return device_id

    async def unlink_device(self, device_id: str) -> None:
        """Unlink one of this account's devices. On the primary: publish the account's
        device list without it (the service signs it out at once) and remove it. A
        companion can unlink only itself (as `sign_out_device` does)."""
        account = self.engine.account
        if device_id == account.device_id:
            if account.role == "primary":
                raise ParleyClientError(
                    "the primary device cannot unlink itself: delete the account instead"
                )
            await self.sign_out_device(device_id)
            return
        self._require_primary("unlink other devices")
        current = await self.own_list()
        if device_id in current.device_ids:
            remaining = [d for d in current.devices if d.device_id != device_id]
            new = sign_list(
                self.engine.sealer.identity,
                account.user_id,
                current.version + 1,
                remaining,
                int(self._clock() * 1000),
            )
            await self.api.publish_device_list(new.wire())
            events = self.engine.sealer.check_list(self.engine.sealer.me(), dict(new.wire()))[1]
            self._own_events(events)
        with contextlib.suppress(NotFound):  # already signed out by the new list
            await self.api.remove_device(device_id)
        self.engine.own_devices -= {device_id}
        self.engine.store.contacts.forget_device(account.user_id, device_id)

    async def set_registration_lock(self, pin: str) -> None:
        """Protect the account's number with a PIN (primary only): signing up again on
        another phone then needs it (after a week of no device being active it no
        longer does). ValueError unless 6 to 64 digits."""
        self._require_primary("set a registration lock")
        await self.api.set_registration_lock(check_pin(pin))

    async def remove_registration_lock(self) -> None:
        """Remove the registration lock (primary only)."""
        self._require_primary("remove the registration lock")
        await self.api.remove_registration_lock()

    def _require_primary(self, what: str) -> None:
        if self.engine.account.role == "companion":
            raise ParleyClientError(f"only the primary device can {what}")

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

    async def devices_changed(self, reason: str, device_id: str) -> None:
        """The service said this account's devices changed: relist them (which shows
        what was linked or unlinked); "reregistered": this device was signed out."""
        if reason == "reregistered":
            self.engine.store.accounts.forget_tokens()
            self._emit(AccountMoved())
            await self._live.stop()
            return
        try:
            await self.refresh_own_devices()
        except AuthenticationError as exc:
            log.warning("could not relist this account's devices: %s", exc)
        except ApiError as exc:
            log.warning("could not relist this account's devices (%s): %s", device_id, exc)

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
