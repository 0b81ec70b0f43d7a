"""API Gateway access logs: a JSON line per request into a log group of ours.

WebSocket stages can only log once the account has an API Gateway CloudWatch
role; ApiGatewayAccountLogging sets one up (or leaves an existing one alone).
Nothing logged here carries a token: the WebSocket token travels in the
query string, and no query string is logged.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import jsii
from aws_cdk import RemovalPolicy
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from constructs import Construct

from stacks.nag import acknowledge

__all__ = ["HTTP_FIELDS", "WEBSOCKET_FIELDS", "AccessLogs", "ApiGatewayAccountLogging"]

HTTP_FIELDS: Mapping[str, str] = {
    "requestId": "$context.requestId",
    "time": "$context.requestTimeEpoch",
    "ip": "$context.identity.sourceIp",
    "route": "$context.routeKey",
    "status": "$context.status",
    "latencyMs": "$context.responseLatency",
    "responseLength": "$context.responseLength",
    "integrationError": "$context.integrationErrorMessage",
}
WEBSOCKET_FIELDS: Mapping[str, str] = {
    "requestId": "$context.requestId",
    "time": "$context.requestTimeEpoch",
    "ip": "$context.identity.sourceIp",
    "connectionId": "$context.connectionId",
    "eventType": "$context.eventType",
    "route": "$context.routeKey",
    "status": "$context.status",
    "authorizerError": "$context.authorizer.error",
    "integrationLatencyMs": "$context.integrationLatency",
    "error": "$context.error.message",
}


@jsii.implements(apigwv2.IAccessLogSettings)
class AccessLogs:
    """Access log settings for an HTTP or WebSocket stage."""

    def __init__(self, log_group: logs.ILogGroup, fields: Mapping[str, str]) -> None:
        self._destination = apigwv2.LogGroupLogDestination(log_group)
        self._format = apigw.AccessLogFormat.custom(json.dumps(dict(fields)))

    @property
    def destination(self) -> apigwv2.IAccessLogDestination:
        return self._destination

    @property
    def format(self) -> apigw.AccessLogFormat:
        return self._format


class ApiGatewayAccountLogging(Construct):
    """The account-wide role API Gateway needs to write WebSocket/REST logs.

    It is an account setting, not a resource of this stack: both the role and
    the setting are retained when the stack goes, so deleting one Parley stack
    never breaks logging for another API in the account.
    """

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("apigateway.amazonaws.com"),
            description="API Gateway: writes API logs to CloudWatch Logs (account setting)",
            managed_policies=[
                iam.ManagedPolicy.from_aws_managed_policy_name(
                    "service-role/AmazonAPIGatewayPushToCloudWatchLogs"
                )
            ],
        )
        self.role.apply_removal_policy(RemovalPolicy.RETAIN)
        acknowledge(
            self.role,
            "AwsSolutions-IAM4",
            "API Gateway's account-wide logging role must write to the log groups of "
            "every API in the account; AWS maintains exactly that permission set in "
            "AmazonAPIGatewayPushToCloudWatchLogs.",
            "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
            "AmazonAPIGatewayPushToCloudWatchLogs",
        )
        self.account = apigw.CfnAccount(self, "Account", cloud_watch_role_arn=self.role.role_arn)
        self.account.apply_removal_policy(RemovalPolicy.RETAIN)
