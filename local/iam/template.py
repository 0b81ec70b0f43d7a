"""Each function's IAM policy as the CDK app synthesizes it, made concrete for
the resources of the local stack (or of the tests' moto).

`extract(template)` keeps what enforcement needs from a synthesized
CloudFormation template: for each function of the catalogue, the statements of
every policy attached to its role (still holding Ref / Fn::GetAtt / Fn::Join),
the environment variables that name resources, and the type of every resource
those refer to. The extract is committed as local/iam/policies.json, so
`make serve` needs neither Node nor a synthesis; a test holds it equal to the
extract of a fresh synthesis (`make iam-policies` writes it anew).

`resolve(extract, settings, …)` turns it into one `Policy` per function: a
resource's logical id is matched to the setting that names it (a function's
environment says `PARLEY_USERS_TABLE: {"Ref": "DataUsers…"}`), and the ARN is
built from the local resource's name as AWS would build it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from local.iam.policy import Policy, PolicyError
from parley_server.catalogue import FUNCTIONS, Setting

__all__ = [
    "LOCAL_API_ID",
    "LOCAL_CONTEXT",
    "SNAPSHOT",
    "FunctionPolicies",
    "extract",
    "load_snapshot",
    "resolve",
]

SNAPSHOT = Path(__file__).resolve().parent / "policies.json"
ACCOUNT_ID = "123456789012"  # moto's default account, the local stack's
# The WebSocket API's id as the local stack's ARNs spell it.
LOCAL_API_ID = "local"
# The context the snapshot is synthesized with: the dev stage, with push on
# (the platform applications the local stack creates, local/resources.py).
LOCAL_CONTEXT: dict[str, Any] = {
    "pushPlatformApplications": {
        "fcm": f"arn:aws:sns:us-east-1:{ACCOUNT_ID}:app/GCM/parley-local-fcm",
        "apns": f"arn:aws:sns:us-east-1:{ACCOUNT_ID}:app/APNS/parley-local-apns",
    },
}
_SNAPSHOT_SNS_PREFIX = f"arn:aws:sns:us-east-1:{ACCOUNT_ID}:"
# AWS managed policies a function role may carry that grant nothing the
# handlers call through boto3 (logs and traces leave through the runtime).
_HARMLESS_MANAGED = (
    "service-role/AWSLambdaBasicExecutionRole",
    "AWSXRayDaemonWriteAccess",
)


def _policy_statements(resources: Mapping[str, Any], role_id: str) -> Iterator[Any]:
    role = resources[role_id]
    for managed in role["Properties"].get("ManagedPolicyArns", []):
        text = json.dumps(managed)
        if not any(name in text for name in _HARMLESS_MANAGED):
            raise PolicyError(f"{role_id}: managed policy {text} cannot be evaluated locally")
    for policy in role["Properties"].get("Policies", []):
        yield from policy["PolicyDocument"]["Statement"]
    for resource in resources.values():
        if resource["Type"] != "AWS::IAM::Policy":
            continue
        if {"Ref": role_id} in resource["Properties"].get("Roles", []):
            yield from resource["Properties"]["PolicyDocument"]["Statement"]


def _references(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        if "Ref" in value and isinstance(value["Ref"], str):
            yield value["Ref"]
        if "Fn::GetAtt" in value:
            yield value["Fn::GetAtt"][0]
        for inner in value.values():
            yield from _references(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from _references(inner)


def extract(template: Mapping[str, Any]) -> dict[str, Any]:
    """What enforcement needs of a synthesized template (see the module's text)."""
    resources: Mapping[str, Any] = template["Resources"]
    settings = {setting.value for setting in Setting}
    functions: dict[str, Any] = {}
    for spec in FUNCTIONS:
        found = [
            r
            for r in resources.values()
            if r["Type"] == "AWS::Lambda::Function" and r["Properties"]["Handler"] == spec.handler
        ]
        if len(found) != 1:
            raise PolicyError(f"{spec.id}: {len(found)} functions with handler {spec.handler}")
        properties = found[0]["Properties"]
        role_id = properties["Role"]["Fn::GetAtt"][0]
        variables = properties.get("Environment", {}).get("Variables", {})
        functions[spec.id] = {
            "environment": {k: v for k, v in sorted(variables.items()) if k in settings},
            "statements": list(_policy_statements(resources, role_id)),
        }
    referenced = sorted(set(_references(functions)) - {"AWS::Region", "AWS::AccountId"})
    kinds = {
        ref: resources[ref]["Type"]
        for ref in referenced
        if ref in resources  # pseudo parameters (AWS::Partition, …) are not resources
    }
    return {"functions": functions, "resources": kinds}


def load_snapshot(path: Path = SNAPSHOT) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    data.pop("about", None)
    return data


@dataclass(frozen=True)
class FunctionPolicies:
    """Each function's policy over concrete ARNs, and where @connections lives."""

    policies: Mapping[str, Policy]
    region: str
    account_id: str
    # arn:aws:execute-api:<region>:<account>:<api id>/<stage> of the WebSocket API
    connections_api_arn: str

    def policy(self, function_id: str) -> Policy:
        return self.policies[function_id]


class _Resolver:
    def __init__(
        self,
        kinds: Mapping[str, str],
        refs: Mapping[str, str],
        region: str,
        account_id: str,
        arns: Mapping[str, str] | None = None,
    ) -> None:
        self.kinds = kinds
        self.refs = refs
        self.region = region
        self.account_id = account_id
        # logical id -> an ARN the settings give outright (the call relay channels)
        self.arns = dict(arns or {})

    def ref(self, logical_id: str) -> str:
        pseudo = {
            "AWS::Region": self.region,
            "AWS::AccountId": self.account_id,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
        }
        if logical_id in pseudo:
            return pseudo[logical_id]
        if logical_id in self.refs:
            return self.refs[logical_id]
        if self.kinds.get(logical_id) == "AWS::ApiGatewayV2::Api":
            return LOCAL_API_ID
        # a resource the local stack does not have (a log group): matches nothing real
        return f"unresolved-{logical_id}"

    def arn(self, logical_id: str) -> str:
        if logical_id in self.arns:
            return self.arns[logical_id]
        kind = self.kinds.get(logical_id)
        name = self.ref(logical_id)
        if kind == "AWS::DynamoDB::Table":
            return f"arn:aws:dynamodb:{self.region}:{self.account_id}:table/{name}"
        if kind == "AWS::S3::Bucket":
            return f"arn:aws:s3:::{name}"
        if kind == "AWS::SQS::Queue":  # Ref is the queue's URL
            queue = urlparse(name).path.rstrip("/").rsplit("/", 1)[-1]
            return f"arn:aws:sqs:{self.region}:{self.account_id}:{queue}"
        if kind == "AWS::SecretsManager::Secret":  # Ref is the ARN
            return name
        return f"arn:aws:cloudformation:{self.region}:{self.account_id}:unresolved/{logical_id}"

    def value(self, raw: Any) -> Any:
        if isinstance(raw, str):
            # the push applications of LOCAL_CONTEXT, in the region the stack runs in
            local_sns = f"arn:aws:sns:{self.region}:{self.account_id}:"
            return raw.replace(_SNAPSHOT_SNS_PREFIX, local_sns)
        if isinstance(raw, list):
            return [self.value(item) for item in raw]
        if isinstance(raw, dict) and len(raw) == 1:
            ((key, arg),) = raw.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Fn::GetAtt":
                if arg[1] != "Arn":
                    raise PolicyError(f"Fn::GetAtt {arg} is not resolved locally")
                return self.arn(arg[0])
            if key == "Fn::Join":
                separator, parts = arg
                return separator.join(str(self.value(part)) for part in parts)
            if key == "Fn::Sub" and isinstance(arg, str):
                return _substitute(arg, self)
        if isinstance(raw, dict):
            return {k: self.value(v) for k, v in raw.items()}
        raise PolicyError(f"cannot resolve {raw!r}")


def _substitute(text: str, resolver: _Resolver) -> str:
    out, rest = [], text
    while "${" in rest:
        before, _, after = rest.partition("${")
        name, _, rest = after.partition("}")
        out.append(before)
        if name.endswith(".Arn"):
            out.append(resolver.arn(name.removesuffix(".Arn")))
        else:
            out.append(resolver.ref(name))
    out.append(rest)
    return "".join(out)


def _call_channels(snapshot: Mapping[str, Any], settings: Mapping[Setting, str]) -> dict[str, str]:
    """Each signalling channel's logical id -> the ARN the settings give it. The
    template passes PARLEY_CALL_CHANNELS as a JSON list joined from the channels'
    ARNs, in order; settings with as many ARNs (tests of the kvs relays) stand for
    them one by one. The local stack has none ("[]"): its channels stay unresolved."""
    given = settings.get(Setting.CALL_CHANNELS)
    arns = json.loads(given) if given else []
    for entry in snapshot["functions"].values():
        raw = entry["environment"].get(Setting.CALL_CHANNELS.value)
        if isinstance(raw, dict) and "Fn::Join" in raw:
            ids = [part["Fn::GetAtt"][0] for part in raw["Fn::Join"][1] if isinstance(part, dict)]
            if len(ids) == len(arns):
                return {logical_id: str(arn) for logical_id, arn in zip(ids, arns, strict=True)}
    return {}


def resolve(
    snapshot: Mapping[str, Any],
    settings: Mapping[Setting, str],
    *,
    region: str,
    account_id: str = ACCOUNT_ID,
) -> FunctionPolicies:
    """Each function's policy with the local resources' names and ARNs in it."""
    kinds: Mapping[str, str] = snapshot["resources"]
    refs: dict[str, str] = {}
    for entry in snapshot["functions"].values():
        for variable, raw in entry["environment"].items():
            if isinstance(raw, dict) and set(raw) == {"Ref"}:
                value = settings.get(Setting(variable))
                if value is not None:
                    refs[raw["Ref"]] = value
    resolver = _Resolver(kinds, refs, region, account_id, _call_channels(snapshot, settings))
    policies = {
        function_id: Policy.parse([{"Statement": resolver.value(entry["statements"])}])
        for function_id, entry in snapshot["functions"].items()
    }
    api_arn = ""
    for entry in snapshot["functions"].values():
        raw = entry["environment"].get(Setting.WS_ENDPOINT.value)
        if raw is not None:
            url = urlparse(str(resolver.value(raw)))
            api_id = url.hostname.split(".", 1)[0] if url.hostname else LOCAL_API_ID
            stage = url.path.strip("/")
            api_arn = f"arn:aws:execute-api:{region}:{account_id}:{api_id}/{stage}"
            break
    return FunctionPolicies(policies, region, account_id, api_arn)
