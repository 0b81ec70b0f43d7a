"""The composition root: every adapter a handler uses, built from `Config`.

`adapters()` is the process's `Adapters`, made on first use from `load_config()`.
Each adapter is a cached property, so a function builds (and its IAM policy
must allow) only what its handlers touch, once per cold start. Tests that
change the environment call `config.reset_config()`: the next `adapters()` is
rebuilt from the new configuration. Tests may also replace one adapter on the
current object (`monkeypatch.setattr(adapters(), "sms", fake)`).

Each adapter's module is imported by the property that builds it, so a function
imports only the stores it uses: a WebSocket handler no longer pays at its cold
start for the phone-number library, the JWT library or the account-deletion use
case. So that none of that import moves to the first request, every handler
module names the adapters it uses with `preload(...)` at import time
(tests/unit/server/handlers/test_preload.py holds each handler to its list).
"""

from __future__ import annotations

import importlib
from functools import cached_property
from typing import TYPE_CHECKING, Any

from parley_server.config import Config, per_config
from parley_server.store.aws import client, s3_client

if TYPE_CHECKING:
    from parley_server.logic.account_deletion import AccountStores
    from parley_server.logic.tokens import Keys
    from parley_server.store.connections import ConnectionsStore
    from parley_server.store.contacts import ContactsStore
    from parley_server.store.groups import FanoutQueue, GroupsStore
    from parley_server.store.mailbox import EnvelopeWriter, Mailbox
    from parley_server.store.management import ConnectionsApi
    from parley_server.store.media import MediaStore
    from parley_server.store.otp import OtpStore
    from parley_server.store.prekeys import PrekeysStore
    from parley_server.store.push import ChallengeQueue, PushNotifier
    from parley_server.store.ratelimits import RateLimiter
    from parley_server.store.relays import KvsRelays, LoopbackRelays
    from parley_server.store.secrets import SigningSecret
    from parley_server.store.sms import SmsSender
    from parley_server.store.tokens import RefreshStore
    from parley_server.store.users import KnownUsers, UsersStore

__all__ = ["ADAPTER_MODULES", "Adapters", "adapters", "preload"]

_S = "parley_server.store."
# The modules each adapter is built from (`keys` also needs the token logic).
ADAPTER_MODULES: dict[str, tuple[str, ...]] = {
    "users": (_S + "users",),
    "contacts": (_S + "contacts",),
    "otps": (_S + "otp",),
    "refresh_tokens": (_S + "tokens",),
    "prekeys": (_S + "prekeys",),
    "limiter": (_S + "ratelimits",),
    "sms": (_S + "sms",),
    "signing_secret": (_S + "secrets",),
    "keys": (_S + "secrets", "parley_server.logic.tokens"),
    "mailbox": (_S + "mailbox",),
    "connections": (_S + "connections",),
    "gateway": (_S + "management",),
    "push": (_S + "push",),
    "groups": (_S + "groups",),
    "known_users": (_S + "users",),
    "envelopes": (_S + "mailbox",),
    "fanout_queue": (_S + "groups",),
    "push_challenges": (_S + "push",),
    "media": (_S + "media",),
    "relays": (_S + "relays",),
    "account_stores": (
        "parley_server.logic.account_deletion",
        *(_S + m for m in ("users", "otp", "tokens", "prekeys", "mailbox", "media", "push")),
        *(_S + m for m in ("connections", "management", "groups")),
    ),
}


def preload(*names: str) -> frozenset[str]:
    """Import, now, the modules of the adapters `names` (a handler's cold start)."""
    unknown = sorted(set(names) - ADAPTER_MODULES.keys())
    if unknown:
        raise KeyError(f"no such adapters: {', '.join(unknown)}")
    for name in names:
        for module in ADAPTER_MODULES[name]:
            importlib.import_module(module)
    return frozenset(names)


