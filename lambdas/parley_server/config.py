"""Configuration: parsed once per cold start, lazily, into a typed object."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from functools import cache, cached_property
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import msgspec

from parley_server.catalogue import Setting
from parley_server.models.errors import ConfigError

if TYPE_CHECKING:
    from parley_server.models.sms import SmsOrigination

__all__ = [
    "CALL_RELAY_MODES",
    "Config",
    "Limits",
    "load_config",
    "per_config",
    "reset_config",
]

T = TypeVar("T")

# PARLEY_CALL_RELAYS: Kinesis Video Streams' STUN and TURN, or none (the local stack)
CALL_RELAY_MODES = ("kvs", "loopback")


class Limits(msgspec.Struct, frozen=True):
    """Tunables. Defaults are the service's documented behaviour."""

    mailbox_ttl_s: int = 30 * 24 * 3600
    # API Gateway closes a WebSocket after 2 h; a record lives a little longer
    # so a missed $disconnect cannot leave it forever.
    connection_ttl_s: int = 2 * 3600 + 15 * 60
    max_payload_bytes: int = 64 * 1024
    otp_ttl_s: int = 300
    otp_max_attempts: int = 5
    otp_resend_cooldown_s: int = 30
    otp_hourly_cap: int = 5
    # codes asked from one source address per hour, whatever the phone (SMS pumping)
    otp_per_source_hourly: int = 20
    # codes texted to one phone per UTC day, on top of the hourly cap (bounds the
    # toll one number can run up, and with the lockout the guesses at it)
    otp_daily_cap: int = 10
    # lockout: a code that got a wrong guess and was never used has failed; this many
    # failed codes within `otp_lockout_s` lock the number (no code texted, every
    # code refused) for `otp_lockout_s` after the last of them
    otp_lockout_failures: int = 3
    otp_lockout_s: int = 24 * 3600
    # codes texted per hour to all numbers (a ceiling on SMS spend), and to the numbers
    # of one country calling code (SMS pumping aims at a few expensive destinations)
    otp_global_hourly: int = 5000
    otp_per_country_hourly: int = 300
    # calling codes whose hourly budget is not `otp_per_country_hourly`: the largest
    # user bases (code, codes per hour). Set in code only: PARLEY_LIMITS takes integers.
    otp_country_hourly_overrides: tuple[tuple[int, int], ...] = (
        (1, 2000),  # North America (NANP)
        (33, 600),  # France
        (34, 600),  # Spain
        (39, 600),  # Italy
        (44, 800),  # United Kingdom
        (49, 800),  # Germany
        (52, 600),  # Mexico
        (55, 1000),  # Brazil
        (62, 600),  # Indonesia
        (91, 1500),  # India
    )
    access_token_ttl_s: int = 900
    # push tokens (PUT /v1/push): a challenge pushed through a new token must come back
    # (POST /v1/push/verify) within this many seconds, in at most this many tries
    push_challenge_ttl_s: int = 600
    push_challenge_max_attempts: int = 5
    refresh_token_ttl_s: int = 60 * 24 * 3600
    # a spent refresh token presented again this soon, whose successor was never used,
    # is the device asking again for an answer it lost: traded again, not a reuse
    refresh_reuse_grace_s: int = 120
    max_one_time_prekeys_per_upload: int = 100
    # bundle claims per caller, and per (caller, target) so nobody drains one person's keys
    bundle_claims_per_hour: int = 1200
    bundle_claims_per_target_per_hour: int = 20
    # a number typed in to start a chat, now and then; far too few to walk a numbering plan
    phone_lookups_per_hour: int = 200
    # events one sync invocation delivers (then `synced` with more=true)
    sync_page: int = 100
    send_rate_per_s: int = 60
    group_max_members: int = 1024
    media_max_bytes: int = 100 * 1024 * 1024
    # linked devices: companions per account besides the primary; how long a pairing
    # (QR code) lives; pairings one source address may start per hour
    max_companions: int = 4
    pairing_ttl_s: int = 300
    pairings_per_source_hourly: int = 30
    # registration lock: the PIN is asked only of an account active this recently
    # (a device refreshed a token); past it the lock lapses
    reglock_inactivity_s: int = 7 * 24 * 3600
    # wrong PINs tried without waiting, then 2^(n - free) times the base wait, capped
    pin_free_tries: int = 5
    pin_backoff_base_s: int = 60
    pin_backoff_max_s: int = 24 * 3600
    # -- budgets of every other channel (a RateLimited past any of them) --
    # read receipts from one device: a backlog of conversations read at once comes in a
    # burst, then a few a second; per minute, more conversations than anyone reads
    receipts_per_s: int = 20
    receipts_per_minute: int = 300
    # typing frames from one device: `on` and `off` while typing, a few a second at
    # most; each may fan out to 31 members of a group
    typing_per_s: int = 5
    typing_per_minute: int = 120
    # bundle claims of one person by everyone together: each member of a full group
    # (`group_max_members`) claims a newcomer's bundle once, with room to spare; beyond
    # it no number of accounts drains a person's one-time prekeys faster
    bundle_claims_of_target_per_hour: int = 2000
    # a claim that leaves a device fewer one-time prekeys than this reports them low
    # (the PrekeysLow metric, and a `prekeys_low` event to the device, which tops up;
    # the SDK keeps 25 to 100 on the server)
    prekeys_low_below: int = 10
    # phone lookups per device, within the account's `phone_lookups_per_hour`
    phone_lookups_per_device_per_hour: int = 100
    # 1:1 messages from one user (all their devices) to another per hour: a long, fast
    # conversation stays far below it; a stranger cannot fill someone's mailbox
    messages_to_user_per_hour: int = 1000
    # media upload forms per device per hour, and the bytes they declare per UTC day
    # (40 files of the largest size)
    media_uploads_per_hour: int = 200
    media_bytes_per_day: int = 4 * 1024 * 1024 * 1024
    # contacts saved or removed per device per hour
    contact_writes_per_hour: int = 300
    # ICE server sets (GET /v1/calls/relays) per device per hour: one per call placed or
    # answered, and one more when a long call's credentials run out
    call_relays_per_hour: int = 30
    # ringing sends (call offers: a visible, sounding push to an offline phone) from one
    # user to another, per minute and per hour: redialling stays well within them
    rings_to_user_per_minute: int = 10
    rings_to_user_per_hour: int = 30

    @classmethod
    def from_json(cls, text: str) -> Limits:
        try:
            raw = json.loads(text or "{}")
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{Setting.LIMITS.value} is not JSON: {exc}") from exc
        if not isinstance(raw, dict):
            raise ConfigError(f"{Setting.LIMITS.value} must be a JSON object")
        known = set(cls.__struct_fields__)
        unknown = set(raw) - known
        if unknown:
            raise ConfigError(f"{Setting.LIMITS.value} has unknown keys: {sorted(unknown)}")
        bad = [k for k, v in raw.items() if not isinstance(v, int) or isinstance(v, bool) or v <= 0]
        if bad:
            raise ConfigError(f"{Setting.LIMITS.value}: {sorted(bad)} must be positive integers")
        return cls(**raw)


