"""A local stack of the suites' own, with the options the e2e stack never has:
a short WebSocket idle timeout, fault injection (local/faults.py) and limits.

`python -m local --port 0` runs as a subprocess (moto in-process and moto's
server must never share the pytest process). Accounts are made through the
HTTP API, each from its own loopback address (127.0.0.0/8 is all loopback on
Linux): the service caps codes per source address, as it should, so a suite
that needs many people must come from many places.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import secrets
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import aiohttp
from nacl.public import PrivateKey
from nacl.signing import SigningKey

from tests.device_lists import first_list
from tests.e2e.conftest import LocalStack, start_local_stack

__all__ = [
    "SUITES_IDLE_TIMEOUT_S",
    "Account",
    "Stack",
    "http_from",
    "running_stack",
    "sign_up",
    "source_address",
]

# the WebSocket idle timeout of the suites' shared stack (tests/reliability/conftest.py)
SUITES_IDLE_TIMEOUT_S = 2.0

_SOURCES = itertools.count(2)


@dataclass
class Stack(LocalStack):
    """A running local stack and where its fault counts are kept."""

    faults_file: Path | None = None

    def faults(self) -> dict[str, int]:
        """Faults injected so far, by kind and by kind:function."""
        if self.faults_file is None or not self.faults_file.exists():
            return {}
        counts: dict[str, int] = json.loads(self.faults_file.read_text())
        return counts

    def table(self, table_id: str) -> str:
        return f"parley-local-{table_id.lower()}"


@contextmanager
def running_stack(
    directory: Path,
    *,
    idle_timeout_s: float | None = None,
    faults: Mapping[str, Any] | None = None,
    limits: Mapping[str, int] | None = None,
) -> Iterator[Stack]:
    """The local stack (tests/e2e's runner) with these options."""
    extra: dict[str, str] = {}
    faults_file: Path | None = None
    if faults is not None:
        faults_file = directory / "faults.json"
        extra["PARLEY_LOCAL_FAULTS"] = json.dumps({**faults, "report": str(faults_file)})
    if limits is not None:
        extra["PARLEY_LIMITS"] = json.dumps(dict(limits))
    # these stacks are driven hard and thrown away: saving their state (tested in
    # tests/e2e/test_local_state.py) would only take time from what they measure
    args = ["--ephemeral"]
    if idle_timeout_s is not None:
        args += ["--idle-timeout", str(idle_timeout_s)]
    with start_local_stack(directory, *args, env=extra) as local:
        shared = {f.name: getattr(local, f.name) for f in fields(LocalStack)}
        yield Stack(**shared, faults_file=faults_file)


def source_address() -> str:
    """A loopback address no other account of this session came from."""
    n = next(_SOURCES)
    return f"127.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"


def http_from(source: str | None = None) -> aiohttp.ClientSession:
    """An HTTP session whose connections come from `source` (a loopback address)."""
    connector = aiohttp.TCPConnector(local_addr=(source, 0) if source else None)
    return aiohttp.ClientSession(connector=connector)


async def handshake_status(stack: LocalStack, token: str) -> int:
    """101 when a WebSocket handshake with `token` completes, else the HTTP status it
    was refused with."""
    async with http_from() as http:
        try:
            async with http.ws_connect(f"{stack.ws_url}?token={token}", autoping=False):
                return 101
        except aiohttp.WSServerHandshakeError as refused:
            return refused.status


@dataclass
class Account:
    """A signed-in device with keys uploaded, as an app holds it."""

    phone: str
    user_id: str
    device_id: str
    access_token: str
    refresh_token: str
    identity: SigningKey = field(repr=False, default_factory=SigningKey.generate)

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


_PHONES = itertools.count(secrets.randbelow(10**5))


def new_phone() -> str:
    """A valid UK mobile number no other account of this session has."""
    return f"+4479112{next(_PHONES) % 10**5:05d}"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


async def text_code(stack: LocalStack, http: aiohttp.ClientSession, phone: str) -> str:
    """The last code texted to `phone` (from the stack's SMS sink)."""
    async with http.get(stack.sms_url) as answer:
        texts = [m["message"] for m in await answer.json() if m["phone"] == phone]
    assert texts, f"no code was texted to {phone}"
    found = re.search(r"\b(\d{6})\b", texts[-1])
    assert found is not None
    return found[1]


async def sign_up(
    stack: LocalStack,
    *,
    phone: str | None = None,
    source: str | None = None,
    one_time_prekeys: int = 0,
) -> Account:
    """Ask for a code, verify it, upload keys: a device senders can see."""
    phone = phone or new_phone()
    async with http_from(source or source_address()) as http:
        async with http.post(stack.http_url + "/v1/auth/otp", json={"phone": phone}) as r:
            assert r.status == 202, await r.text()
        code = await text_code(stack, http, phone)
        async with http.post(
            stack.http_url + "/v1/auth/verify", json={"phone": phone, "code": code}
        ) as r:
            assert r.status == 200, await r.text()
            session = await r.json()
        account = Account(
            phone=phone,
            user_id=session["user_id"],
            device_id=session["device_id"],
            access_token=session["access_token"],
            refresh_token=session["refresh_token"],
        )
        prekey = bytes(PrivateKey.generate().public_key)
        keys = {
            "identity_key": _b64(bytes(account.identity.verify_key)),
            "signed_prekey": {
                "key_id": 1,
                "public_key": _b64(prekey),
                "signature": _b64(account.identity.sign(prekey).signature),
            },
            "one_time_prekeys": [
                {"key_id": i, "public_key": _b64(bytes(PrivateKey.generate().public_key))}
                for i in range(one_time_prekeys)
            ],
        }
        async with http.put(stack.http_url + "/v1/keys", json=keys, headers=account.auth) as r:
            assert r.status == 204, await r.text()
        # the primary's first device list: senders deliver to listed devices only
        listed = first_list(account.user_id, account.device_id, account.identity)
        async with http.put(
            stack.http_url + "/v1/devices/list", json=listed, headers=account.auth
        ) as r:
            assert r.status == 204, await r.text()
    return account
