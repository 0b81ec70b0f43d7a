"""API Gateway HTTP API: every route of parley_server.catalogue.HTTP_ROUTES,
all served by the HttpApi function (Powertools resolver), with CORS for
browser clients, a throttled $default stage and JSON access logs.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from parley_server.catalogue import HTTP_ROUTES
from stacks.access_logs import HTTP_FIELDS, AccessLogs
from stacks.nag import acknowledge

__all__ = ["CORS_HEADERS", "HTTP_THROTTLE", "HttpApi", "route_methods"]

# Requests per second across the API: signup, key fetches and media URLs are
# occasional per user; the OTP and lookup routes have their own per-caller limits.
HTTP_THROTTLE = apigwv2.ThrottleSettings(rate_limit=200, burst_limit=400)
CORS_HEADERS = ("authorization", "content-type")


def route_methods(routes: Sequence[str] = HTTP_ROUTES) -> list[str]:
    """The HTTP methods the routes use, for CORS preflight answers."""
    return sorted({route.split(" ", 1)[0] for route in routes})


class HttpApi(Construct):
    """The API, its stage and its routes, all to one function."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        api_name: str,
        handler: lambda_.IFunction,
        cors_origins: Sequence[str],
        log_retention: logs.RetentionDays,
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        self.api = apigwv2.HttpApi(
            self,
            "Api",
            api_name=api_name,
            description="Parley accounts, keys, directory, media and groups (HTTP)",
            create_default_stage=False,
            cors_preflight=apigwv2.CorsPreflightOptions(
                allow_origins=list(cors_origins),
                allow_methods=[apigwv2.CorsHttpMethod(m) for m in route_methods()],
                allow_headers=list(CORS_HEADERS),
                # 429 answers tell the client when to come back
                expose_headers=["retry-after"],
                max_age=Duration.hours(1),
            ),
        )
        self.access_log_group = logs.LogGroup(
            self, "AccessLogs", retention=log_retention, removal_policy=removal_policy
        )
        self.stage = apigwv2.HttpStage(
            self,
            "Stage",
            http_api=self.api,
            stage_name="$default",
            auto_deploy=True,
            throttle=HTTP_THROTTLE,
            access_log_settings=AccessLogs(self.access_log_group, HTTP_FIELDS),
        )
        integration = integrations.HttpLambdaIntegration(
            "Integration",
            handler,
            payload_format_version=apigwv2.PayloadFormatVersion.VERSION_2_0,
        )
        for route_key in HTTP_ROUTES:
            method, path = route_key.split(" ", 1)
            for route in self.api.add_routes(
                path=path, methods=[apigwv2.HttpMethod(method)], integration=integration
            ):
                acknowledge(
                    route,
                    "AwsSolutions-APIG4",
                    "Signup and token refresh must be reachable without a token; every "
                    "other route verifies the bearer token in the function (the same "
                    "verifier as the WebSocket authorizer).",
                )

    @property
    def url(self) -> str:
        """https://{api}.execute-api.{region}.amazonaws.com/"""
        url = self.stage.url
        assert url is not None  # a stage of an API with an execute-api endpoint has one
        return url
