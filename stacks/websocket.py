"""API Gateway WebSocket API: the routes of parley_server.catalogue.WS_ROUTES.

$connect is guarded by a Lambda REQUEST authorizer (the WsAuthorizer
function) reading the access token from the `token` query parameter, so a bad
token is refused at the handshake. Two-way routes (send) return their
handler's body to the caller as the route response.

The API and its stage exist before the functions (whose environment needs the
stage's @connections URL); routes are added once the functions exist.
"""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import RemovalPolicy
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_apigatewayv2_authorizers as authorizers
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from parley_server.catalogue import WS_ROUTES
from stacks.access_logs import WEBSOCKET_FIELDS, AccessLogs, ApiGatewayAccountLogging
from stacks.nag import acknowledge, acknowledge_grant, ref_of

__all__ = [
    "AUTHORIZER_FUNCTION",
    "IDENTITY_SOURCE",
    "WS_THROTTLE",
    "WebSocketApi",
]

AUTHORIZER_FUNCTION = "WsAuthorizer"
IDENTITY_SOURCE = "route.request.querystring.token"
# Messages per second across the stage. A chatty user sends a few per second
# and the per-device send limit (Limits.send_rate_per_s) stops floods early;
# this is the ceiling that keeps a runaway client from running up the bill.
WS_THROTTLE = apigwv2.ThrottleSettings(rate_limit=1000, burst_limit=2000)


class WebSocketApi(Construct):
    """The API, a throttled and access-logged stage, and (later) its routes."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        api_name: str,
        stage_name: str,
        log_retention: logs.RetentionDays,
        removal_policy: RemovalPolicy,
        account_logging: ApiGatewayAccountLogging | None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.api = apigwv2.WebSocketApi(
            self,
            "Api",
            api_name=api_name,
            description="Parley messaging (WebSocket)",
            route_selection_expression="$request.body.action",
        )
        self.access_log_group = logs.LogGroup(
            self, "AccessLogs", retention=log_retention, removal_policy=removal_policy
        )
        self.stage = apigwv2.WebSocketStage(
            self,
            "Stage",
            web_socket_api=self.api,
            stage_name=stage_name,
            auto_deploy=True,
            throttle=WS_THROTTLE,
            access_log_settings=AccessLogs(self.access_log_group, WEBSOCKET_FIELDS),
        )
        if account_logging is not None:
            # the stage cannot log before the account has API Gateway's logging role
            self.stage.node.add_dependency(account_logging.account)

    @property
    def url(self) -> str:
        """wss://… : what clients connect to."""
        return self.stage.url

    @property
    def callback_url(self) -> str:
        """https://…/{stage}: the @connections endpoint handlers post to."""
        return self.stage.callback_url

    def grant_manage_connections(self, grantee: iam.IGrantable) -> iam.Grant:
        """execute-api:ManageConnections on this API's stage only."""
        grant = self.stage.grant_management_api_access(grantee)
        acknowledge_grant(
            grantee,
            "AwsSolutions-IAM5",
            "Connection ids are made by API Gateway per client at run time; the grant is "
            "limited to the @connections API of this API's one stage.",
            f"Resource::arn:<AWS::Partition>:execute-api:<AWS::Region>:<AWS::AccountId>:"
            f"{ref_of(self.api)}/{self.stage.stage_name}/*/@connections/*",
        )
        return grant

    def add_routes(self, functions: Mapping[str, lambda_.IFunction]) -> None:
        """Every route of the catalogue, each to its function."""
        authorizer = authorizers.WebSocketLambdaAuthorizer(
            "TokenAuthorizer",
            functions[AUTHORIZER_FUNCTION],
            identity_source=[IDENTITY_SOURCE],
        )
        for spec in WS_ROUTES:
            route = self.api.add_route(
                spec.route_key,
                integration=integrations.WebSocketLambdaIntegration(
                    f"{spec.function}Integration", functions[spec.function]
                ),
                authorizer=authorizer if spec.route_key == "$connect" else None,
                return_response=spec.two_way or None,
            )
            if spec.route_key != "$connect":
                acknowledge(
                    route,
                    "AwsSolutions-APIG4",
                    "WebSocket authorization happens once, at $connect (the token "
                    "authorizer); API Gateway binds its identity to the connection and "
                    "passes it to every later route.",
                )
