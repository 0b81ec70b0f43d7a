"""Run-time settings a deployer meets: the log level never costs the metrics, and
the SMS origination (smsOrigination) reaches exactly the function that texts."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

import pytest
from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit
from msgspec.structs import replace

from parley_server.catalogue import FUNCTIONS, Setting
from parley_server.models.sms import SmsOrigination
from stacks.grants import GRANTS, check_grants
from stacks.settings import ContextError, ParleySettings
from tests.infra.synthesis import Synthesis, synthesize

pytestmark = pytest.mark.infra

NUMBER = "+18885550100"

# -- Lambda's application log-level filter, as documented -----------------------
# Only with LogFormat JSON; ApplicationLogLevel defaults to INFO there; a line
# whose "level" is missing or not a level counts as INFO.
_LAMBDA_LEVELS = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL")
_AS_LAMBDA_LEVEL = {"WARNING": "WARN", "CRITICAL": "FATAL"}


def _lambda_keeps(logging_config: Mapping[str, Any], line: str) -> bool:
    """Whether Lambda sends this stdout line of the function on to CloudWatch Logs."""
    if logging_config.get("LogFormat", "Text") != "JSON":
        return True
    threshold = logging_config.get("ApplicationLogLevel", "INFO")
    try:
        level = str(json.loads(line).get("level", "")).upper()
    except (ValueError, AttributeError):
        level = ""
    level = _AS_LAMBDA_LEVEL.get(level, level)
    if level not in _LAMBDA_LEVELS:
        level = "INFO"
    return _LAMBDA_LEVELS.index(level) >= _LAMBDA_LEVELS.index(threshold)


def _lambda_environment(
    logging_config: Mapping[str, Any], env: Mapping[str, str]
) -> dict[str, str]:
    """The function's variables plus the one Lambda adds when its filter is on."""
    runtime = dict(env)
    if logging_config.get("LogFormat") == "JSON":
        runtime["AWS_LAMBDA_LOG_LEVEL"] = logging_config.get("ApplicationLogLevel", "INFO")
    return runtime


def _emf_line() -> str:
    """A metric line exactly as the handlers' Powertools Metrics print it."""
    metrics = EphemeralMetrics(namespace="Parley", service="parley")
    metrics.add_metric(name="MessagesSent", unit=MetricUnit.Count, value=1)
    return json.dumps(metrics.serialize_metric_set(), separators=(",", ":"))


def test_the_filter_model_drops_metric_lines_under_the_old_configuration() -> None:
    # what the stack used to deploy for logLevel WARNING: no metric would survive
    line = _emf_line()
    assert "level" not in json.loads(line)
    assert not _lambda_keeps({"LogFormat": "JSON", "ApplicationLogLevel": "WARN"}, line)
    assert not _lambda_keeps({"LogFormat": "JSON", "ApplicationLogLevel": "ERROR"}, line)
    assert _lambda_keeps({"LogFormat": "JSON", "ApplicationLogLevel": "WARN"}, '{"level":"ERROR"}')


