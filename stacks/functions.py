"""Lambda: one function per parley_server.catalogue.FUNCTIONS entry.

Each function gets exactly the environment its spec declares (its settings,
plus Powertools' three variables), a role of its own holding only what
stacks/grants.py allows it, an explicit log group, JSON logs (Powertools') and
X-Ray active tracing. All run Python 3.13 on arm64 (Graviton: cheaper per ms, and these
functions are I/O bound) from the one shared asset. None reserves concurrency
unless the `reservedConcurrency` context names it (README: Lambda concurrency).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from parley_server.catalogue import FUNCTIONS, FunctionSpec, Setting
from parley_server.store.schema import TABLES
from stacks.calls import CallRelays
from stacks.fanout import GroupFanoutQueue
from stacks.grants import GRANTS, FunctionGrants, check_grants, table_actions
from stacks.media import MediaStorage
from stacks.nag import acknowledge, arn_of
from stacks.notifications import Notifications
from stacks.secret import SigningSecret
from stacks.settings import LogLevel
from stacks.websocket import WebSocketApi

__all__ = [
    "POWERTOOLS_METRICS_NAMESPACE",
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_VARIABLES",
    "Functions",
    "Resources",
    "environment",
]

POWERTOOLS_SERVICE_NAME = "parley"
POWERTOOLS_METRICS_NAMESPACE = "Parley"
POWERTOOLS_VARIABLES = frozenset(
    {"POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE", "POWERTOOLS_LOG_LEVEL"}
)
# tables with secondary indexes: their grants also cover <table ARN>/index/*
_INDEXED = frozenset(spec.setting for spec in TABLES if spec.indexes)
# Lambda's own log-level filter stays off (it exists only with its JSON log format):
# it counts a line without a "level" as INFO, and Powertools' metric lines (EMF)
# have none, so at WARN or ERROR it would drop every metric. Powertools' logger
# filters by POWERTOOLS_LOG_LEVEL instead (which the filter's AWS_LAMBDA_LOG_LEVEL
# would override) and writes JSON lines itself.
_LAMBDA_LOG_FORMAT = lambda_.LoggingFormat.TEXT


@dataclass(frozen=True)
class Resources:
    """What the functions are wired to."""

    tables: Mapping[Setting, dynamodb.Table]
    media: MediaStorage
    secret: SigningSecret
    notifications: Notifications
    websocket: WebSocketApi
    fanout: GroupFanoutQueue
    call_relays: CallRelays
    push_apps_json: str
    limits_json: str
    test_numbers_json: str = "[]"
    sms_origination_json: str = "{}"

    def setting_values(self) -> dict[Setting, str]:
        """The value of every setting, as the functions will see it."""
        values = {setting: table.table_name for setting, table in self.tables.items()}
        values[Setting.MEDIA_BUCKET] = self.media.bucket.bucket_name
        values[Setting.SIGNING_SECRET_ARN] = self.secret.secret.secret_arn
        values[Setting.WS_ENDPOINT] = self.websocket.callback_url
        values[Setting.PUSH_APPS] = self.push_apps_json
        values[Setting.LIMITS] = self.limits_json
        values[Setting.TEST_NUMBERS] = self.test_numbers_json
        values[Setting.SMS_ORIGINATION] = self.sms_origination_json
        values[Setting.GROUP_FANOUT_QUEUE] = self.fanout.queue_url
        # on AWS calls are relayed by Kinesis Video Streams (the local stack: loopback)
        values[Setting.CALL_RELAYS] = "kvs"
        values[Setting.CALL_CHANNELS] = self.call_relays.channels_json()
        return values


def environment(
    spec: FunctionSpec, values: Mapping[Setting, str], log_level: LogLevel
) -> dict[str, str]:
    """Exactly `spec`'s settings, plus what Powertools reads."""
    env = {setting.value: values[setting] for setting in sorted(spec.settings)}
    env["POWERTOOLS_SERVICE_NAME"] = POWERTOOLS_SERVICE_NAME
    env["POWERTOOLS_METRICS_NAMESPACE"] = POWERTOOLS_METRICS_NAMESPACE
    env["POWERTOOLS_LOG_LEVEL"] = log_level.value
    return env


