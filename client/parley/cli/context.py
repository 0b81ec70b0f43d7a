"""What every `parley` command works with: its options, the profile, the service's
endpoints and an open `Client` for the profile (asking for a passphrase if needed)."""

from __future__ import annotations

import argparse
import contextlib
import getpass
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TextIO

from parley.client import Client
from parley.endpoints import Endpoints
from parley.errors import ConfigurationError, ParleyClientError, PassphraseRequired

__all__ = ["Context"]


class Context:
    """What every command needs: parsed options, endpoints and profile settings."""

    def __init__(self, args: argparse.Namespace, out: TextIO) -> None:
        self.args = args
        self.out = out
        self.color = out.isatty() and not os.environ.get("NO_COLOR")
        self.profile: str = getattr(args, "profile", None) or os.environ.get(
            "PARLEY_PROFILE", "default"
        )
        self.insecure: bool = getattr(args, "insecure_dev_store", False)
        self.passphrase: str | None = os.environ.get("PARLEY_PASSPHRASE") or None

    def endpoints(self) -> Endpoints:
        aws = getattr(self.args, "aws", None)
        if aws is not None:
            return Endpoints.from_cdk_outputs(Path(aws))
        local = getattr(self.args, "local_file", None)
        return Endpoints.local(Path(local) if local else None)

    def endpoints_if_known(self) -> Endpoints | None:
        """For commands that work offline: None when no endpoints are configured."""
        try:
            return self.endpoints()
        except ConfigurationError:
            return None

    def print(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    def ask_passphrase(self, *, confirm: bool) -> str:
        if not sys.stdin.isatty():
            raise PassphraseRequired(
                "this profile needs a passphrase: set PARLEY_PASSPHRASE"
                " (or create it with --insecure-dev-store, for development only)"
            )
        first = getpass.getpass(f"Passphrase for profile {self.profile!r}: ")
        if confirm and getpass.getpass("Repeat it: ") != first:
            raise PassphraseRequired("the passphrases differ")
        return first

    def ask_pin(self, prompt: str, *, confirm: bool = False) -> str:
        """A registration-lock PIN: PARLEY_PIN, else asked on the terminal without echo."""
        given = os.environ.get("PARLEY_PIN")
        if given:
            return given.strip()
        if not sys.stdin.isatty():
            raise ParleyClientError("a PIN is needed: set PARLEY_PIN or run this on a terminal")
        first = getpass.getpass(prompt).strip()
        if confirm and getpass.getpass("Repeat it: ").strip() != first:
            raise ParleyClientError("the PINs differ: nothing was changed")
        return first

    async def client(self, *, connect: bool, online: bool = False) -> Client:
        """An open client, asking for the passphrase if the profile needs one.
        `online`: the HTTP API is needed even without the WebSocket."""
        endpoints = self.endpoints() if connect or online else self.endpoints_if_known()
        for attempt in range(2):
            client = Client(
                self.profile,
                endpoints=endpoints,
                passphrase=self.passphrase,
                allow_plaintext=self.insecure,
                connect=connect,
            )
            try:
                await client.open()
                return client
            except PassphraseRequired:
                await client.close()
                if attempt or self.passphrase:
                    raise
                self.passphrase = self.ask_passphrase(confirm=False)
        raise AssertionError("unreachable")

    @contextlib.asynccontextmanager
    async def opened(self, *, connect: bool, online: bool = False) -> AsyncIterator[Client]:
        """`client()` for the length of a `with` block, closed at its end."""
        client = await self.client(connect=connect, online=online)
        try:
            yield client
        finally:
            await client.close()
