"""The Parley stack: every capability construct, wired together.

Order matters in one place: the WebSocket API and its stage come before the
functions (whose environment carries the stage's @connections URL), and the
routes after them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aws_cdk import Aws, CfnOutput, Duration, RemovalPolicy, Stack, Tags
from aws_cdk import aws_logs as logs
from constructs import Construct

from parley_server.catalogue import function
from stacks.access_logs import ApiGatewayAccountLogging
from stacks.bundling import lambda_code
from stacks.calls import CallRelays
from stacks.data import DataTables
from stacks.fanout import GroupFanoutQueue
from stacks.functions import Functions, Resources
from stacks.http_api import HttpApi
from stacks.media import MediaStorage
from stacks.notifications import Notifications
from stacks.observability import Observability, queues_in
from stacks.secret import SigningSecret
from stacks.settings import ParleySettings
from stacks.websocket import WebSocketApi

__all__ = ["LAMBDA_SOURCE", "OUTPUTS", "ParleyStack"]

LAMBDA_SOURCE = Path(__file__).resolve().parent.parent / "lambdas"
# The names `make deploy` writes to cdk-outputs.json (the client reads them).
OUTPUTS = ("HttpUrl", "WebSocketUrl", "Region")


class ParleyStack(Stack):
    """Tables, media bucket, signing secret, SNS grants, call relay channels, functions
    and both APIs."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: ParleySettings,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            description=f"Parley end-to-end encrypted messaging ({settings.stage.value})",
            **kwargs,
        )
        self.settings = settings
        prod = settings.is_prod
        # prod keeps its data and logs when the stack goes; dev cleans up after itself
        removal = RemovalPolicy.RETAIN if prod else RemovalPolicy.DESTROY
        retention = logs.RetentionDays.ONE_YEAR if prod else logs.RetentionDays.TWO_WEEKS
        Tags.of(self).add("Project", "Parley")
        Tags.of(self).add("Stage", settings.stage.value)

        self.data = DataTables(self, "Data", removal_policy=removal, deletion_protection=prod)
        self.media = MediaStorage(
            self,
            "Media",
            cors_origins=settings.cors_origins,
            removal_policy=removal,
            log_expiry=Duration.days(365 if prod else 30),
        )
        self.secret = SigningSecret(self, "Signing", removal_policy=removal)
        self.notifications = Notifications(
            self, "Notifications", push_platform_applications=settings.push_platform_applications
        )
        account_logging = (
            ApiGatewayAccountLogging(self, "ApiGatewayLogging")
            if settings.manage_api_gateway_account
            else None
        )
        self.websocket = WebSocketApi(
            self,
            "WebSocket",
            api_name=f"{settings.stack_name}-ws",
            stage_name=settings.stage.value,
            log_retention=retention,
            removal_policy=removal,
            account_logging=account_logging,
        )
        self.fanout = GroupFanoutQueue(
            self,
            "GroupFanout",
            function_timeout=Duration.seconds(function("GroupFanout").timeout_s),
            removal_policy=removal,
        )
        self.calls = CallRelays(
            self, "Calls", channels=settings.call_relay_channels, prefix=settings.stack_name
        )
        self.functions = Functions(
            self,
            "Functions",
            code=lambda_code(LAMBDA_SOURCE),
            resources=Resources(
                tables=self.data.by_setting,
                media=self.media,
                secret=self.secret,
                notifications=self.notifications,
                websocket=self.websocket,
                fanout=self.fanout,
                call_relays=self.calls,
                push_apps_json=settings.push_apps_json,
                limits_json=settings.limits_json,
                test_numbers_json=settings.test_numbers_json,
                sms_origination_json=settings.sms_origination_json,
            ),
            log_level=settings.log_level,
            log_retention=retention,
            removal_policy=removal,
            reserved_concurrency=settings.reserved_concurrency,
        )
        self.websocket.add_routes(self.functions.by_id)
        self.fanout.attach(self.functions.by_id["GroupFanout"])
        self.http = HttpApi(
            self,
            "Http",
            api_name=f"{settings.stack_name}-http",
            handler=self.functions.by_id["HttpApi"],
            cors_origins=settings.cors_origins,
            log_retention=retention,
            removal_policy=removal,
        )
        # last, so it sees every function, table and queue the stack has
        self.observability = Observability(
            self,
            "Observability",
            name=settings.stack_name,
            functions=self.functions.by_id,
            tables=self.data.by_setting,
            websocket_stage=self.websocket.stage,
            http_stage=self.http.stage,
            queues=queues_in(self),
            alarm_topic_arn=settings.alarm_topic_arn,
        )

        CfnOutput(self, "HttpUrl", value=self.http.url, description="HTTP API base URL")
        CfnOutput(self, "WebSocketUrl", value=self.websocket.url, description="WebSocket API URL")
        CfnOutput(self, "Region", value=Aws.REGION, description="Region of the deployment")
        if settings.test_numbers:
            # `make smoke` signs up with these (their codes come from the signing secret)
            CfnOutput(
                self,
                "TestNumbers",
                value=",".join(settings.test_numbers),
                description="Fictional numbers that sign up without SMS (dev only)",
            )
