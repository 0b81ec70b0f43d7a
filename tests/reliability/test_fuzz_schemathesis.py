"""schemathesis against the OpenAPI document the running stack serves
(GET /v1/openapi.json), through the gateway, with a real bearer token.

For every operation the document describes, schemathesis generates requests
that follow it (positive) and requests that break it (negative). None may get a
5xx, and every answer whose status the document declares has the declared
shape. The number of requests run per operation is printed with the run's
figures.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import given
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import CHECKS

from tests.reliability.figures import FIGURES
from tests.reliability.fuzzing import SIZES, examples, fuzz_settings
from tests.reliability.stack import Stack, sign_up

CI, SOAK = 25, 500  # requests per operation and mode


@pytest.mark.parametrize("size", SIZES)
def test_every_operation_of_the_served_document_survives_schemathesis(
    stack: Stack, size: str
) -> None:
    alice = asyncio.run(sign_up(stack, one_time_prekeys=100))
    schema = schemathesis.openapi.from_url(stack.http_url + "/v1/openapi.json")
    session = requests.Session()
    failures: list[str] = []

    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            runs = 0

            @fuzz_settings(examples(size, CI, SOAK), size)
            @given(case=operation.as_strategy(generation_mode=mode))
            def run(case: Any) -> None:
                nonlocal runs
                runs += 1
                response = case.call(base_url=stack.http_url, session=session, headers=alice.auth)
                assert response.status_code < 500, (case.method, case.path, response.text)
                case.validate_response(response, checks=_checks())

            try:
                run()
            except Unsatisfiable:
                pass  # nothing in this operation can be broken in this mode (runs stays 0)
            except (AssertionError, BaseExceptionGroup) as failed:  # schemathesis: FailureGroup
                failures.append(f"{operation.label} ({mode.value}): {failed}")
            FIGURES.record("schemathesis requests run on the stack", operation.label, runs)

    assert not failures, "\n".join(failures)


def _checks() -> list[Any]:
    wanted = {"not_a_server_error", "response_schema_conformance"}
    return [check for check in CHECKS.get_all() if check.__name__ in wanted]
