"""The synthesized template (default context: stage dev) provisions what the
catalogue and the table schemas say, and nothing more permissive."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from parley_server.catalogue import FUNCTIONS, HTTP_ROUTES, WS_ROUTES, Setting
from parley_server.store.schema import TABLES, create_table_kwargs
from stacks.grants import GRANTS, table_actions
from stacks.media_spec import MEDIA_CORS
from tests.infra.synthesis import TemplateView

pytestmark = pytest.mark.infra

POWERTOOLS = {"POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE", "POWERTOOLS_LOG_LEVEL"}


@pytest.fixture(scope="module")
def view(synth_template: dict[str, Any]) -> TemplateView:
    return TemplateView(synth_template)


def _function_ids(view: TemplateView) -> dict[str, str]:
    """catalogue function id -> logical id (found by its handler)."""
    return {spec.id: view.function_by_handler(spec.handler)[0] for spec in FUNCTIONS}


def _table_ids(view: TemplateView) -> dict[Setting, str]:
    """table setting -> logical id, read from the functions' environments."""
    found: dict[Setting, str] = {}
    for spec in FUNCTIONS:
        env = view.function_by_handler(spec.handler)[1]["Properties"]["Environment"]["Variables"]
        for table in TABLES:
            if table.setting.value in env:
                ref = env[table.setting.value]["Ref"]
                assert found.setdefault(table.setting, ref) == ref, "two tables for one setting"
    return found


def _ref_target(value: Any) -> str | None:
    """The logical id behind {"Ref": x} or {"Fn::GetAtt": [x, ...]}."""
    if isinstance(value, dict) and "Ref" in value:
        return str(value["Ref"])
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        return str(value["Fn::GetAtt"][0])
    return None


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


# -- tables --------------------------------------------------------------


def test_every_table_has_the_keys_indexes_and_ttl_of_its_schema_spec(view: TemplateView) -> None:
    table_ids = _table_ids(view)
    assert set(table_ids) == {t.setting for t in TABLES}
    assert len(view.of_type("AWS::DynamoDB::Table")) == len(TABLES)
    for spec in TABLES:
        props = view.resources[table_ids[spec.setting]]["Properties"]
        want = create_table_kwargs(spec, "any")
        assert props["KeySchema"] == want["KeySchema"], spec.id
        assert sorted(props["AttributeDefinitions"], key=str) == sorted(
            want["AttributeDefinitions"], key=str
        ), spec.id
        for kind in ("LocalSecondaryIndexes", "GlobalSecondaryIndexes"):
            assert props.get(kind, []) == want.get(kind, []), (spec.id, kind)
        if spec.ttl_attribute:
            assert props["TimeToLiveSpecification"] == {
                "AttributeName": "expires_at",
                "Enabled": True,
            }
        else:
            assert "TimeToLiveSpecification" not in props


def test_tables_are_on_demand_encrypted_and_recoverable(view: TemplateView) -> None:
    for table_id, table in view.of_type("AWS::DynamoDB::Table").items():
        props = table["Properties"]
        assert props["BillingMode"] == "PAY_PER_REQUEST", table_id
        assert props["SSESpecification"] == {"SSEEnabled": True}, table_id
        assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}


def test_tables_that_expire_items_are_the_ones_the_design_says(view: TemplateView) -> None:
    table_ids = _table_ids(view)
    with_ttl = {
        setting
        for setting, table_id in table_ids.items()
        if "TimeToLiveSpecification" in view.resources[table_id]["Properties"]
    }
    assert with_ttl == {
        Setting.USERS_TABLE,  # refresh tokens and families
        Setting.CONNECTIONS_TABLE,
        Setting.MAILBOX_TABLE,
        Setting.OTP_TABLE,
        Setting.RATELIMITS_TABLE,
    }


# -- functions -----------------------------------------------------------


def test_each_function_environment_is_exactly_its_catalogue_settings(view: TemplateView) -> None:
    for spec in FUNCTIONS:
        env = view.function_by_handler(spec.handler)[1]["Properties"]["Environment"]["Variables"]
        assert set(env) == {s.value for s in spec.settings} | POWERTOOLS, spec.id
        assert env["POWERTOOLS_SERVICE_NAME"] == "parley"
        assert env["POWERTOOLS_METRICS_NAMESPACE"] == "Parley"
        assert env["POWERTOOLS_LOG_LEVEL"] == "INFO"


