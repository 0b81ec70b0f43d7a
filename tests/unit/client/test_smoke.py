"""`parley.smoke`'s steps: each printed with its time; the first failure (a wrong
answer, an error, a wait that runs out) becomes SmokeFailed naming the step, what
was expected and what happened; the command turns that into status 1. Where the
smoke looks for the stack and its test numbers, and what it refuses."""

from __future__ import annotations

import asyncio
import io
import itertools
import json
from pathlib import Path

import pytest

from parley.errors import ConfigurationError, RateLimited
from parley.smoke import Report, SmokeFailed, Target, Unexpected, main, run, target_from
from parley.testnumbers import LOCAL_TEST_NUMBERS, deployed_stack


def report() -> tuple[Report, io.StringIO]:
    out = io.StringIO()
    ticks = itertools.count()
    return Report(out, clock=lambda: float(next(ticks))), out


async def test_a_passing_step_is_printed_with_its_time() -> None:
    steps, out = report()
    async with steps.step("say hello", "a hello", 5):
        pass
    assert out.getvalue().startswith("  1. say hello ....")
    assert out.getvalue().rstrip().endswith("ok       1.00 s")
    assert steps.passed == [("say hello", 1.0)]


async def test_a_later_step_that_sees_something_else_fails_naming_it() -> None:
    steps, out = report()
    async with steps.step("first", "x", 5):
        pass
    with pytest.raises(SmokeFailed) as failed:
        async with steps.step("second", "42 bytes", 5):
            raise Unexpected("41 bytes")
    assert (failed.value.number, failed.value.name) == (2, "second")
    assert (failed.value.expected, failed.value.got) == ("42 bytes", "41 bytes")
    assert "  2. second ...." in out.getvalue()
    assert "FAILED" in out.getvalue().splitlines()[-1]


async def test_a_service_error_and_a_wait_that_runs_out_are_described() -> None:
    steps, _ = report()
    with pytest.raises(SmokeFailed) as refused:
        async with steps.step("ask", "a code", 5):
            raise RateLimited(429, "rate_limited", "slow down", retry_after=7)
    assert refused.value.got == "the service answered 429 rate_limited: slow down"
    with pytest.raises(SmokeFailed) as waited:
        async with steps.step("wait", "an event", 0.01):
            await asyncio.Event().wait()
    assert waited.value.got == "nothing within 0 s"


def test_the_command_exits_1_and_says_which_step_failed(tmp_path: Path) -> None:
    out = io.StringIO()
    missing = tmp_path / "cdk-outputs.json"
    status = main(["--outputs", str(missing)], out=out)
    assert status == 1
    text = out.getvalue()
    assert 'smoke FAILED at step 1, "find the stack and its test numbers\' codes"' in text
    assert "expected: the stack's endpoints, two or more test numbers" in text
    assert f"{missing} not found" in text


def test_a_failure_in_finding_the_stack_makes_no_accounts(tmp_path: Path) -> None:
    def broken() -> Target:
        raise ConfigurationError("no such stack")

    steps, _ = report()
    with pytest.raises(SmokeFailed) as failed:
        asyncio.run(run(broken, steps, home=tmp_path))
    assert failed.value.number == 1
    assert failed.value.got == "ConfigurationError: no such stack"
    assert list(tmp_path.iterdir()) == []


def outputs_file(tmp_path: Path, **extra: str) -> Path:
    path = tmp_path / "cdk-outputs.json"
    stack = {
        "HttpUrl": "https://abc.execute-api.eu-west-1.amazonaws.com/",
        "WebSocketUrl": "wss://def.execute-api.eu-west-1.amazonaws.com/dev",
        "Region": "eu-west-1",
        **extra,
    }
    path.write_text(json.dumps({"Parley-me": stack}))
    return path


def test_the_deployed_stack_s_test_numbers_come_from_its_outputs(tmp_path: Path) -> None:
    path = outputs_file(tmp_path, TestNumbers="+12065550100,+12065550101")
    stack = deployed_stack(path)
    assert (stack.name, stack.region) == ("Parley-me", "eu-west-1")
    assert stack.test_numbers == ("+12065550100", "+12065550101")
    target = target_from(path, None, None)
    assert target.numbers == ("+12065550100", "+12065550101")
    assert target.endpoints.http_url == "https://abc.execute-api.eu-west-1.amazonaws.com"
    assert "Parley-me" in target.description