@pytest.fixture(scope="module", params=["WARNING", "ERROR"])
def quiet(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    level: str = request.param
    context = {
        "logLevel": level.lower(),
        # as `-c key=value` gives it: a string
        "smsOrigination": json.dumps({"originationNumber": NUMBER}),
    }
    return level, synthesize(tmp_path_factory.mktemp(f"cdk.out.{level}"), context)


def test_metric_lines_survive_warning_and_error(
    quiet: tuple[str, Synthesis], monkeypatch: pytest.MonkeyPatch
) -> None:
    level, synthesis = quiet
    line = _emf_line()
    for spec in FUNCTIONS:
        props = synthesis.view.function_by_handler(spec.handler)[1]["Properties"]
        logging_config = props["LoggingConfig"]
        env = props["Environment"]["Variables"]
        assert _lambda_keeps(logging_config, line), spec.id
        assert "ApplicationLogLevel" not in logging_config, spec.id
        assert "SystemLogLevel" not in logging_config, spec.id
        assert env["POWERTOOLS_LOG_LEVEL"] == level, spec.id
        # and the level still holds: Powertools' logger, in this environment, logs
        # at `level` (Lambda's AWS_LAMBDA_LOG_LEVEL, were it set, would override it)
        runtime = _lambda_environment(logging_config, env)
        monkeypatch.delenv("AWS_LAMBDA_LOG_LEVEL", raising=False)
        for key in ("AWS_LAMBDA_LOG_LEVEL", "POWERTOOLS_LOG_LEVEL"):
            if key in runtime:
                monkeypatch.setenv(key, runtime[key])
        logger = Logger(service=f"parley-level-{level}-{spec.id}")
        assert logger.log_level == getattr(logging, level), spec.id


def test_sms_origination_reaches_only_the_http_api(quiet: tuple[str, Synthesis]) -> None:
    _, synthesis = quiet
    for spec in FUNCTIONS:
        env = synthesis.view.function_by_handler(spec.handler)[1]["Properties"]["Environment"]
        variables = env["Variables"]
        if spec.id == "HttpApi":
            assert SmsOrigination.from_json(
                variables[Setting.SMS_ORIGINATION.value]
            ) == SmsOrigination(origination_number=NUMBER)
        else:
            assert Setting.SMS_ORIGINATION.value not in variables, spec.id


def test_the_default_stack_gives_the_http_api_an_empty_origination(
    synth_template: dict[str, Any],
) -> None:
    from tests.infra.synthesis import TemplateView

    view = TemplateView(synth_template)
    spec = next(s for s in FUNCTIONS if s.id == "HttpApi")
    env = view.function_by_handler(spec.handler)[1]["Properties"]["Environment"]["Variables"]
    assert env[Setting.SMS_ORIGINATION.value] == "{}"


# -- the smsOrigination context key --------------------------------------------------


def test_sms_origination_defaults_to_snss_choice() -> None:
    settings = ParleySettings.from_context({})
    assert settings.sms_origination == SmsOrigination()
    assert settings.sms_origination_json == "{}"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"originationNumber": NUMBER}, SmsOrigination(origination_number=NUMBER)),
        ('{"senderId": "Parley"}', SmsOrigination(sender_id="Parley")),
        (
            json.dumps(
                {"originationNumber": NUMBER, "senderId": "Parley", "smsType": "Promotional"}
            ),
            SmsOrigination(origination_number=NUMBER, sender_id="Parley", sms_type="Promotional"),
        ),
        ("{}", SmsOrigination()),
    ],
)
def test_sms_origination_is_accepted_from_cdk_json_and_command_line(
    raw: Any, expected: SmsOrigination
) -> None:
    settings = ParleySettings.from_context({"smsOrigination": raw})
    assert settings.sms_origination == expected
    assert SmsOrigination.from_json(settings.sms_origination_json) == expected


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ("+18885550100", "is not valid JSON"),
        ('["+18885550100"]', "must be a JSON object"),
        ({"originationNumber": "8885550100"}, "E.164"),
        ({"senderId": "Parley Messenger"}, "1 to 11 letters and digits"),
        ({"senderId": "2024"}, "at least one a letter"),
        ({"smsType": "Bulk"}, "smsType"),
        ({"originationNumbr": NUMBER}, "unknown key"),
    ],
)
def test_bad_sms_origination_is_refused_naming_the_key(raw: Any, says: str) -> None:
    with pytest.raises(ContextError, match=f"context smsOrigination: .*{says}"):
        ParleySettings.from_context({"smsOrigination": raw})


# -- grants: whoever texts reads the origination, nobody else --------------------------


def test_sms_origination_goes_with_the_sms_grant() -> None:
    check_grants()
    without = tuple(
        replace(s, settings=s.settings - {Setting.SMS_ORIGINATION}) if s.id == "HttpApi" else s
        for s in FUNCTIONS
    )
    with pytest.raises(ValueError, match=r"HttpApi: granted .*PARLEY_SMS_ORIGINATION"):
        check_grants(without, GRANTS)
    extra = tuple(
        replace(s, settings=s.settings | {Setting.SMS_ORIGINATION}) if s.id == "WsSend" else s
        for s in FUNCTIONS
    )
    with pytest.raises(ValueError, match=r"WsSend: reads .*PARLEY_SMS_ORIGINATION"):
        check_grants(extra, GRANTS)
