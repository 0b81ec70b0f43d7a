"""Deploy-time settings: the CDK context, parsed once into a typed object.

Context comes from cdk.json, cdk.context.json and `-c key=value` on the command
line (where every value arrives as a string, so numbers and JSON objects are
accepted in both forms). A wrong value or an unknown key is a ContextError with
a message meant for the person running `make synth` / `make deploy`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from parley_server.catalogue import FUNCTIONS
from parley_server.config import Limits
from parley_server.logic.testnumbers import normalize_test_numbers
from parley_server.models.errors import ConfigError
from parley_server.models.sms import SmsOrigination
from stacks.fanout_spec import FANOUT_QUEUE

__all__ = [
    "CALL_CHANNELS_BUDGET",
    "CONTEXT_KEYS",
    "MAX_CALL_RELAY_CHANNELS",
    "ContextError",
    "LogLevel",
    "ParleySettings",
    "Stage",
    "call_channel_name",
    "call_channels_chars",
]

MIB = 1024 * 1024
# A presigned POST uploads in one request, and S3 takes at most 5 GiB that way.
_MAX_MEDIA_BYTES = 5 * 1024 * MIB
_STACK_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,127}$")
# arn:<partition>:sns:<region>:<account>:app/<platform>/<name>
_PLATFORM_APP_ARN = re.compile(
    r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:app/(?P<platform>GCM|APNS|APNS_SANDBOX)/[\w.-]{1,256}$"
)
_PUSH_PLATFORMS = {"fcm": ("GCM",), "apns": ("APNS", "APNS_SANDBOX")}
_ORIGIN = re.compile(r"^(\*|https?://[A-Za-z0-9.-]+(:\d{1,5})?)$")
# arn:<partition>:sns:<region>:<account>:<topic name> (standard topics only)
_TOPIC_ARN = re.compile(r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?$")
# The HttpApi function gets the call relay pool's channel ARNs in its environment
# (PARLEY_CALL_CHANNELS), and Lambda allows 4 KB of environment in all; the rest of
# that function's takes about 1.5 KB. So the list may take this much, which is 20
# channels of a stack named like Parley-prod (a longer stack name allows fewer).
CALL_CHANNELS_BUDGET = 2000
MAX_CALL_RELAY_CHANNELS = 20
# arn:<partition>:kinesisvideo:<region>:<account>:channel/<name>/<creation ms>, at its
# longest: the longest partition and region names, a 13-digit creation time
_CHANNEL_ARN_EXTRA = len("arn:aws-us-gov:kinesisvideo:ap-southeast-2:123456789012:channel//") + 13


def call_channel_name(stack_name: str, n: int) -> str:
    """The name of the call relay pool's channel `n` (short: its ARN embeds it)."""
    return f"{stack_name}-call-{n}"


def call_channels_chars(stack_name: str, channels: int) -> int:
    """The most characters PARLEY_CALL_CHANNELS can take: a JSON list of the ARNs."""
    names = sum(len(call_channel_name(stack_name, n)) for n in range(channels))
    return 2 + names + channels * (_CHANNEL_ARN_EXTRA + 3)  # [], quotes and commas


class ContextError(ValueError):
    """The CDK context holds a value this app cannot deploy."""


class Stage(StrEnum):
    DEV = "dev"
    PROD = "prod"


class LogLevel(StrEnum):
    """Powertools' level names (POWERTOOLS_LOG_LEVEL; Lambda's own filter stays off)."""

    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"


