"""Invoking handlers as Lambda does: in a thread, JSON in and out, within a timeout."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any, cast

import pytest
from aws_lambda_powertools.logging.lambda_context import build_lambda_context_model
from msgspec.structs import replace

from local.lambdas import CatalogueHandlers, FunctionError, Handler, Invoker, LambdaContext
from parley_server.catalogue import FunctionSpec

SPEC = FunctionSpec(id="Fn", handler="tests.nowhere.handler", settings=frozenset(), description="")


@pytest.fixture
def executor() -> Iterator[ThreadPoolExecutor]:
    pool = ThreadPoolExecutor(4)
    yield pool
    pool.shutdown(wait=False, cancel_futures=True)


def invoker(executor: ThreadPoolExecutor, handler: Handler) -> Invoker:
    return Invoker({"Fn": handler}, executor, functions=(SPEC,))


async def test_handler_runs_off_the_event_loop_with_a_decoded_copy_of_the_event(
    executor: ThreadPoolExecutor,
) -> None:
    seen: dict[str, Any] = {}

    def handler(event: dict[str, Any], context: Any) -> Any:
        seen["thread"] = threading.current_thread()
        seen["event"] = event
        event["mutated"] = True
        return {"statusCode": 200, "body": "ok"}

    event = {"a": (1, 2)}
    result = await invoker(executor, handler).invoke("Fn", event)
    assert result == {"statusCode": 200, "body": "ok"}
    assert seen["thread"] is not threading.main_thread()
    assert seen["event"] == {"a": [1, 2], "mutated": True}  # JSON made the tuple a list
    assert event == {"a": (1, 2)}


async def test_a_result_json_cannot_carry_is_a_function_error(
    executor: ThreadPoolExecutor,
) -> None:
    with pytest.raises(FunctionError) as failed:
        await invoker(executor, lambda e, c: {"count": Decimal(1)}).invoke("Fn", {})
    assert failed.value.kind == "serialization"


async def test_a_raised_exception_is_reported_with_its_message(
    executor: ThreadPoolExecutor,
) -> None:
    def handler(event: dict[str, Any], context: Any) -> Any:
        raise RuntimeError("Unauthorized")

    with pytest.raises(FunctionError) as failed:
        await invoker(executor, handler).invoke("Fn", {})
    assert (failed.value.kind, failed.value.message) == ("unhandled", "Unauthorized")


async def test_an_invocation_past_its_limit_fails_without_waiting_for_the_handler(
    executor: ThreadPoolExecutor,
) -> None:
    release = threading.Event()

    def handler(event: dict[str, Any], context: Any) -> Any:
        release.wait(10)
        return {}

    try:
        with pytest.raises(FunctionError) as failed:
            await invoker(executor, handler).invoke("Fn", {}, limit_s=0.05)
        assert failed.value.kind == "timeout"
    finally:
        release.set()


async def test_a_missing_handler_module_is_an_invocation_error_not_a_crash(
    executor: ThreadPoolExecutor,
) -> None:
    lazy = Invoker(CatalogueHandlers((SPEC,)), executor, functions=(SPEC,))
    with pytest.raises(FunctionError) as failed:
        await lazy.invoke("Fn", {})
    assert failed.value.kind == "import"


def test_catalogue_handlers_import_the_named_attribute_on_first_use() -> None:
    spec = FunctionSpec(id="Dumps", handler="json.dumps", settings=frozenset(), description="")
    handlers = CatalogueHandlers((spec,))
    assert list(handlers) == ["Dumps"]
    assert cast(object, handlers["Dumps"]) is json.dumps


def test_context_has_what_powertools_reads() -> None:
    context = LambdaContext(SPEC, region="eu-west-1", account_id="111122223333")
    model = build_lambda_context_model(context)
    assert model.function_name == "parley-local-Fn"
    # the runtime takes it from AWS_LAMBDA_FUNCTION_MEMORY_SIZE, a string
    assert str(model.function_memory_size) == "512"
    assert model.function_arn == "arn:aws:lambda:eu-west-1:111122223333:function:parley-local-Fn"
    assert model.function_request_id == context.aws_request_id
    assert 0 < context.get_remaining_time_in_millis() <= SPEC.timeout_s * 1000


async def test_one_function_runs_one_invocation_at_a_time_as_a_lambda_environment_does(
    executor: ThreadPoolExecutor,
) -> None:
    inside = 0
    most = 0
    lock = threading.Lock()

    def handler(event: dict[str, Any], context: Any) -> Any:
        nonlocal inside, most
        with lock:
            inside += 1
            most = max(most, inside)
        time.sleep(0.02)
        with lock:
            inside -= 1
        return event["n"]

    fn = invoker(executor, handler)
    results = await asyncio.gather(*(fn.invoke("Fn", {"n": n}) for n in range(5)))
    assert results == [0, 1, 2, 3, 4]
    assert most == 1


async def test_different_functions_run_in_parallel(executor: ThreadPoolExecutor) -> None:
    barrier = threading.Barrier(3, timeout=5)

    def handler(event: dict[str, Any], context: Any) -> Any:
        barrier.wait()  # only returns once three invocations are in flight together
        return event["n"]

    specs = tuple(replace(SPEC, id=f"Fn{n}") for n in range(3))
    fns = Invoker({spec.id: handler for spec in specs}, executor, functions=specs)
    results = await asyncio.gather(*(fns.invoke(f"Fn{n}", {"n": n}) for n in range(3)))
    assert results == [0, 1, 2]