def test_settings_point_at_the_resources_they_name(view: TemplateView) -> None:
    (bucket_id, _) = view.one("AWS::S3::Bucket", LoggingConfiguration=_any_logging(view))
    (secret_id, _) = next(iter(view.of_type("AWS::SecretsManager::Secret").items()))
    (ws_api_id, _) = view.one("AWS::ApiGatewayV2::Api", ProtocolType="WEBSOCKET")
    for spec in FUNCTIONS:
        env = view.function_by_handler(spec.handler)[1]["Properties"]["Environment"]["Variables"]
        if Setting.MEDIA_BUCKET in spec.settings:
            assert env[Setting.MEDIA_BUCKET.value] == {"Ref": bucket_id}
        if Setting.SIGNING_SECRET_ARN in spec.settings:
            assert env[Setting.SIGNING_SECRET_ARN.value] == {"Ref": secret_id}
        if Setting.WS_ENDPOINT in spec.settings:
            parts = env[Setting.WS_ENDPOINT.value]["Fn::Join"][1]
            assert parts[0] == "https://"
            assert parts[1] == {"Ref": ws_api_id}
            assert parts[-1] == "/dev"  # the stage's @connections endpoint
        if Setting.PUSH_APPS in spec.settings:
            assert env[Setting.PUSH_APPS.value] == "{}"
        if Setting.LIMITS in spec.settings:
            assert json.loads(env[Setting.LIMITS.value]) == {"media_max_bytes": 100 * 1024**2}


def _any_logging(view: TemplateView) -> Any:
    # the media bucket is the one that logs its access (into the log bucket)
    logging = [
        b["Properties"]["LoggingConfiguration"]
        for b in view.of_type("AWS::S3::Bucket").values()
        if "LoggingConfiguration" in b["Properties"]
    ]
    assert len(logging) == 1
    return logging[0]


def test_functions_run_python_313_on_arm64_traced_with_json_logs(view: TemplateView) -> None:
    log_groups = view.of_type("AWS::Logs::LogGroup")
    for spec in FUNCTIONS:
        props = view.function_by_handler(spec.handler)[1]["Properties"]
        assert props["Runtime"] == "python3.13", spec.id
        assert props["Architectures"] == ["arm64"], spec.id
        assert props["TracingConfig"] == {"Mode": "Active"}, spec.id
        # Lambda's level filter off (Text); Powertools writes the JSON lines itself
        assert props["LoggingConfig"]["LogFormat"] == "Text", spec.id
        assert props["MemorySize"] == spec.memory_mb, spec.id
        assert props["Timeout"] == spec.timeout_s, spec.id
        log_group = log_groups[props["LoggingConfig"]["LogGroup"]["Ref"]]
        assert log_group["Properties"]["RetentionInDays"] == 14, spec.id


def test_every_function_runs_the_one_shared_asset(view: TemplateView) -> None:
    ours = [view.function_by_handler(spec.handler)[1] for spec in FUNCTIONS]
    assert len({json.dumps(f["Properties"]["Code"], sort_keys=True) for f in ours}) == 1


# -- least privilege -----------------------------------------------------


def test_no_policy_allows_every_action_of_a_service(view: TemplateView) -> None:
    for owner, statement in view.all_statements():
        if statement["Effect"] != "Allow":
            continue
        for action in _as_list(statement["Action"]):
            assert action != "*", owner
            assert not action.endswith(":*"), (owner, action)


def test_only_xray_and_sms_are_allowed_on_every_resource(view: TemplateView) -> None:
    allowed_on_star = {"xray:PutTraceSegments", "xray:PutTelemetryRecords", "sns:Publish"}
    for owner, statement in view.all_statements():
        if statement["Effect"] == "Allow" and "*" in _as_list(statement["Resource"]):
            assert set(_as_list(statement["Action"])) <= allowed_on_star, owner
            if "sns:Publish" in _as_list(statement["Action"]):
                # SMS sits in a policy of its own, beside only the Deny that keeps it off
                # every topic and endpoint (test_infra_sms.py), given to the HttpApi role only
                policy = view.resources[owner]
                assert policy["Type"] == "AWS::IAM::Policy"
                (allow, deny) = policy["Properties"]["PolicyDocument"]["Statement"]
                assert allow == statement
                assert (deny["Effect"], deny["Action"]) == ("Deny", "sns:Publish")
                http_role = _role_of(view, "HttpApi")
                assert policy["Properties"]["Roles"] == [{"Ref": http_role}]