@dataclass(frozen=True)
class ParleySettings:
    """Everything the stack varies on. Defaults make a plain `cdk deploy` work."""

    stage: Stage = Stage.DEV
    stack_name: str = ""
    # {"fcm" | "apns": ARN of an existing SNS platform application}
    push_platform_applications: Mapping[str, str] = field(default_factory=dict)
    media_max_bytes: int = 100 * MIB
    # overrides of parley_server.config.Limits, passed to functions as PARLEY_LIMITS
    limits: Mapping[str, int] = field(default_factory=dict)
    log_level: LogLevel = LogLevel.INFO
    cors_origins: tuple[str, ...] = ("*",)
    # WebSocket access logs need API Gateway's account-wide CloudWatch role; set
    # false when the account already has one that something else manages.
    manage_api_gateway_account: bool = True
    # an existing SNS topic every alarm notifies (on alarm and on recovery); None: no actions
    alarm_topic_arn: str | None = None
    # function id -> reserved concurrent executions; a function not named is unreserved
    reserved_concurrency: Mapping[str, int] = field(default_factory=dict)
    # who one-time codes come from (origination number / sender ID, SMS type)
    sms_origination: SmsOrigination = field(default_factory=SmsOrigination)
    # fictional numbers that sign up with a code derived from the signing secret (dev only)
    test_numbers: tuple[str, ...] = ()
    # Kinesis Video signalling channels whose TURN servers relay calls (stacks/calls.py);
    # docs/SCALE.md says what each adds
    call_relay_channels: int = 4

    def __post_init__(self) -> None:
        if self.test_numbers and self.stage is Stage.PROD:
            raise ContextError(
                "testNumbers is for dev stacks only: anyone who can read the signing "
                "secret could sign in as a test number, so stage=prod refuses it"
            )
        if not self.stack_name:
            object.__setattr__(self, "stack_name", f"Parley-{self.stage.value}")
        chars = call_channels_chars(self.stack_name, self.call_relay_channels)
        if chars > CALL_CHANNELS_BUDGET:
            raise ContextError(
                f"callRelayChannels: {self.call_relay_channels} channels of stack "
                f"{self.stack_name!r} would take up to {chars} characters of the HttpApi "
                f"function's environment (at most {CALL_CHANNELS_BUDGET}: Lambda allows 4 KB "
                "in all); use fewer channels or a shorter stackName"
            )

    @property
    def is_prod(self) -> bool:
        return self.stage is Stage.PROD

    @property
    def limits_json(self) -> str:
        """PARLEY_LIMITS for the functions: the overrides plus the media size bound."""
        merged = {**self.limits, "media_max_bytes": self.media_max_bytes}
        return json.dumps(merged, sort_keys=True, separators=(",", ":"))

    @property
    def test_numbers_json(self) -> str:
        """PARLEY_TEST_NUMBERS for the functions ("[]" when none is configured)."""
        return json.dumps(list(self.test_numbers), separators=(",", ":"))

    @property
    def sms_origination_json(self) -> str:
        """PARLEY_SMS_ORIGINATION for the functions ("{}" when none is configured)."""
        return self.sms_origination.to_json()

    @property
    def push_apps_json(self) -> str:
        """PARLEY_PUSH_APPS for the functions ("{}" when none is configured)."""
        return json.dumps(dict(self.push_platform_applications), sort_keys=True)

    @classmethod
    def from_context(cls, context: Mapping[str, Any]) -> ParleySettings:
        """Parse the app's whole context; keys owned by the CDK itself are ignored."""
        ours = {k: v for k, v in context.items() if not _is_framework_key(k)}
        unknown = sorted(set(ours) - set(CONTEXT_KEYS))
        if unknown:
            raise ContextError(
                f"unknown context key(s) {', '.join(unknown)}; "
                f"known keys: {', '.join(sorted(CONTEXT_KEYS))}"
            )
        values: dict[str, Any] = {}
        for key, raw in ours.items():
            attribute, parse = CONTEXT_KEYS[key]
            try:
                values[attribute] = parse(raw)
            except ContextError as exc:
                raise ContextError(f"context {key}: {exc}") from None
        if "media_max_bytes" in values.get("limits", {}):
            raise ContextError("set the media size with mediaMaxBytes, not limits.media_max_bytes")
        return cls(**values)