class Adapters:
    """One function's adapters over the process's boto3 clients, each built at first use."""

    def __init__(self, config: Config) -> None:
        self.config = config

    @cached_property
    def _dynamodb(self) -> Any:
        return client("dynamodb")

    @cached_property
    def _sns(self) -> Any:
        return client("sns")

    # -- users, sign-in and keys ------------------------------------------------------

    @cached_property
    def users(self) -> UsersStore:
        from parley_server.store.users import UsersStore

        return UsersStore(self._dynamodb, self.config.users_table)

    @cached_property
    def contacts(self) -> ContactsStore:
        from parley_server.store.contacts import ContactsStore

        return ContactsStore(self._dynamodb, self.config.users_table)

    @cached_property
    def otps(self) -> OtpStore:
        from parley_server.store.otp import OtpStore

        return OtpStore(self._dynamodb, self.config.otp_table)

    @cached_property
    def refresh_tokens(self) -> RefreshStore:
        from parley_server.store.tokens import RefreshStore

        return RefreshStore(self._dynamodb, self.config.users_table)

    @cached_property
    def prekeys(self) -> PrekeysStore:
        from parley_server.store.prekeys import PrekeysStore

        return PrekeysStore(self._dynamodb, self.config.prekeys_table)

    @cached_property
    def limiter(self) -> RateLimiter:
        from parley_server.store.ratelimits import RateLimiter

        return RateLimiter(self._dynamodb, self.config.ratelimits_table)

    @cached_property
    def sms(self) -> SmsSender:
        from parley_server.store.sms import SmsSender

        return SmsSender(self._sns, self.config.sms_origination)

    @cached_property
    def signing_secret(self) -> SigningSecret:
        from parley_server.store.secrets import SigningSecret

        return SigningSecret(client("secretsmanager"), self.config.signing_secret_arn)

    def keys(self) -> Keys:
        """The signing keys; DependencyUnavailable (fail closed) when the secret can't be read."""
        from parley_server.logic import tokens

        return tokens.derive_keys(self.signing_secret.value())

    # -- messaging and connections ----------------------------------------------------

    @cached_property
    def mailbox(self) -> Mailbox:
        from parley_server.store.mailbox import Mailbox

        return Mailbox(self._dynamodb, self.config.mailbox_table)

    @cached_property
    def connections(self) -> ConnectionsStore:
        from parley_server.store.connections import ConnectionsStore

        return ConnectionsStore(self._dynamodb, self.config.connections_table)

    @cached_property
    def gateway(self) -> ConnectionsApi:
        from parley_server.store.management import ConnectionsApi

        return ConnectionsApi(
            client("apigatewaymanagementapi", endpoint_url=self.config.ws_endpoint)
        )

    @cached_property
    def push(self) -> PushNotifier:
        from parley_server.store.push import PushNotifier

        return PushNotifier(self._sns, self.config.push_apps)

    # -- groups and media -------------------------------------------------------------

    @cached_property
    def groups(self) -> GroupsStore:
        from parley_server.store.groups import GroupsStore

        return GroupsStore(self._dynamodb, self.config.groups_table)

    @cached_property
    def known_users(self) -> KnownUsers:
        from parley_server.store.users import KnownUsers

        return KnownUsers(self._dynamodb, self.config.users_table)

    @cached_property
    def envelopes(self) -> EnvelopeWriter:
        from parley_server.store.mailbox import EnvelopeWriter

        return EnvelopeWriter(self._dynamodb, self.config.mailbox_table)

    @cached_property
    def fanout_queue(self) -> FanoutQueue:
        from parley_server.store.groups import FanoutQueue

        return FanoutQueue(client("sqs"), self.config.group_fanout_queue)

    @cached_property
    def push_challenges(self) -> ChallengeQueue:
        from parley_server.store.push import ChallengeQueue

        return ChallengeQueue(client("sqs"), self.config.group_fanout_queue)

    @cached_property
    def media(self) -> MediaStore:
        from parley_server.store.media import MediaStore

        return MediaStore(
            s3_client(),
            self._dynamodb,
            bucket=self.config.media_bucket,
            table=self.config.users_table,
        )

    # -- calls --------------------------------------------------------------------------

    @cached_property
    def relays(self) -> KvsRelays | LoopbackRelays:
        """ICE servers for calls: KVS's (its clients made at the first request that
        needs them), or none on the local stack."""
        from parley_server.store.relays import KvsRelays, LoopbackRelays

        if self.config.call_relays == "loopback":
            return LoopbackRelays()
        return KvsRelays(
            client("kinesisvideo"),
            lambda endpoint: client("kinesis-video-signaling", endpoint_url=endpoint),
            self.config.call_channels,
        )

    @cached_property
    def account_stores(self) -> AccountStores:
        """Every store an account has data in (only deleting the account needs them all)."""
        from parley_server.logic.account_deletion import AccountStores

        return AccountStores(
            users=self.users,
            otps=self.otps,
            refresh_tokens=self.refresh_tokens,
            prekeys=self.prekeys,
            mailbox=self.mailbox,
            media=self.media,
            push=self.push,
            connections=self.connections,
            gateway=self.gateway,
            groups=self.groups,
        )


# This process's adapters (rebuilt only when the configuration is reloaded).
adapters = per_config(Adapters)