def test_no_function_may_scan_a_table(view: TemplateView) -> None:
    for owner, statement in view.all_statements():
        assert "dynamodb:Scan" not in _as_list(statement["Action"]), owner


def _role_of(view: TemplateView, function_id: str) -> str:
    spec = next(s for s in FUNCTIONS if s.id == function_id)
    role = view.function_by_handler(spec.handler)[1]["Properties"]["Role"]
    return str(role["Fn::GetAtt"][0])


def _dynamodb_actions(view: TemplateView, role_id: str) -> dict[str, set[str]]:
    """table logical id -> DynamoDB actions the role has on the table itself."""
    actions: dict[str, set[str]] = {}
    for statement in view.role_statements(role_id):
        dynamo = {a for a in _as_list(statement["Action"]) if a.startswith("dynamodb:")}
        if not dynamo:
            continue
        for resource in _as_list(statement["Resource"]):
            target = _ref_target(resource)
            if target is not None:  # index ARNs (Fn::Join) follow their table
                actions.setdefault(target, set()).update(dynamo)
    return actions


def test_each_function_has_exactly_its_granted_table_operations(view: TemplateView) -> None:
    table_ids = _table_ids(view)
    for spec in FUNCTIONS:
        have = _dynamodb_actions(view, _role_of(view, spec.id))
        want = {
            table_ids[setting]: set(table_actions(ops))
            for setting, ops in GRANTS[spec.id].tables.items()
        }
        assert have == want, spec.id


def test_sync_only_reads_the_mailbox_and_ack_deletes_from_it(view: TemplateView) -> None:
    mailbox = _table_ids(view)[Setting.MAILBOX_TABLE]
    sync = _dynamodb_actions(view, _role_of(view, "WsSync"))[mailbox]
    ack = _dynamodb_actions(view, _role_of(view, "WsAck"))[mailbox]
    assert "dynamodb:Query" in sync
    assert not sync & {"dynamodb:PutItem", "dynamodb:DeleteItem", "dynamodb:UpdateItem"}
    assert {"dynamodb:DeleteItem", "dynamodb:PutItem"} <= ack


def test_the_authorizer_reads_only_users_and_the_secret(view: TemplateView) -> None:
    table_ids = _table_ids(view)
    (secret_id, _) = next(iter(view.of_type("AWS::SecretsManager::Secret").items()))
    statements = list(view.role_statements(_role_of(view, "WsAuthorizer")))
    touched = {
        _ref_target(r) for s in statements for r in _as_list(s["Resource"]) if _ref_target(r)
    }
    logs = {t for t in touched if view.resources[t]["Type"] == "AWS::Logs::LogGroup"}
    assert touched - logs == {table_ids[Setting.USERS_TABLE], secret_id}
    actions = {a for s in statements for a in _as_list(s["Action"])}
    assert not {a for a in actions if a.startswith("dynamodb:")} & {
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "dynamodb:BatchWriteItem",
    }


def test_manage_connections_is_granted_on_this_stage_only_to_functions_that_post(
    view: TemplateView,
) -> None:
    (ws_api_id, _) = view.one("AWS::ApiGatewayV2::Api", ProtocolType="WEBSOCKET")
    for spec in FUNCTIONS:
        statements = [
            s
            for s in view.role_statements(_role_of(view, spec.id))
            if "execute-api:ManageConnections" in _as_list(s["Action"])
        ]
        if Setting.WS_ENDPOINT not in spec.settings:
            assert statements == [], spec.id
            continue
        assert len(statements) == 1, spec.id
        parts = statements[0]["Resource"]["Fn::Join"][1]
        assert {"Ref": ws_api_id} in parts
        assert parts[-1] == "/dev/*/@connections/*"