def _is_framework_key(key: str) -> bool:
    # feature flags (@aws-cdk/...), CLI keys (aws:cdk:...), lookups (…:account=…:region=…)
    return key.startswith("@") or ":" in key or key in _CDK_PLAIN_KEYS


# Keys the CDK CLI itself puts into the context without a namespace.
_CDK_PLAIN_KEYS = frozenset({"acknowledged-issue-numbers", "cli-telemetry"})


def _json_value(raw: Any) -> Any:
    if isinstance(raw, str):
        try:
            return json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ContextError(f"is not valid JSON ({exc.msg})") from None
    return raw


def _parse_stage(raw: Any) -> Stage:
    try:
        return Stage(raw)
    except ValueError:
        raise ContextError(
            f"{raw!r} is not a stage; use one of: {', '.join(s.value for s in Stage)}"
        ) from None


def _parse_stack_name(raw: Any) -> str:
    if not isinstance(raw, str) or not _STACK_NAME.match(raw):
        raise ContextError(
            f"{raw!r} is not a CloudFormation stack name (a letter, then letters, digits "
            "or '-', at most 128)"
        )
    return raw


def _parse_push_apps(raw: Any) -> dict[str, str]:
    value = _json_value(raw)
    if not isinstance(value, dict):
        raise ContextError('must be a JSON object like {"fcm": "<platform application ARN>"}')
    apps: dict[str, str] = {}
    for platform, arn in value.items():
        if platform not in _PUSH_PLATFORMS:
            raise ContextError(
                f"unknown platform {platform!r}; use: {', '.join(sorted(_PUSH_PLATFORMS))}"
            )
        match = _PLATFORM_APP_ARN.match(arn) if isinstance(arn, str) else None
        if match is None:
            raise ContextError(
                f"{platform}: {arn!r} is not an SNS platform application ARN "
                "(arn:aws:sns:<region>:<account>:app/<platform>/<name>)"
            )
        if match["platform"] not in _PUSH_PLATFORMS[platform]:
            raise ContextError(
                f"{platform}: {arn!r} is a {match['platform']} application; "
                f"{platform} needs {' or '.join(_PUSH_PLATFORMS[platform])}"
            )
        apps[platform] = arn
    return apps


def _parse_media_max_bytes(raw: Any) -> int:
    value = raw
    if isinstance(raw, str) and raw.strip().isdigit():
        value = int(raw.strip())
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= _MAX_MEDIA_BYTES:
        raise ContextError(f"{raw!r} must be a whole number of bytes from 1 to {_MAX_MEDIA_BYTES}")
    return value


def _parse_limits(raw: Any) -> dict[str, int]:
    value = _json_value(raw)
    try:
        # the functions' own parser decides, so what synthesizes is what they accept
        Limits.from_json(json.dumps(value))
    except ConfigError as exc:
        raise ContextError(exc.message) from None
    return dict(value)


def _parse_log_level(raw: Any) -> LogLevel:
    try:
        return LogLevel(str(raw).upper())
    except ValueError:
        raise ContextError(
            f"{raw!r} is not a log level; use one of: {', '.join(lv.value for lv in LogLevel)}"
        ) from None


def _parse_cors_origins(raw: Any) -> tuple[str, ...]:
    value = raw
    if isinstance(raw, str):
        value = _json_value(raw) if raw.lstrip().startswith("[") else raw.split(",")
    if not isinstance(value, list) or not value:
        raise ContextError('must be a non-empty list of origins, e.g. ["https://app.example"]')
    origins = tuple(o.strip() if isinstance(o, str) else o for o in value)
    bad = [o for o in origins if not isinstance(o, str) or not _ORIGIN.match(o)]
    if bad:
        raise ContextError(f"{bad!r}: each origin is '*' or scheme://host[:port]")
    return origins


