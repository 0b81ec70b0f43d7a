"""SMS: the HttpApi function may publish to phone numbers and to nothing else.

sns:Publish to a phone number has no ARN to name, so its Allow is on "*"; the
same policy denies sns:Publish on every SNS ARN, so the "*" cannot reach a topic
or a platform endpoint of the account."""

from __future__ import annotations

import re
from typing import Any

import pytest

from parley_server.catalogue import FUNCTIONS
from stacks.grants import GRANTS
from tests.infra.synthesis import TemplateView

pytestmark = pytest.mark.infra

ALLOW_SMS = {
    "Sid": "PublishSmsToPhoneNumbers",
    "Effect": "Allow",
    "Action": "sns:Publish",
    "Resource": "*",
}
DENY_SNS_ARNS = {
    "Sid": "NoPublishToTopicsOrEndpoints",
    "Effect": "Deny",
    "Action": "sns:Publish",
    "Resource": {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":sns:*:*:*"]]},
}


def _role_of(view: TemplateView, function_id: str) -> str:
    spec = next(s for s in FUNCTIONS if s.id == function_id)
    (_, function) = view.function_by_handler(spec.handler)
    role: str = function["Properties"]["Role"]["Fn::GetAtt"][0]
    return role


def _sms_policy(view: TemplateView) -> tuple[str, dict[str, Any]]:
    found = [
        (policy_id, policy)
        for policy_id, policy in view.of_type("AWS::IAM::Policy").items()
        if any(
            s.get("Sid") == ALLOW_SMS["Sid"]
            for s in policy["Properties"]["PolicyDocument"]["Statement"]
        )
    ]
    assert len(found) == 1, [policy_id for policy_id, _ in found]
    return found[0]


def _matches(pattern: str, arn: str) -> bool:
    """IAM's matching of a Resource pattern: * is any run of characters, ? any one."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, arn) is not None


def test_the_sms_policy_allows_publish_on_star_and_denies_every_sns_arn(
    synth_template: dict[str, Any],
) -> None:
    view = TemplateView(synth_template)
    (_, policy) = _sms_policy(view)
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    # the Allow is what it was; the Deny sits beside it, in the same policy
    assert statements == [ALLOW_SMS, DENY_SNS_ARNS]
    # and the policy belongs to the one function that texts codes
    assert policy["Properties"]["Roles"] == [{"Ref": _role_of(view, "HttpApi")}]


def test_the_deny_covers_topics_and_platform_endpoints_of_any_account_and_region() -> None:
    pattern = "arn:aws:sns:*:*:*"  # DENY_SNS_ARNS in the aws partition
    for arn in (
        "arn:aws:sns:us-east-1:123456789012:parley-oncall",
        "arn:aws:sns:eu-west-1:210987654321:orders.fifo",
        "arn:aws:sns:us-east-1:123456789012:endpoint/GCM/parley-fcm/5e3b0a4c-1f2d-3e4f",
        "arn:aws:sns:us-east-1:123456789012:app/APNS/parley-apns",
    ):
        assert _matches(pattern, arn), arn


def test_no_function_that_texts_codes_also_wakes_devices() -> None:
    """The Deny would refuse its push publishes too: a function given both needs its
    push grant to win, which an explicit Deny never lets happen."""
    for function_id, grants in GRANTS.items():
        if grants.send_sms:
            assert not grants.publish_push, function_id


def test_only_http_api_can_publish_sms(synth_template: dict[str, Any]) -> None:
    view = TemplateView(synth_template)
    star_publishers = {
        spec.id
        for spec in FUNCTIONS
        for statement in view.role_statements(_role_of(view, spec.id))
        if statement["Effect"] == "Allow"
        and "sns:Publish" in _as_list(statement["Action"])
        and "*" in _as_list(statement["Resource"])
    }
    assert star_publishers == {"HttpApi"}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]
