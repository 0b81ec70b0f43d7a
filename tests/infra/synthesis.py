"""Synthesizing the CDK app in the test process, and reading what it produced.

The app is built exactly as app.py builds it (stacks.application.build, with
cdk.json's feature flags), with asset bundling skipped: bundling is tested on
its own (test_infra_bundling.py) and takes pip seconds that assertions on the
template do not need.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Synthesis", "TemplateView", "synthesize"]

for _var in (
    "JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION",
    "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION",
    "JSII_SILENCE_WARNING_KNOWN_BROKEN_NODE_VERSION",
):
    os.environ.setdefault(_var, "1")


class TemplateView:
    """Small queries over a CloudFormation template dict."""

    def __init__(self, template: Mapping[str, Any]) -> None:
        self.template = template
        self.resources: Mapping[str, Any] = template["Resources"]

    def of_type(self, resource_type: str) -> dict[str, dict[str, Any]]:
        return {k: r for k, r in self.resources.items() if r["Type"] == resource_type}

    def one(self, resource_type: str, **properties: Any) -> tuple[str, dict[str, Any]]:
        """The single resource of that type whose properties include `properties`."""
        found = [
            (k, r)
            for k, r in self.of_type(resource_type).items()
            if all(r.get("Properties", {}).get(p) == v for p, v in properties.items())
        ]
        assert len(found) == 1, f"{len(found)} {resource_type} match {properties}"
        return found[0]

    def function_by_handler(self, handler: str) -> tuple[str, dict[str, Any]]:
        return self.one("AWS::Lambda::Function", Handler=handler)

    def role_statements(self, role_id: str) -> Iterator[dict[str, Any]]:
        """Every statement of every policy attached to the role (inline or separate)."""
        role = self.resources[role_id]
        for policy in role["Properties"].get("Policies", []):
            yield from policy["PolicyDocument"]["Statement"]
        for policy in self.of_type("AWS::IAM::Policy").values():
            if {"Ref": role_id} in policy["Properties"].get("Roles", []):
                yield from policy["Properties"]["PolicyDocument"]["Statement"]

    def all_statements(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """(policy owner, statement) for every identity policy in the template."""
        for role_id, role in self.of_type("AWS::IAM::Role").items():
            for policy in role["Properties"].get("Policies", []):
                for statement in policy["PolicyDocument"]["Statement"]:
                    yield role_id, statement
        for policy_id, policy in self.of_type("AWS::IAM::Policy").items():
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
                yield policy_id, statement


@dataclass(frozen=True)
class Synthesis:
    """What one synthesis produced."""

    stack_name: str
    template: dict[str, Any]
    # cdk-nag findings nobody acknowledged (the validation report's violations)
    violations: list[dict[str, Any]]
    # construct path -> {acknowledged rule id: reason}
    acknowledgments: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def view(self) -> TemplateView:
        return TemplateView(self.template)


def synthesize(
    outdir: Path,
    context: Mapping[str, Any] | None = None,
    *,
    extend: Callable[[Any], None] | None = None,
) -> Synthesis:
    """Build the app with `context` (on top of cdk.json's) and synthesize it into `outdir`.

    `extend(stack)` may add constructs before synthesis (to prove the checks bite).
    """
    from aws_cdk import App

    from stacks.application import build, cdk_json_context

    app = App(
        context={**cdk_json_context(), "aws:cdk:bundling-stacks": [], **(context or {})},
        outdir=str(outdir),
    )
    stack = build(app)
    if extend is not None:
        extend(stack)
    try:
        app.synth()
    except RuntimeError as exc:
        # cdk-nag's findings interrupt synthesis after the template is written
        if "ValidationFailed" not in str(exc):
            raise
    report = json.loads((outdir / "validation-report.json").read_text())
    violations = [
        violation
        for plugin in report.get("pluginReports", [])
        for violation in plugin.get("violations", [])
    ]
    metadata = json.loads((outdir / f"{stack.artifact_id}.metadata.json").read_text())
    acknowledgments: dict[str, dict[str, str]] = {}
    for path, entries in metadata.items():
        for entry in entries:
            if entry["type"] == "aws:cdk:acknowledged-rules":
                acknowledgments.setdefault(path, {}).update(entry["data"])
    return Synthesis(
        stack_name=stack.stack_name,
        template=json.loads((outdir / stack.template_file).read_text()),
        violations=violations,
        acknowledgments=acknowledgments,
    )
