"""The prod stage keeps its data, and push platform applications from the
context reach exactly the functions that create endpoints or publish."""

from __future__ import annotations

import json
from typing import Any

import pytest

from parley_server.catalogue import FUNCTIONS, Setting
from tests.infra.synthesis import Synthesis

pytestmark = pytest.mark.infra

FCM = "arn:aws:sns:eu-west-1:123456789012:app/GCM/parley-fcm"
APNS = "arn:aws:sns:eu-west-1:123456789012:app/APNS/parley-apns"
CONTEXT = {
    "stage": "prod",
    # as `-c key=value` gives them: strings
    "pushPlatformApplications": json.dumps({"fcm": FCM, "apns": APNS}),
    "mediaMaxBytes": "52428800",
    "logLevel": "warning",
    # reserved for two functions, the rest unreserved (test_infra_concurrency.py)
    "reservedConcurrency": json.dumps({"WsSend": 50, "GroupFanout": 10}),
}


@pytest.fixture(scope="module")
def prod(prod_synthesis: Synthesis) -> Synthesis:
    # synthesized once per session (tests/infra/conftest.py): other modules read it too
    return prod_synthesis


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _statements_of(prod: Synthesis, function_id: str) -> list[dict[str, Any]]:
    spec = next(s for s in FUNCTIONS if s.id == function_id)
    (_, function) = prod.view.function_by_handler(spec.handler)
    return list(prod.view.role_statements(function["Properties"]["Role"]["Fn::GetAtt"][0]))


def test_prod_is_named_for_its_stage_and_passes_cdk_nag(prod: Synthesis) -> None:
    assert prod.stack_name == "Parley-prod"
    assert prod.violations == []
    (_, stage) = prod.view.one("AWS::ApiGatewayV2::Stage", StageName="prod")
    assert stage["Properties"]["AutoDeploy"] is True


def test_prod_retains_tables_buckets_secret_and_logs(prod: Synthesis) -> None:
    for resource_type in (
        "AWS::DynamoDB::Table",
        "AWS::S3::Bucket",
        "AWS::SecretsManager::Secret",
        "AWS::Logs::LogGroup",
    ):
        resources = prod.view.of_type(resource_type)
        assert resources, resource_type
        for resource_id, resource in resources.items():
            assert resource["DeletionPolicy"] == "Retain", resource_id
            assert resource["UpdateReplacePolicy"] == "Retain", resource_id
    for table in prod.view.of_type("AWS::DynamoDB::Table").values():
        assert table["Properties"]["DeletionProtectionEnabled"] is True
    # nothing deletes objects behind a retained bucket's back
    assert prod.view.of_type("Custom::S3AutoDeleteObjects") == {}


def test_prod_keeps_logs_longer(prod: Synthesis) -> None:
    for log_group_id, log_group in prod.view.of_type("AWS::Logs::LogGroup").items():
        assert log_group["Properties"]["RetentionInDays"] == 365, log_group_id


def test_context_reaches_the_functions_environment(prod: Synthesis) -> None:
    for spec in FUNCTIONS:
        (_, function) = prod.view.function_by_handler(spec.handler)
        props = function["Properties"]
        env = props["Environment"]["Variables"]
        assert env["POWERTOOLS_LOG_LEVEL"] == "WARNING"
        # Powertools filters; Lambda's filter would drop the metric lines at WARN
        assert "ApplicationLogLevel" not in props["LoggingConfig"]
        if Setting.PUSH_APPS in spec.settings:
            assert json.loads(env[Setting.PUSH_APPS.value]) == {"fcm": FCM, "apns": APNS}
        if Setting.LIMITS in spec.settings:
            assert json.loads(env[Setting.LIMITS.value]) == {"media_max_bytes": 52428800}


def test_only_http_api_creates_push_endpoints_of_the_configured_apps(prod: Synthesis) -> None:
    for spec in FUNCTIONS:
        create = [
            s
            for s in _statements_of(prod, spec.id)
            if "sns:CreatePlatformEndpoint" in _as_list(s["Action"])
        ]
        if spec.id != "HttpApi":
            assert create == [], spec.id
            continue
        (statement,) = create
        assert sorted(_as_list(statement["Resource"])) == sorted([FCM, APNS])


def test_only_send_publishes_and_only_to_endpoints_of_the_configured_apps(
    prod: Synthesis,
) -> None:
    endpoints = {
        "arn:aws:sns:eu-west-1:123456789012:endpoint/GCM/parley-fcm/*",
        "arn:aws:sns:eu-west-1:123456789012:endpoint/APNS/parley-apns/*",
    }
    publishers = {}
    for spec in FUNCTIONS:
        for statement in _statements_of(prod, spec.id):
            allows = statement["Effect"] == "Allow"
            if allows and "sns:Publish" in _as_list(statement["Action"]):
                publishers.setdefault(spec.id, set()).update(_as_list(statement["Resource"]))
    # HttpApi publishes SMS (to phone numbers: "*", every SNS ARN denied: test_infra_sms.py),
    # WsSend and GroupFanout wake devices
    assert publishers == {"HttpApi": {"*"}, "WsSend": endpoints, "GroupFanout": endpoints}