def _parse_alarm_topic(raw: Any) -> str:
    arn = raw.strip() if isinstance(raw, str) else ""
    if not _TOPIC_ARN.match(arn):
        raise ContextError(
            f"{raw!r} is not an SNS topic ARN (arn:aws:sns:<region>:<account>:<topic name>)"
        )
    if arn.endswith(".fifo"):
        # FIFO topics deliver only to FIFO queues and need a message group id alarms don't send
        raise ContextError(f"{raw!r} is a FIFO topic; alarms need a standard topic")
    return arn


def _parse_test_numbers(raw: Any) -> tuple[str, ...]:
    value = raw
    if isinstance(raw, str):
        value = _json_value(raw) if raw.lstrip()[:1] in ("[", "{") else raw.split(",")
    if not isinstance(value, list):
        raise ContextError('must be a list of phone numbers, e.g. ["+12065550100"]')
    try:
        return normalize_test_numbers(value)
    except ValueError as exc:
        raise ContextError(str(exc)) from None


def _parse_sms_origination(raw: Any) -> SmsOrigination:
    try:
        # the SMS adapter's own parser decides, so what synthesizes is what it sends
        return SmsOrigination.parse(_json_value(raw))
    except ConfigError as exc:
        raise ContextError(exc.message) from None


def _parse_reserved_concurrency(raw: Any) -> dict[str, int]:
    value = _json_value(raw)
    if not isinstance(value, dict):
        raise ContextError('must be a JSON object of function id to a number, e.g. {"WsSend": 50}')
    known = {spec.id for spec in FUNCTIONS}
    unknown = sorted(set(value) - known)
    if unknown:
        raise ContextError(
            f"unknown function(s) {', '.join(map(repr, unknown))}; "
            f"functions: {', '.join(sorted(known))}"
        )
    reserved: dict[str, int] = {}
    for function_id, count in value.items():
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise ContextError(
                f"{function_id}: {count!r} must be a whole number of executions, 1 or more "
                "(leave a function out to keep it unreserved)"
            )
        if function_id == "GroupFanout" and count < FANOUT_QUEUE.max_concurrency:
            raise ContextError(
                f"GroupFanout: {count} is below its queue's maximum concurrency "
                f"({FANOUT_QUEUE.max_concurrency}, stacks/fanout_spec.py): Lambda would "
                "throttle the fan-out jobs it hands over"
            )
        reserved[function_id] = count
    return reserved


def _parse_call_relay_channels(raw: Any) -> int:
    value = raw
    if isinstance(raw, str) and raw.strip().isdigit():
        value = int(raw.strip())
    if (
        not isinstance(value, int)
        or isinstance(value, bool)
        or not 1 <= value <= MAX_CALL_RELAY_CHANNELS
    ):
        raise ContextError(
            f"{raw!r} must be a whole number of signalling channels from 1 to "
            f"{MAX_CALL_RELAY_CHANNELS} (their ARNs go into a Lambda environment, which "
            "holds 4 KB; docs/SCALE.md, call relays, says how to grow past it)"
        )
    return value


def _parse_bool(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    raise ContextError(f"{raw!r} must be true or false")


# context key -> (ParleySettings attribute, parser)
CONTEXT_KEYS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "stage": ("stage", _parse_stage),
    "stackName": ("stack_name", _parse_stack_name),
    "pushPlatformApplications": ("push_platform_applications", _parse_push_apps),
    "mediaMaxBytes": ("media_max_bytes", _parse_media_max_bytes),
    "limits": ("limits", _parse_limits),
    "logLevel": ("log_level", _parse_log_level),
    "corsOrigins": ("cors_origins", _parse_cors_origins),
    "manageApiGatewayAccount": ("manage_api_gateway_account", _parse_bool),
    "alarmTopicArn": ("alarm_topic_arn", _parse_alarm_topic),
    "reservedConcurrency": ("reserved_concurrency", _parse_reserved_concurrency),
    "smsOrigination": ("sms_origination", _parse_sms_origination),
    "testNumbers": ("test_numbers", _parse_test_numbers),
    "callRelayChannels": ("call_relay_channels", _parse_call_relay_channels),
}
