"""Test numbers: sign up on a dev stack without a phone.

A stack deployed with `-c testNumbers=...` (and the local stack, which has
+1 206 555-0100 to 555-0199 unless PARLEY_TEST_NUMBERS says otherwise) never
texts those numbers. Their code is derived from the stack's signing secret:

    code = HMAC-SHA256(secret, "parley/test-number-code/v1:" + E.164 number),
           first 8 bytes as a big-endian integer, mod 10^6, as 6 digits

so whoever can read the secret computes it: the deployer, with the AWS
credentials that deployed the stack, or anyone on the machine running the
local stack. Only numbers reserved for fiction qualify (+1 NPA 555-0100 to
555-0199). Print a code:

    python -m parley.testnumbers +12065550142                 # the local stack
    python -m parley.testnumbers +12065550142 --outputs cdk-outputs.json

Reading the secret needs boto3 (`pip install boto3`), which the SDK itself
does not need.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from parley.endpoints import Endpoints
from parley.errors import ConfigurationError

__all__ = [
    "LOCAL_TEST_NUMBERS",
    "DeployedStack",
    "code_for",
    "deployed_stack",
    "is_fictional",
    "local_secret",
    "stack_secret",
]

# what the local stack (local/resources.py) configures when nothing else is asked for
LOCAL_TEST_NUMBERS = tuple(f"+12065550{n}" for n in range(100, 200))
_FICTIONAL = re.compile(r"\+1[2-9][0-9]{2}5550(1[0-9]{2})")
_DOMAIN = b"parley/test-number-code/v1:"


def is_fictional(e164: str) -> bool:
    """True for an E.164 number in +1 NPA 555-0100..0199 (the only test numbers)."""
    return bool(_FICTIONAL.fullmatch(e164))


def code_for(secret: bytes, e164: str) -> str:
    """The 6-digit code test number `e164` signs in with on the stack holding `secret`."""
    digest = hmac.new(secret, _DOMAIN + e164.encode(), hashlib.sha256).digest()
    return f"{int.from_bytes(digest[:8], 'big') % 10**6:06d}"


@dataclass(frozen=True)
class DeployedStack:
    """What `make deploy` wrote to cdk-outputs.json about one stack."""

    name: str
    endpoints: Endpoints
    region: str | None
    test_numbers: tuple[str, ...]


def deployed_stack(path: Path) -> DeployedStack:
    """The stack in a cdk-outputs.json (the one with an HttpUrl output)."""
    endpoints = Endpoints.from_cdk_outputs(path)
    raw = json.loads(path.read_text())
    for name, outputs in raw.items() if isinstance(raw, dict) else []:
        if isinstance(outputs, dict) and any(k.endswith("HttpUrl") for k in outputs):
            numbers = _output(outputs, "TestNumbers")
            return DeployedStack(
                name=name,
                endpoints=endpoints,
                region=endpoints.region,
                test_numbers=tuple(n for n in (numbers or "").split(",") if n),
            )
    raise ConfigurationError(f"{path} names no stack with an HttpUrl output")


def _output(outputs: dict[str, Any], name: str) -> str | None:
    for key, value in sorted(outputs.items()):
        if (key == name or key.endswith(name)) and isinstance(value, str):
            return value
    return None


def _boto3() -> Any:
    try:
        import boto3
    except ImportError:
        raise ConfigurationError(
            "reading the stack's signing secret needs boto3: pip install boto3"
        ) from None
    return boto3


def _secret_bytes(value: Any) -> bytes:
    if isinstance(value, str) and value:
        return value.encode()
    raise ConfigurationError("the signing secret has no string value")


def local_secret(endpoints: Endpoints) -> bytes:
    """The local stack's signing secret, read from its AWS emulator."""
    if not endpoints.aws_endpoint_url:
        raise ConfigurationError("the local stack's endpoints file names no aws_endpoint_url")
    sm = _boto3().client(
        "secretsmanager",
        endpoint_url=endpoints.aws_endpoint_url,
        region_name=endpoints.region or "us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",  # noqa: S106 (the emulator takes any)
    )
    names = [s["ARN"] for s in sm.list_secrets()["SecretList"] if s["Name"].endswith("signing-key")]
    if len(names) != 1:
        raise ConfigurationError(f"expected one signing secret in the local stack, found {names}")
    return _secret_bytes(sm.get_secret_value(SecretId=names[0]).get("SecretString"))


def stack_secret(stack: DeployedStack) -> bytes:
    """A deployed stack's signing secret, read with this machine's AWS credentials
    (cloudformation:DescribeStackResources and secretsmanager:GetSecretValue)."""
    session = _boto3().session.Session(region_name=stack.region)
    try:
        cloudformation = session.client("cloudformation")
        resources = cloudformation.describe_stack_resources(StackName=stack.name)
        arns = [
            r["PhysicalResourceId"]
            for r in resources["StackResources"]
            if r["ResourceType"] == "AWS::SecretsManager::Secret"
            and r["LogicalResourceId"].startswith("Signing")
        ]
        if len(arns) != 1:
            raise ConfigurationError(f"stack {stack.name} has no single signing secret: {arns}")
        value = session.client("secretsmanager").get_secret_value(SecretId=arns[0])
    except ConfigurationError:
        raise
    except Exception as exc:  # botocore's errors: no credentials, access denied, no stack
        raise ConfigurationError(
            f"cannot read stack {stack.name}'s signing secret with this machine's AWS "
            f"credentials: {exc}"
        ) from exc
    return _secret_bytes(value.get("SecretString"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m parley.testnumbers",
        description="Print the sign-up code of a test number (dev stacks only).",
    )
    parser.add_argument("number", help="a test number in E.164, e.g. +12065550142")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--outputs", type=Path, help="the deployed stack's cdk-outputs.json")
    where.add_argument("--local-file", type=Path, help="the local stack's endpoints file")
    args = parser.parse_args(argv)
    if not is_fictional(args.number):
        parser.error(f"{args.number} is not a test number (+1 NPA 555-0100 to 555-0199, E.164)")
    try:
        if args.outputs is not None:
            secret = stack_secret(deployed_stack(args.outputs))
        else:
            secret = local_secret(Endpoints.local(args.local_file))
    except ConfigurationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(code_for(secret, args.number))
    return 0


if __name__ == "__main__":
    sys.exit(main())
