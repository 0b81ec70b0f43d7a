"""cdk-nag acknowledgments: every one carries the reason it is justified.

cdk-nag 3 uses CDK's own Validations API: a finding is acknowledged on the
construct it is reported on, by rule id, or by `rule[finding]` for rules that
report several findings on one resource (IAM5 names each wildcard, with
resources written as `<LogicalId>` / `<LogicalId.Arn>`).
"""

from __future__ import annotations

from aws_cdk import Acknowledgment, CfnElement, Stack, Validations
from aws_cdk import aws_iam as iam
from constructs import IConstruct

__all__ = ["PLUGIN", "acknowledge", "acknowledge_grant", "arn_of", "ref_of"]

# The validation plugin the acknowledgments are addressed to (cdk-nag's AwsSolutions pack).
PLUGIN = "AwsSolutions"


def acknowledge(construct: IConstruct, rule: str, reason: str, *findings: str) -> None:
    """Acknowledge `rule` on `construct` (only the named findings, if any are given)."""
    ids = [f"{PLUGIN}::{rule}[{finding}]" for finding in findings] or [f"{PLUGIN}::{rule}"]
    Validations.of(construct).acknowledge(*(Acknowledgment(id=i, reason=reason) for i in ids))


def acknowledge_grant(grantee: iam.IGrantable, rule: str, reason: str, *findings: str) -> None:
    """Acknowledge findings on what a grant wrote: the grantee role's default policy."""
    role = grantee.grant_principal
    if isinstance(role, iam.Role):
        acknowledge(role.node.find_child("DefaultPolicy"), rule, reason, *findings)


def _logical_id(construct: IConstruct) -> str:
    resource = construct.node.default_child
    if not isinstance(resource, CfnElement):
        raise TypeError(f"{construct.node.path} is not backed by one CloudFormation resource")
    return Stack.of(construct).get_logical_id(resource)


def ref_of(construct: IConstruct) -> str:
    """How cdk-nag writes a Ref to the construct's resource."""
    return f"<{_logical_id(construct)}>"


def arn_of(construct: IConstruct) -> str:
    """How cdk-nag writes the resource's Arn attribute."""
    return f"<{_logical_id(construct)}.Arn>"