def test_a_deployed_stack_without_test_numbers_is_refused_with_what_to_do(
    tmp_path: Path,
) -> None:
    with pytest.raises(ConfigurationError, match="testNumbers"):
        target_from(outputs_file(tmp_path), None, None)


def test_the_local_stack_defaults_to_its_own_test_numbers(tmp_path: Path) -> None:
    local = tmp_path / "local.json"
    local.write_text(json.dumps({"http_url": "http://127.0.0.1:1", "ws_url": "ws://127.0.0.1:1"}))
    assert target_from(None, local, None).numbers == LOCAL_TEST_NUMBERS
    assert target_from(None, local, ["+12065550150", "+12065550151"]).numbers == (
        "+12065550150",
        "+12065550151",
    )


@pytest.mark.parametrize(
    "numbers",
    [["+14155552671", "+12065550150"], ["+12065550150"], ["+12065550150", "+12065550150"]],
)
def test_real_numbers_and_fewer_than_two_are_refused(tmp_path: Path, numbers: list[str]) -> None:
    local = tmp_path / "local.json"
    local.write_text(json.dumps({"http_url": "http://127.0.0.1:1", "ws_url": "ws://127.0.0.1:1"}))
    with pytest.raises(ConfigurationError):
        target_from(None, local, numbers)


class _FakeAws:
    """What stack_secret asks of boto3: the stack's resources, then the secret."""

    def __init__(self, resources: list[dict[str, str]], fail: Exception | None = None) -> None:
        self.resources = resources
        self.fail = fail
        self.asked: list[tuple[str, str]] = []
        self.session = self

    def Session(self, region_name: str | None) -> _FakeAws:
        self.region = region_name
        return self

    def client(self, service: str) -> _FakeAws:
        return self

    def describe_stack_resources(self, StackName: str) -> dict[str, object]:
        if self.fail is not None:
            raise self.fail
        self.asked.append(("stack", StackName))
        return {"StackResources": self.resources}

    def get_secret_value(self, SecretId: str) -> dict[str, str]:
        self.asked.append(("secret", SecretId))
        return {"SecretString": "s" * 64}


SIGNING = {
    "LogicalResourceId": "SigningSecret1A2B3C4D",
    "ResourceType": "AWS::SecretsManager::Secret",
    "PhysicalResourceId": "arn:aws:secretsmanager:eu-west-1:1:secret:signing",
}


def test_a_deployed_stack_s_secret_is_read_from_its_signing_secret_resource(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from parley import testnumbers

    other = {**SIGNING, "LogicalResourceId": "DataUsers99", "ResourceType": "AWS::DynamoDB::Table"}
    fake = _FakeAws([other, SIGNING])
    monkeypatch.setattr(testnumbers, "_boto3", lambda: fake)
    stack = deployed_stack(outputs_file(tmp_path, TestNumbers="+12065550100,+12065550101"))
    assert testnumbers.stack_secret(stack) == b"s" * 64
    assert fake.region == "eu-west-1"
    assert fake.asked == [("stack", "Parley-me"), ("secret", SIGNING["PhysicalResourceId"])]


def test_no_access_to_the_stack_is_a_clear_configuration_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from parley import testnumbers

    fake = _FakeAws([], fail=RuntimeError("AccessDenied"))
    monkeypatch.setattr(testnumbers, "_boto3", lambda: fake)
    stack = deployed_stack(outputs_file(tmp_path))
    with pytest.raises(ConfigurationError, match="cannot read stack Parley-me's signing secret"):
        testnumbers.stack_secret(stack)


def test_the_code_printer_refuses_a_real_number(capsys: pytest.CaptureFixture[str]) -> None:
    from parley import testnumbers

    with pytest.raises(SystemExit) as refused:
        testnumbers.main(["+14155552671"])
    assert refused.value.code == 2
    assert "not a test number" in capsys.readouterr().err