class Functions(Construct):
    """Every function of the catalogue; `by_id` maps a spec id to its function."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        code: lambda_.Code,
        resources: Resources,
        log_level: LogLevel,
        log_retention: logs.RetentionDays,
        removal_policy: RemovalPolicy,
        reserved_concurrency: Mapping[str, int] | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        check_grants()
        # function id -> reserved concurrent executions; the rest share the account's pool
        reserved = dict(reserved_concurrency or {})
        unknown = sorted(set(reserved) - {spec.id for spec in FUNCTIONS})
        if unknown:
            raise ValueError(f"reserved concurrency for unknown functions: {unknown}")
        values = resources.setting_values()
        self.by_id: dict[str, lambda_.Function] = {}
        for spec in FUNCTIONS:
            role = iam.Role(
                self,
                f"{spec.id}Role",
                assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
                description=f"Parley {spec.id}: only what stacks/grants.py allows it",
            )
            log_group = logs.LogGroup(
                self, f"{spec.id}Logs", retention=log_retention, removal_policy=removal_policy
            )
            function = lambda_.Function(
                self,
                spec.id,
                description=spec.description,
                code=code,
                handler=spec.handler,
                runtime=lambda_.Runtime.PYTHON_3_13,
                architecture=lambda_.Architecture.ARM_64,
                memory_size=spec.memory_mb,
                timeout=Duration.seconds(spec.timeout_s),
                environment=environment(spec, values, log_level),
                role=role,
                log_group=log_group,
                logging_format=_LAMBDA_LOG_FORMAT,
                tracing=lambda_.Tracing.ACTIVE,
                reserved_concurrent_executions=reserved.get(spec.id),
            )
            # the role's only log permission: this function's own log group
            log_group.grant_write(role)
            _grant(function, GRANTS[spec.id], resources)
            indexed = [resources.tables[s] for s in GRANTS[spec.id].tables if s in _INDEXED]
            _acknowledge(function, role, indexed)
            self.by_id[spec.id] = function


def _grant(function: lambda_.Function, grants: FunctionGrants, resources: Resources) -> None:
    for setting, ops in grants.tables.items():
        resources.tables[setting].grant(function, *table_actions(ops))
    if grants.media_upload:
        resources.media.grant_upload(function)
    if grants.media_download:
        resources.media.grant_download(function)
    if grants.media_delete:
        resources.media.grant_delete(function)
    if grants.read_signing_secret:
        resources.secret.grant_read(function)
    if grants.manage_connections:
        resources.websocket.grant_manage_connections(function)
    if grants.send_sms:
        assert function.role is not None
        resources.notifications.grant_sms(function.node.id, function.role)
    if grants.register_push:
        resources.notifications.grant_push_registration(function)
    if grants.publish_push:
        resources.notifications.grant_push_publish(function)
    if grants.enqueue_group_fanout:
        resources.fanout.grant_enqueue(function)
    if grants.call_relays:
        resources.call_relays.grant_relays(function)


def _acknowledge(
    function: lambda_.Function, role: iam.Role, indexed_tables: list[dynamodb.Table]
) -> None:
    acknowledge(
        function,
        "AwsSolutions-L1",
        "Python 3.13 is the runtime the service is built and tested for (3.11 locally, "
        "3.13 on Lambda); moving to a newer runtime is a deliberate, tested change.",
    )
    policy = role.node.find_child("DefaultPolicy")
    acknowledge(
        policy,
        "AwsSolutions-IAM5",
        "X-Ray's PutTraceSegments/PutTelemetryRecords support no resource-level "
        "permissions, so active tracing needs Resource '*'.",
        "Resource::*",
    )
    if indexed_tables:
        acknowledge(
            policy,
            "AwsSolutions-IAM5",
            "Queries on a table's secondary indexes (mailbox by_order, groups by_member) "
            "need the index ARNs, which IAM names <table ARN>/index/*; the table itself "
            "is named exactly.",
            *(f"Resource::{arn_of(t)}/index/*" for t in indexed_tables),
        )
