"""Reserved concurrency: none by default (a new account's quota may be too small to
reserve anything), exactly what `reservedConcurrency` names when it is given, and
bad values refused with a message naming the key and what is allowed."""

from __future__ import annotations

import json
from typing import Any

import pytest

from parley_server.catalogue import FUNCTIONS
from stacks.fanout_spec import FANOUT_QUEUE
from stacks.settings import ContextError, ParleySettings
from tests.infra.synthesis import Synthesis, TemplateView
from tests.infra.test_infra_prod import CONTEXT as PROD_CONTEXT

pytestmark = pytest.mark.infra


def _reserved(template: dict[str, Any]) -> dict[str, int | None]:
    view = TemplateView(template)
    return {
        spec.id: view.function_by_handler(spec.handler)[1]["Properties"].get(
            "ReservedConcurrentExecutions"
        )
        for spec in FUNCTIONS
    }


def test_by_default_no_function_reserves_concurrency(synth_template: dict[str, Any]) -> None:
    assert ParleySettings.from_context({}).reserved_concurrency == {}
    assert set(_reserved(synth_template).values()) == {None}


def test_the_functions_named_reserve_what_the_context_says(prod_synthesis: Synthesis) -> None:
    given = json.loads(PROD_CONTEXT["reservedConcurrency"])
    reserved = _reserved(prod_synthesis.template)
    assert {k: v for k, v in reserved.items() if v is not None} == given
    assert prod_synthesis.violations == []


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"WsSend": 50}, {"WsSend": 50}),
        ('{"WsSend": 50, "HttpApi": 20}', {"WsSend": 50, "HttpApi": 20}),
        ({}, {}),
        ("{}", {}),
        ({"GroupFanout": FANOUT_QUEUE.max_concurrency}, {"GroupFanout": 10}),
    ],
)
def test_reserved_concurrency_is_accepted_from_cdk_json_and_command_line(
    raw: Any, expected: dict[str, int]
) -> None:
    settings = ParleySettings.from_context({"reservedConcurrency": raw})
    assert settings.reserved_concurrency == expected


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ("{not json", ["reservedConcurrency", "JSON"]),
        ("[1, 2]", ["reservedConcurrency", "JSON object"]),
        (50, ["reservedConcurrency", "JSON object"]),
        ({"WsSned": 5}, ["reservedConcurrency", "'WsSned'", "WsSend", "HttpApi"]),
        ({"WsSend": 0}, ["reservedConcurrency", "WsSend", "1 or more", "unreserved"]),
        ({"WsSend": -3}, ["WsSend", "1 or more"]),
        ({"WsSend": "50"}, ["WsSend", "'50'", "whole number"]),
        ({"WsSend": 2.5}, ["WsSend", "whole number"]),
        ({"WsSend": True}, ["WsSend", "whole number"]),
        ({"GroupFanout": 5}, ["GroupFanout", "maximum concurrency", "fanout_spec"]),
    ],
)
def test_bad_reserved_concurrency_is_refused_with_a_message_naming_the_problem(
    raw: Any, words: list[str]
) -> None:
    with pytest.raises(ContextError) as refused:
        ParleySettings.from_context({"reservedConcurrency": raw})
    for word in words:
        assert word in str(refused.value)
