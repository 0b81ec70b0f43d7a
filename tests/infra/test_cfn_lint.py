"""cfn-lint, with the cfn-lint-serverless rules, on the dev and prod templates this
session synthesized: no finding at all, errors, warnings or informational, beyond
the rules .cfnlintrc.yaml switches off, each with its reason beside it. Where a
switched-off rule guards something the stack does its own way, it is checked here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from parley_server.catalogue import FUNCTIONS
from tests.infra.synthesis import Synthesis, TemplateView

pytestmark = pytest.mark.infra

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / ".cfnlintrc.yaml"
# "  - W3005   # reason", as .cfnlintrc.yaml lists what it switches off
_IGNORED = re.compile(r"^\s+-\s+(?P<rule>[A-Z]+\d+)\s*(?:#\s*(?P<reason>.*))?$")


def lint(templates: Iterable[Path]) -> list[Any]:
    """cfn-lint's findings for `templates`, configured by .cfnlintrc.yaml as its CLI is."""
    from cfnlint.config import ConfigMixIn
    from cfnlint.runner import Runner

    config = ConfigMixIn(cli_args=["--config-file", str(CONFIG), "--", *map(str, templates)])
    return list(Runner(config).run())


def _report(findings: Iterable[Any]) -> str:
    return "\n".join(
        f"{Path(m.filename).name}:{m.linenumber}: {m.rule.id} {m.message}" for m in findings
    )


def ignored_rules() -> dict[str, str]:
    """Rule id -> the reason written beside it in .cfnlintrc.yaml's ignore_checks."""
    rules: dict[str, str] = {}
    inside = False
    for line in CONFIG.read_text().splitlines():
        if not line.startswith((" ", "-")):
            inside = line.startswith("ignore_checks:")
            continue
        match = _IGNORED.match(line) if inside else None
        if match:
            rules[match["rule"]] = (match["reason"] or "").strip()
    return rules


@pytest.fixture(scope="module")
def templates(
    cdk_synthesis: Synthesis, prod_synthesis: Synthesis, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """The session's dev and prod templates, written out for cfn-lint (not synthesized again)."""
    out = tmp_path_factory.mktemp("cfn-lint")
    paths = {}
    for synthesis in (cdk_synthesis, prod_synthesis):
        path = out / f"{synthesis.stack_name}.template.json"
        path.write_text(json.dumps(synthesis.template, indent=1))
        paths[synthesis.stack_name] = path
    return paths


def test_cfn_lint_finds_nothing_in_the_dev_and_prod_templates(
    templates: dict[str, Path],
) -> None:
    assert set(templates) == {"Parley-dev", "Parley-prod"}
    findings = lint(templates.values())
    assert findings == [], "cfn-lint findings:\n" + _report(findings)


def test_every_rule_switched_off_says_why() -> None:
    from cfnlint.config import ConfigMixIn

    rules = ignored_rules()
    assert rules, "the walk must find .cfnlintrc.yaml's ignore_checks"
    # what cfn-lint reads is what the reasons are written for
    config = ConfigMixIn(cli_args=["--config-file", str(CONFIG)])
    assert sorted(config.ignore_checks) == sorted(rules)
    for rule, reason in rules.items():
        assert len(reason.split()) >= 5, f"{rule}: say why it is switched off"


def test_the_configuration_loads_the_serverless_rules_and_reports_what_it_finds(
    tmp_path: Path,
) -> None:
    """A template with known faults: the serverless rules (appended by the config) and
    CloudFormation's own report them; a switched-off rule does not."""
    template = {
        "Resources": {
            "Fn": {
                "Type": "AWS::Lambda::Function",
                # no MemorySize, no Timeout (serverless ES1005, ES1006), a made-up property
                "Properties": {
                    "Role": "arn:aws:iam::123456789012:role/x",
                    "Code": {"ZipFile": "x"},
                    "Handler": "index.handler",
                    "Runtime": "python3.13",
                    "Colour": "blue",
                },
            },
            # no redrive policy: ES6000, which the config switches off
            "Queue": {"Type": "AWS::SQS::Queue", "Properties": {}},
        }
    }
    path = tmp_path / "faulty.template.json"
    path.write_text(json.dumps(template))
    found = {m.rule.id for m in lint([path])}
    assert {"ES1005", "ES1006", "E3002"} <= found
    assert "ES6000" not in found


# -- what the switched-off rules guard, checked the stack's way ---------------------------


def _queues(view: TemplateView) -> tuple[dict[str, Any], set[str]]:
    queues = view.of_type("AWS::SQS::Queue")
    dead = {
        q["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
        for q in queues.values()
        if "RedrivePolicy" in q.get("Properties", {})
    }
    return queues, dead


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_every_queue_is_a_dead_letter_queue_or_has_one(
    stage: str, cdk_synthesis: Synthesis, prod_synthesis: Synthesis
) -> None:
    """What ES6000 asks, less the dead-letter queues themselves."""
    view = (cdk_synthesis if stage == "dev" else prod_synthesis).view
    queues, dead = _queues(view)
    assert queues
    for queue_id, queue in queues.items():
        assert queue_id in dead or "RedrivePolicy" in queue["Properties"], queue_id


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_every_event_source_is_a_queue_with_a_dead_letter_queue(
    stage: str, cdk_synthesis: Synthesis, prod_synthesis: Synthesis
) -> None:
    """What ES1001 asks, for the kind of source an on-failure destination cannot serve."""
    view = (cdk_synthesis if stage == "dev" else prod_synthesis).view
    queues, _ = _queues(view)
    mappings = view.of_type("AWS::Lambda::EventSourceMapping")
    assert mappings
    for mapping_id, mapping in mappings.items():
        (source, attribute) = mapping["Properties"]["EventSourceArn"]["Fn::GetAtt"]
        assert attribute == "Arn", mapping_id
        assert source in queues, mapping_id
        assert "RedrivePolicy" in queues[source]["Properties"], mapping_id


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_the_only_functions_besides_parleys_are_the_cdks_custom_resource_handlers(
    stage: str, cdk_synthesis: Synthesis, prod_synthesis: Synthesis
) -> None:
    """WS1000 and WS1004 are checked on Parley's functions by test_infra_template.py;
    anything else running code in the stack must be one of the CDK's own handlers."""
    view = (cdk_synthesis if stage == "dev" else prod_synthesis).view
    ours = {view.function_by_handler(spec.handler)[0] for spec in FUNCTIONS}
    others = set(view.of_type("AWS::Lambda::Function")) - ours
    for logical_id in others:
        assert re.match(r"^Custom\w+CustomResourceProviderHandler", logical_id), logical_id