def test_media_access_is_limited_to_the_object_prefix_and_to_the_http_function(
    view: TemplateView,
) -> None:
    for spec in FUNCTIONS:
        s3_statements = [
            s
            for s in view.role_statements(_role_of(view, spec.id))
            if any(a.startswith("s3:") for a in _as_list(s["Action"]))
        ]
        if spec.id != "HttpApi":
            assert s3_statements == [], spec.id
            continue
        actions = {a for s in s3_statements for a in _as_list(s["Action"])}
        # DeleteObject: an account's media goes with the account
        assert actions == {"s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:ListBucket"}
        for statement in s3_statements:
            for resource in _as_list(statement["Resource"]):
                if "s3:ListBucket" in _as_list(statement["Action"]):
                    assert "Fn::GetAtt" in resource  # the bucket itself
                else:
                    assert resource["Fn::Join"][1][-1] == "/m/*"


def test_the_signing_secret_is_generated_at_deploy_and_read_only_by_token_functions(
    view: TemplateView,
) -> None:
    ((secret_id, secret),) = view.of_type("AWS::SecretsManager::Secret").items()
    assert "GenerateSecretString" in secret["Properties"]
    assert "SecretString" not in secret["Properties"]
    readers = {
        spec.id
        for spec in FUNCTIONS
        if any(
            _ref_target(r) == secret_id
            for s in view.role_statements(_role_of(view, spec.id))
            for r in _as_list(s["Resource"])
        )
    }
    assert readers == {"HttpApi", "WsAuthorizer"}


def test_without_push_apps_no_function_may_touch_sns_endpoints(view: TemplateView) -> None:
    for owner, statement in view.all_statements():
        actions = set(_as_list(statement["Action"]))
        assert not actions & {"sns:CreatePlatformEndpoint", "sns:DeleteEndpoint"}, owner


# -- media bucket --------------------------------------------------------


def _media_bucket(view: TemplateView) -> tuple[str, dict[str, Any]]:
    return view.one("AWS::S3::Bucket", LoggingConfiguration=_any_logging(view))


