"""The least-privilege report: every grant of every function's policy that no
recorded call used (`make iam-report`, from the last test session's record).

A grant is one action pattern of one Allow statement on one of its resources.
An unused grant is not an error: a path no test reaches, or a permission a
CDK grant method adds beside the one needed (DescribeSecret beside
GetSecretValue). It is the list to read when tightening the grants."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["render_resource", "unused_grants"]

_IGNORED_SERVICES = ("logs:", "xray:")  # used by the runtime, never by the handlers


def render_resource(raw: Any) -> str:
    """A template resource value, short: Ref X -> X, Fn::GetAtt X.Arn -> X.Arn."""
    if isinstance(raw, str):
        return raw
    if isinstance(raw, dict) and len(raw) == 1:
        ((key, arg),) = raw.items()
        if key == "Ref":
            return "${" + str(arg) + "}"
        if key == "Fn::GetAtt":
            return "${" + ".".join(arg) + "}"
        if key == "Fn::Join":
            return str(arg[0]).join(render_resource(part) for part in arg[1])
    return json.dumps(raw)


def unused_grants(
    snapshot: Mapping[str, Any], used: Iterable[tuple[str, int, str, int]]
) -> dict[str, list[str]]:
    """Function id -> "action on resource" for each grant of its policy never used."""
    seen = {tuple(grant) for grant in used}
    report: dict[str, list[str]] = {}
    for function_id, entry in sorted(snapshot["functions"].items()):
        for index, statement in enumerate(entry["statements"]):
            if statement.get("Effect") != "Allow" or "Action" not in statement:
                continue
            actions = statement["Action"]
            resources = statement.get("Resource", [])
            for action in actions if isinstance(actions, list) else [actions]:
                if action.startswith(_IGNORED_SERVICES):
                    continue
                listed = resources if isinstance(resources, list) else [resources]
                for place, resource in enumerate(listed):
                    if (function_id, index, action, place) not in seen:
                        report.setdefault(function_id, []).append(
                            f"{action} on {render_resource(resource)}"
                        )
    return report
