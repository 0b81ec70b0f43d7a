"""Secrets Manager: the key that signs access tokens, generated at deploy time.

Nobody ever sees it: CloudFormation asks Secrets Manager to generate it, and
only the functions that sign or verify tokens may read it.
"""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from stacks.nag import acknowledge

__all__ = ["SigningSecret"]


class SigningSecret(Construct):
    """A 64-character random HS256 key (about 380 bits: well over the 256 HS256 wants)."""

    def __init__(self, scope: Construct, construct_id: str, *, removal_policy: RemovalPolicy):
        super().__init__(scope, construct_id)
        self.secret = secretsmanager.Secret(
            self,
            "Secret",
            description="Parley: HS256 key that signs access tokens",
            generate_secret_string=secretsmanager.SecretStringGenerator(
                password_length=64,
                exclude_punctuation=True,
                include_space=False,
            ),
            removal_policy=removal_policy,
        )
        acknowledge(
            self.secret,
            "AwsSolutions-SMG4",
            "Rotating the signing key would invalidate every live access token at once "
            "(tokens carry no key id yet); rotation needs a two-key verification "
            "window, which is planned, not automatic.",
        )

    def grant_read(self, grantee: iam.IGrantable) -> iam.Grant:
        return self.secret.grant_read(grantee)