class _Required:
    """A setting the function must have: `config.<name>` reads it, or is a ConfigError."""

    def __init__(self, setting: Setting) -> None:
        self.setting = setting

    def __get__(self, config: Config, owner: type[Config] | None = None) -> str:
        return config.get(self.setting)


class Config(msgspec.Struct, frozen=True, dict=True):  # dict: room for cached_property
    """The settings of one function. Reading a setting that is not set is a ConfigError."""

    environ: Mapping[str, str]
    limits: Limits

    def __repr__(self) -> str:
        return f"Config(limits={self.limits!r})"  # the environment stays out of logs

    def get(self, setting: Setting) -> str:
        value = self.environ.get(setting.value)
        if not value:
            raise ConfigError(f"{setting.value} is not set for this function")
        return value

    # the function's resources, named by its settings
    users_table = _Required(Setting.USERS_TABLE)
    connections_table = _Required(Setting.CONNECTIONS_TABLE)
    mailbox_table = _Required(Setting.MAILBOX_TABLE)
    otp_table = _Required(Setting.OTP_TABLE)
    prekeys_table = _Required(Setting.PREKEYS_TABLE)
    groups_table = _Required(Setting.GROUPS_TABLE)
    ratelimits_table = _Required(Setting.RATELIMITS_TABLE)
    media_bucket = _Required(Setting.MEDIA_BUCKET)
    signing_secret_arn = _Required(Setting.SIGNING_SECRET_ARN)
    ws_endpoint = _Required(Setting.WS_ENDPOINT)
    group_fanout_queue = _Required(Setting.GROUP_FANOUT_QUEUE)

    @property
    def push_apps(self) -> dict[str, str]:
        raw: Any
        try:
            raw = json.loads(self.environ.get(Setting.PUSH_APPS.value) or "{}")
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{Setting.PUSH_APPS.value} is not JSON: {exc}") from exc
        if not isinstance(raw, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in raw.items()
        ):
            raise ConfigError(f"{Setting.PUSH_APPS.value} must map platform to ARN")
        return dict(raw)

    @property
    def call_relays(self) -> str:
        """Where ICE servers for calls come from: "kvs" or "loopback"."""
        mode = self.get(Setting.CALL_RELAYS)
        if mode not in CALL_RELAY_MODES:
            raise ConfigError(
                f"{Setting.CALL_RELAYS.value} must be one of {', '.join(CALL_RELAY_MODES)}"
            )
        return mode

    @property
    def call_channels(self) -> tuple[str, ...]:
        """The signalling channels whose TURN servers relay calls (kvs mode: at least one)."""
        raw: Any
        try:
            raw = json.loads(self.get(Setting.CALL_CHANNELS))
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{Setting.CALL_CHANNELS.value} is not JSON: {exc}") from exc
        if not isinstance(raw, list) or not all(
            isinstance(arn, str) and arn.startswith("arn:") for arn in raw
        ):
            raise ConfigError(f"{Setting.CALL_CHANNELS.value} must be a JSON list of channel ARNs")
        return tuple(raw)

    @cached_property
    def test_numbers(self) -> frozenset[str]:
        """The fictional numbers whose codes are derived, not texted (unset: none)."""
        from parley_server.logic.testnumbers import parse_test_numbers

        return parse_test_numbers(self.environ.get(Setting.TEST_NUMBERS.value))

    @cached_property
    def sms_origination(self) -> SmsOrigination:
        """Who text messages come from (unset or "{}": SNS's choice, transactional).
        Only the SMS adapter reads it, and its module has imported this one at the
        function's cold start (`wiring.preload`)."""
        from parley_server.models.sms import SmsOrigination

        try:
            return SmsOrigination.from_json(self.environ.get(Setting.SMS_ORIGINATION.value))
        except ConfigError as exc:
            raise ConfigError(f"{Setting.SMS_ORIGINATION.value} {exc.message}") from None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Config:
        return cls(
            environ=dict(environ),
            limits=Limits.from_json(environ.get(Setting.LIMITS.value, "{}")),
        )


@cache
def load_config() -> Config:
    """The process's configuration, read from the environment on first use."""
    return Config.from_environ(os.environ)


def reset_config() -> None:
    """Forget the cached configuration (tests and the local stack use this)."""
    load_config.cache_clear()


class _Built(msgspec.Struct, Generic[T], frozen=True):
    config: Config
    value: T


def per_config(build: Callable[[Config], T]) -> Callable[[], T]:
    """What `build` makes of the process's configuration: built at first use, and
    again only once the configuration has been reloaded."""
    built: list[_Built[T]] = []

    def current() -> T:
        config = load_config()
        if not built or built[0].config is not config:
            built[:] = [_Built(config, build(config))]
        return built[0].value

    return current
