"""The local stack cannot drift from the CDK stack: what it actually built and
serves is compared with the synthesized template."""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from parley_server.catalogue import HTTP_ROUTES, WS_ROUTES
from parley_server.store.schema import TABLES
from tests.e2e.conftest import LocalStack


def _resources(template: dict[str, Any], resource_type: str) -> list[dict[str, Any]]:
    return [
        r.get("Properties", {})
        for r in template["Resources"].values()
        if r["Type"] == resource_type
    ]


def _keys(key_schema: list[dict[str, str]], types: dict[str, str]) -> list[list[str]]:
    return [[k["AttributeName"], k["KeyType"], types[k["AttributeName"]]] for k in key_schema]


def _shape(
    key_schema: list[dict[str, str]],
    definitions: list[dict[str, str]],
    lsis: list[dict[str, Any]],
    gsis: list[dict[str, Any]],
    ttl: str | None,
) -> str:
    """A table's keys, attribute types, indexes and TTL attribute, canonically."""
    types = {d["AttributeName"]: d["AttributeType"] for d in definitions}

    def indexes(found: list[dict[str, Any]]) -> list[Any]:
        return sorted(
            [i["IndexName"], _keys(i["KeySchema"], types), i["Projection"]["ProjectionType"]]
            for i in found
        )

    return json.dumps(
        {
            "keys": _keys(key_schema, types),
            "attributes": sorted(types.items()),
            "lsi": indexes(lsis),
            "gsi": indexes(gsis),
            "ttl": ttl,
        },
        sort_keys=True,
    )


def test_local_tables_match_the_synthesized_template(
    local_stack: LocalStack, synth_template: dict[str, Any]
) -> None:
    in_template = sorted(
        _shape(
            p["KeySchema"],
            p["AttributeDefinitions"],
            p.get("LocalSecondaryIndexes", []),
            p.get("GlobalSecondaryIndexes", []),
            p["TimeToLiveSpecification"]["AttributeName"]
            if p.get("TimeToLiveSpecification", {}).get("Enabled")
            else None,
        )
        for p in _resources(synth_template, "AWS::DynamoDB::Table")
    )
    ddb = local_stack.moto("dynamodb")
    local = []
    for name in ddb.list_tables()["TableNames"]:
        table = ddb.describe_table(TableName=name)["Table"]
        ttl = ddb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
        local.append(
            _shape(
                table["KeySchema"],
                table["AttributeDefinitions"],
                table.get("LocalSecondaryIndexes", []),
                table.get("GlobalSecondaryIndexes", []),
                ttl.get("AttributeName") if ttl["TimeToLiveStatus"] == "ENABLED" else None,
            )
        )
    assert len(local) == len(TABLES)
    assert sorted(local) == in_template


def test_local_media_bucket_cors_matches_the_template(
    local_stack: LocalStack, synth_template: dict[str, Any]
) -> None:
    rules = [
        p["CorsConfiguration"]["CorsRules"]
        for p in _resources(synth_template, "AWS::S3::Bucket")
        if "CorsConfiguration" in p
    ]
    assert len(rules) == 1
    s3 = local_stack.moto("s3")
    bucket = next(b["Name"] for b in s3.list_buckets()["Buckets"] if b["Name"].endswith("-media"))
    local = s3.get_bucket_cors(Bucket=bucket)["CORSRules"]
    assert [
        {
            "AllowedHeaders": r["AllowedHeaders"],
            "AllowedMethods": r["AllowedMethods"],
            "AllowedOrigins": r["AllowedOrigins"],
            "ExposedHeaders": r["ExposeHeaders"],
            "MaxAge": r["MaxAgeSeconds"],
        }
        for r in local
    ] == rules[0]


async def test_local_http_cors_matches_the_template(
    local_stack: LocalStack, synth_template: dict[str, Any]
) -> None:
    (cors,) = [
        p["CorsConfiguration"]
        for p in _resources(synth_template, "AWS::ApiGatewayV2::Api")
        if p.get("ProtocolType") == "HTTP"
    ]
    async with aiohttp.ClientSession() as http:
        preflight = await http.options(
            local_stack.http_url + "/v1/keys",
            headers={"Origin": "https://web.example", "Access-Control-Request-Method": "PUT"},
        )
        answer = await http.get(
            local_stack.http_url + "/v2/none", headers={"Origin": "https://web.example"}
        )
    assert preflight.status == 204
    origins = cors["AllowOrigins"]
    expected_origin = "*" if "*" in origins else "https://web.example"
    assert preflight.headers["access-control-allow-origin"] == expected_origin
    assert preflight.headers["access-control-allow-methods"].split(",") == cors["AllowMethods"]
    assert preflight.headers["access-control-allow-headers"].split(",") == cors["AllowHeaders"]
    assert int(preflight.headers["access-control-max-age"]) == cors["MaxAge"]
    assert answer.headers["access-control-expose-headers"].split(",") == cors["ExposeHeaders"]


def test_local_routes_and_authorizer_identity_match_the_template(
    synth_template: dict[str, Any],
) -> None:
    apis = {
        ref: p["ProtocolType"]
        for ref, r in synth_template["Resources"].items()
        if r["Type"] == "AWS::ApiGatewayV2::Api"
        for p in [r["Properties"]]
    }
    routes: dict[str, set[str]] = {"HTTP": set(), "WEBSOCKET": set()}
    two_way = set()
    for r in synth_template["Resources"].values():
        if r["Type"] == "AWS::ApiGatewayV2::Route":
            protocol = apis[r["Properties"]["ApiId"]["Ref"]]
            routes[protocol].add(r["Properties"]["RouteKey"])
        if r["Type"] == "AWS::ApiGatewayV2::RouteResponse":
            route_ref = r["Properties"]["RouteId"]["Ref"]
            two_way.add(synth_template["Resources"][route_ref]["Properties"]["RouteKey"])
    # the gateway serves exactly the catalogue's routes, with the same route responses
    assert routes["HTTP"] == set(HTTP_ROUTES)
    assert routes["WEBSOCKET"] == {r.route_key for r in WS_ROUTES}
    assert two_way == {r.route_key for r in WS_ROUTES if r.two_way}
    (websocket,) = [
        p
        for p in _resources(synth_template, "AWS::ApiGatewayV2::Api")
        if p["ProtocolType"] == "WEBSOCKET"
    ]
    assert websocket["RouteSelectionExpression"] == "$request.body.action"
    (authorizer,) = _resources(synth_template, "AWS::ApiGatewayV2::Authorizer")
    # local.websocket.WebSocketApi.identity_query is "token"
    assert authorizer["IdentitySource"] == ["route.request.querystring.token"]
    assert authorizer["AuthorizerType"] == "REQUEST"
