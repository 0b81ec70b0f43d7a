"""Test numbers in the template: the setting reaches the HttpApi function only, the
numbers are an output `make smoke` reads, and the signing secret is findable by
the logical id `parley.testnumbers.stack_secret` looks for. Prod has none."""

from __future__ import annotations

import json

import pytest

from parley_server.catalogue import Setting
from tests.infra.synthesis import Synthesis, synthesize

pytestmark = pytest.mark.infra

NUMBERS = ["+12065550100", "+12065550101"]


@pytest.fixture(scope="module")
def with_numbers(tmp_path_factory: pytest.TempPathFactory) -> Synthesis:
    # as `-c testNumbers=...` gives it: a string
    return synthesize(
        tmp_path_factory.mktemp("cdk.out.testnumbers"), {"testNumbers": ",".join(NUMBERS)}
    )


def _environments(synthesis: Synthesis) -> dict[str, dict[str, str]]:
    return {
        r["Properties"]["Handler"]: r["Properties"]["Environment"]["Variables"]
        for r in synthesis.view.of_type("AWS::Lambda::Function").values()
        if "Handler" in r.get("Properties", {})
        and r["Properties"]["Handler"].startswith("parley_server.")
    }


def test_the_numbers_reach_only_the_http_api_function(with_numbers: Synthesis) -> None:
    readers = {
        handler: env[Setting.TEST_NUMBERS.value]
        for handler, env in _environments(with_numbers).items()
        if Setting.TEST_NUMBERS.value in env
    }
    assert list(readers) == ["parley_server.handlers.http_api.handler"]
    assert json.loads(next(iter(readers.values()))) == NUMBERS


def test_the_numbers_are_an_output_and_the_secret_is_findable(with_numbers: Synthesis) -> None:
    outputs = with_numbers.template["Outputs"]
    assert outputs["TestNumbers"]["Value"] == ",".join(NUMBERS)
    secrets = with_numbers.view.of_type("AWS::SecretsManager::Secret")
    assert [k for k in secrets if k.startswith("Signing")] == list(secrets)
    assert len(secrets) == 1


def test_prod_has_no_test_numbers(prod_synthesis: Synthesis) -> None:
    assert "TestNumbers" not in prod_synthesis.template["Outputs"]
    http = _environments(prod_synthesis)["parley_server.handlers.http_api.handler"]
    assert http[Setting.TEST_NUMBERS.value] == "[]"
