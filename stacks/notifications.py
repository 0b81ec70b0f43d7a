"""SNS: SMS for one-time codes, and mobile push to offline devices.

CloudFormation cannot create SNS platform applications (they hold FCM/APNs
credentials), so existing ones are referenced by ARN from the CDK context;
without them push is simply off and a plain deploy still works. Each device's
platform endpoint is created at run time by the HttpApi function (PUT /v1/push).
"""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Aws
from aws_cdk import aws_iam as iam
from constructs import Construct

from stacks.nag import acknowledge, acknowledge_grant

__all__ = ["Notifications", "sns_arns"]


def sns_arns() -> str:
    """Every SNS ARN of this partition: topics and platform applications and endpoints."""
    return f"arn:{Aws.PARTITION}:sns:*:*:*"


def _endpoint_arns(app_arn: str) -> str:
    # arn:…:app/GCM/name -> arn:…:endpoint/GCM/name/* (the app's device endpoints)
    prefix, _, rest = app_arn.partition(":app/")
    return f"{prefix}:endpoint/{rest}/*"


class Notifications(Construct):
    """Grants for SMS and push; the platform application ARNs are plain settings."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        push_platform_applications: Mapping[str, str],
    ) -> None:
        super().__init__(scope, construct_id)
        self.platform_applications = dict(push_platform_applications)

    @property
    def push_enabled(self) -> bool:
        return bool(self.platform_applications)

    def grant_sms(self, function_id: str, role: iam.IRole) -> iam.Policy:
        """sns:Publish straight to phone numbers and nowhere else, in a policy of its own.

        A phone number has no ARN, so the Allow can only name "*"; that would also let
        the function publish to every topic and platform endpoint of the account, so
        the same policy denies sns:Publish on every SNS ARN (topics are
        arn:…:sns:<region>:<account>:<name>, endpoints …:endpoint/<platform>/<app>/<id>).
        An explicit Deny wins over any Allow, including a grant added later; a publish
        to a phone number names no ARN, so only it is left allowed.
        """
        policy = iam.Policy(
            self,
            f"{function_id}Sms",
            statements=[
                iam.PolicyStatement(
                    sid="PublishSmsToPhoneNumbers", actions=["sns:Publish"], resources=["*"]
                ),
                iam.PolicyStatement(
                    sid="NoPublishToTopicsOrEndpoints",
                    effect=iam.Effect.DENY,
                    actions=["sns:Publish"],
                    resources=[sns_arns()],
                ),
            ],
            roles=[role],
        )
        acknowledge(
            policy,
            "AwsSolutions-IAM5",
            "SMS is published to a phone number, which has no ARN, so IAM can only allow "
            "sns:Publish on '*'; the same policy denies sns:Publish on every SNS ARN "
            "(topics and platform endpoints), so only phone numbers remain.",
            "Resource::*",
        )
        return policy

    def grant_push_registration(self, grantee: iam.IGrantable) -> iam.Grant | None:
        """Create/refresh/delete a device's platform endpoint (PUT /v1/push)."""
        if not self.push_enabled:
            return None
        apps = sorted(self.platform_applications.values())
        iam.Grant.add_to_principal(
            grantee=grantee, actions=["sns:CreatePlatformEndpoint"], resource_arns=apps
        )
        grant = iam.Grant.add_to_principal(
            grantee=grantee,
            actions=[
                "sns:GetEndpointAttributes",
                "sns:SetEndpointAttributes",
                "sns:DeleteEndpoint",
            ],
            resource_arns=[_endpoint_arns(arn) for arn in apps],
        )
        self._acknowledge_endpoints(grantee)
        return grant

    def grant_push_publish(self, grantee: iam.IGrantable) -> iam.Grant | None:
        """Publish a content-free wake-up to the devices' endpoints."""
        if not self.push_enabled:
            return None
        grant = iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["sns:Publish"],
            resource_arns=[_endpoint_arns(a) for a in sorted(self.platform_applications.values())],
        )
        self._acknowledge_endpoints(grantee)
        return grant

    def _acknowledge_endpoints(self, grantee: iam.IGrantable) -> None:
        acknowledge_grant(
            grantee,
            "AwsSolutions-IAM5",
            "Platform endpoints are created per device at run time, so their ARNs are "
            "known only up to the configured application: "
            "arn:…:endpoint/<platform>/<application>/*.",
            *(
                f"Resource::{_endpoint_arns(arn)}"
                for arn in sorted(self.platform_applications.values())
            ),
        )
