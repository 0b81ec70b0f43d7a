"""cdk-nag's AwsSolutions pack passes: no finding is left unacknowledged, and
every acknowledgment says why it is justified."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.infra.synthesis import synthesize

pytestmark = pytest.mark.infra


def _describe(violations: list[dict[str, Any]]) -> str:
    return "\n".join(
        f"{v['ruleName']} at {', '.join(c['constructPath'] for c in v['violatingConstructs'])}"
        for v in violations
    )


def test_aws_solutions_pack_has_no_unacknowledged_errors_or_warnings(cdk_synthesis: Any) -> None:
    assert cdk_synthesis.violations == [], _describe(cdk_synthesis.violations)


def test_every_acknowledgment_gives_a_reason(cdk_synthesis: Any) -> None:
    assert cdk_synthesis.acknowledgments, "the stack acknowledges nothing: is cdk-nag running?"
    for path, rules in cdk_synthesis.acknowledgments.items():
        for rule, reason in rules.items():
            assert rule.startswith("AwsSolutions::AwsSolutions-"), (path, rule)
            # a sentence, not a placeholder
            assert len(reason.split()) >= 8, (path, rule, reason)


def test_the_checks_bite_and_every_acknowledgment_answers_a_real_finding(
    cdk_synthesis: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Synthesized again with every acknowledgment ignored and an insecure bucket
    added: the bucket is reported, and so is each finding the stack acknowledges
    (none is stale)."""
    from aws_cdk import Validations

    monkeypatch.setattr(Validations, "acknowledge", lambda self, *rules: None)

    def add_plain_bucket(stack: Any) -> None:
        from aws_cdk import aws_s3 as s3

        s3.Bucket(stack, "Plain")

    bare = synthesize(tmp_path, extend=add_plain_bucket)
    reported = {
        (v["ruleName"], c["constructPath"])
        for v in bare.violations
        for c in v["violatingConstructs"]
    }
    plain = f"{bare.stack_name}/Plain/Resource"
    assert ("AwsSolutions-S1", plain) in reported  # no access logs
    assert ("AwsSolutions-S10", plain) in reported  # TLS not enforced
    for path, rules in cdk_synthesis.acknowledgments.items():
        for rule in rules:
            finding = rule.removeprefix("AwsSolutions::")
            assert any(
                name == finding and where.startswith(path.lstrip("/") + "/")
                for name, where in reported
            ), f"{rule} at {path} acknowledges nothing"