def test_buckets_block_public_access_and_are_encrypted(view: TemplateView) -> None:
    buckets = view.of_type("AWS::S3::Bucket")
    assert len(buckets) == 2  # media + its access logs
    for bucket_id, bucket in buckets.items():
        props = bucket["Properties"]
        assert props["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        }, bucket_id
        rule = props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
        assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256", bucket_id


def test_bucket_policies_refuse_anything_but_tls(view: TemplateView) -> None:
    policies = view.of_type("AWS::S3::BucketPolicy")
    for bucket_id in view.of_type("AWS::S3::Bucket"):
        (policy,) = [
            p for p in policies.values() if p["Properties"]["Bucket"] == {"Ref": bucket_id}
        ]
        statements = policy["Properties"]["PolicyDocument"]["Statement"]
        assert {
            "Action": "s3:*",
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            "Effect": "Deny",
            "Principal": {"AWS": "*"},
            "Resource": [
                {"Fn::GetAtt": [bucket_id, "Arn"]},
                {"Fn::Join": ["", [{"Fn::GetAtt": [bucket_id, "Arn"]}, "/*"]]},
            ],
        } in statements
        assert not any(
            s["Effect"] == "Allow" and s.get("Principal") in ("*", {"AWS": "*"}) for s in statements
        )


def test_media_expires_after_30_days_and_abandoned_uploads_after_one(view: TemplateView) -> None:
    (_, bucket) = _media_bucket(view)
    (rule,) = bucket["Properties"]["LifecycleConfiguration"]["Rules"]
    assert rule["Status"] == "Enabled"
    assert rule["ExpirationInDays"] == 30
    assert rule["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}
    assert "Prefix" not in rule
    assert "Filter" not in rule


def test_media_cors_allows_presigned_post_and_get_from_browsers(view: TemplateView) -> None:
    (_, bucket) = _media_bucket(view)
    (rule,) = bucket["Properties"]["CorsConfiguration"]["CorsRules"]
    assert {"POST", "GET"} <= set(rule["AllowedMethods"])
    assert not {"PUT", "DELETE"} & set(rule["AllowedMethods"])
    assert rule["AllowedOrigins"] == ["*"]
    # the local stack configures its bucket from the same spec
    local = MEDIA_CORS.s3_rule(["*"])
    assert rule == {
        "AllowedMethods": local["AllowedMethods"],
        "AllowedOrigins": local["AllowedOrigins"],
        "AllowedHeaders": local["AllowedHeaders"],
        "ExposedHeaders": local["ExposeHeaders"],
        "MaxAge": local["MaxAgeSeconds"],
    }


# -- WebSocket API -------------------------------------------------------


def _routes(view: TemplateView, api_id: str) -> dict[str, dict[str, Any]]:
    return {
        r["Properties"]["RouteKey"]: r | {"Id": k}
        for k, r in view.of_type("AWS::ApiGatewayV2::Route").items()
        if r["Properties"]["ApiId"] == {"Ref": api_id}
    }


def _integration_function(view: TemplateView, route: dict[str, Any]) -> str:
    integration_id = route["Properties"]["Target"]["Fn::Join"][1][1]["Ref"]
    uri = view.resources[integration_id]["Properties"]["IntegrationUri"]
    if "Fn::GetAtt" in uri:
        return str(uri["Fn::GetAtt"][0])
    (getatt,) = [p for p in uri["Fn::Join"][1] if isinstance(p, dict) and "Fn::GetAtt" in p]
    return str(getatt["Fn::GetAtt"][0])


def test_websocket_routes_are_the_catalogue_routes_each_to_its_function(
    view: TemplateView,
) -> None:
    (api_id, api) = view.one("AWS::ApiGatewayV2::Api", ProtocolType="WEBSOCKET")
    assert api["Properties"]["RouteSelectionExpression"] == "$request.body.action"
    routes = _routes(view, api_id)
    assert set(routes) == {r.route_key for r in WS_ROUTES}
    functions = _function_ids(view)
    for spec in WS_ROUTES:
        assert _integration_function(view, routes[spec.route_key]) == functions[spec.function]


def test_connect_is_guarded_by_the_token_authorizer_reading_the_query_string(
    view: TemplateView,
) -> None:
    (api_id, _) = view.one("AWS::ApiGatewayV2::Api", ProtocolType="WEBSOCKET")
    ((authorizer_id, authorizer),) = view.of_type("AWS::ApiGatewayV2::Authorizer").items()
    props = authorizer["Properties"]
    assert props["AuthorizerType"] == "REQUEST"
    assert props["IdentitySource"] == ["route.request.querystring.token"]
    uri_parts = props["AuthorizerUri"]["Fn::Join"][1]
    assert {"Fn::GetAtt": [_function_ids(view)["WsAuthorizer"], "Arn"]} in uri_parts
    routes = _routes(view, api_id)
    assert routes["$connect"]["Properties"]["AuthorizationType"] == "CUSTOM"
    assert routes["$connect"]["Properties"]["AuthorizerId"] == {"Ref": authorizer_id}
    for key, route in routes.items():
        if key != "$connect":
            assert route["Properties"]["AuthorizationType"] == "NONE", key


def test_only_send_returns_a_route_response(view: TemplateView) -> None:
    (api_id, _) = view.one("AWS::ApiGatewayV2::Api", ProtocolType="WEBSOCKET")
    routes = _routes(view, api_id)
    responses = view.of_type("AWS::ApiGatewayV2::RouteResponse").values()
    with_response = {
        key
        for key, route in routes.items()
        if any(r["Properties"]["RouteId"] == {"Ref": route["Id"]} for r in responses)
    }
    assert with_response == {r.route_key for r in WS_ROUTES if r.two_way} == {"send"}
    send = routes["send"]["Properties"]
    assert send["RouteResponseSelectionExpression"] == "$default"
    for key, route in routes.items():
        if key != "send":
            assert "RouteResponseSelectionExpression" not in route["Properties"], key


def test_stages_are_throttled_and_access_logged(view: TemplateView) -> None:
    stages = view.of_type("AWS::ApiGatewayV2::Stage")
    assert len(stages) == 2
    for stage_id, stage in stages.items():
        props = stage["Properties"]
        settings = props["DefaultRouteSettings"]
        assert settings["ThrottlingRateLimit"] > 0
        assert settings["ThrottlingBurstLimit"] > 0
        assert "DestinationArn" in props["AccessLogSettings"], stage_id
        log_format = json.loads(props["AccessLogSettings"]["Format"])
        assert "$context.requestId" in log_format.values()
        assert not any("querystring" in v.lower() for v in log_format.values())  # the token


def test_websocket_stage_waits_for_the_account_logging_role(view: TemplateView) -> None:
    (_stage_id, stage) = view.one("AWS::ApiGatewayV2::Stage", StageName="dev")
    ((account_id, account),) = view.of_type("AWS::ApiGateway::Account").items()
    assert account_id in stage["DependsOn"]
    # an account setting outlives any one stack
    assert account["DeletionPolicy"] == "Retain"


# -- HTTP API ------------------------------------------------------------


def test_http_routes_are_the_catalogue_routes_all_to_the_http_function(
    view: TemplateView,
) -> None:
    (api_id, api) = view.one("AWS::ApiGatewayV2::Api", ProtocolType="HTTP")
    routes = _routes(view, api_id)
    assert set(routes) == set(HTTP_ROUTES)
    http_function = _function_ids(view)["HttpApi"]
    for route in routes.values():
        assert _integration_function(view, route) == http_function
    cors = api["Properties"]["CorsConfiguration"]
    assert {"authorization", "content-type"} <= set(cors["AllowHeaders"])
    assert set(cors["AllowMethods"]) == {r.split(" ")[0] for r in HTTP_ROUTES}


def test_http_integration_uses_payload_format_2(view: TemplateView) -> None:
    (api_id, _) = view.one("AWS::ApiGatewayV2::Api", ProtocolType="HTTP")
    for integration in view.of_type("AWS::ApiGatewayV2::Integration").values():
        if integration["Properties"]["ApiId"] == {"Ref": api_id}:
            assert integration["Properties"]["PayloadFormatVersion"] == "2.0"


# -- outputs -------------------------------------------------------------


def test_outputs_give_the_http_url_websocket_url_and_region(
    synth_template: dict[str, Any], view: TemplateView
) -> None:
    outputs = synth_template["Outputs"]
    assert set(outputs) == {"HttpUrl", "WebSocketUrl", "Region"}
    (http_id, _) = view.one("AWS::ApiGatewayV2::Api", ProtocolType="HTTP")
    (ws_id, _) = view.one("AWS::ApiGatewayV2::Api", ProtocolType="WEBSOCKET")
    http = outputs["HttpUrl"]["Value"]["Fn::Join"][1]
    assert http[0] == "https://"
    assert http[1] == {"Ref": http_id}
    ws = outputs["WebSocketUrl"]["Value"]["Fn::Join"][1]
    assert ws[0] == "wss://"
    assert ws[1] == {"Ref": ws_id}
    assert ws[-1] == "/dev"
    assert outputs["Region"]["Value"] == {"Ref": "AWS::Region"}


def test_dev_stage_cleans_up_after_itself(view: TemplateView) -> None:
    for resource_type in ("AWS::DynamoDB::Table", "AWS::S3::Bucket", "AWS::Logs::LogGroup"):
        for resource_id, resource in view.of_type(resource_type).items():
            assert resource.get("DeletionPolicy") == "Delete", resource_id
    for table in view.of_type("AWS::DynamoDB::Table").values():
        assert table["Properties"]["DeletionProtectionEnabled"] is False


def _references(node: Any, names: set[str], found: set[str]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and value in names:
                found.add(value)
            elif key == "Fn::GetAtt":
                target = value[0] if isinstance(value, list) else str(value).split(".")[0]
                if target in names:
                    found.add(target)
            elif key == "Fn::Sub":
                text = value if isinstance(value, str) else value[0]
                found.update(n for n in re.findall(r"\$\{([^}.!]+)", text) if n in names)
                _references(value, names, found)
            else:
                _references(value, names, found)
    elif isinstance(node, list):
        for item in node:
            _references(item, names, found)


def test_no_resource_depends_on_itself_through_others(synth_template: dict[str, Any]) -> None:
    """CloudFormation refuses a template with a dependency cycle, and only at deploy
    time; functions that reach the WebSocket API (HttpApi closes connections) must
    not be needed by it in turn."""
    resources = synth_template["Resources"]
    names = set(resources)
    graph: dict[str, set[str]] = {}
    for name, resource in resources.items():
        found: set[str] = set()
        _references({k: v for k, v in resource.items() if k != "DependsOn"}, names, found)
        depends = resource.get("DependsOn", [])
        found.update([depends] if isinstance(depends, str) else depends)
        graph[name] = found
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in path:
            raise AssertionError(" -> ".join((*path[path.index(name) :], name)))
        if name in done:
            return
        for needed in graph[name]:
            visit(needed, (*path, name))
        done.add(name)

    assert len(graph) > 100
    for name in graph:
        visit(name, ())
