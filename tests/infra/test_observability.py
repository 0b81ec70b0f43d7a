"""The dashboard and alarms, checked on the synthesized template: they read the
metrics the handlers really emit, cover every function, table, API and queue,
and notify the alarm topic only when the context names one."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from parley_server.catalogue import FUNCTIONS
from parley_server.metrics import ERROR_PREFIX, Metric, error_metric, http_metric
from parley_server.models.errors import ParleyError
from parley_server.store.schema import TABLES
from stacks.observability import APP_DIMENSIONS, Thresholds
from stacks.settings import ContextError, ParleySettings
from tests.infra.synthesis import Synthesis, TemplateView, synthesize

pytestmark = pytest.mark.infra

HANDLERS = Path(__file__).resolve().parents[2] / "lambdas" / "parley_server" / "handlers"

TOPIC = "arn:aws:sns:us-east-1:123456789012:parley-oncall"


# -- reading the template ---------------------------------------------------------------


def _placeholder(part: Any) -> str:
    """A token in the dashboard body, as text: REF:<logical id> or ATT:<logical id>.<attr>."""
    if isinstance(part, str):
        return part
    if "Ref" in part:
        return f"REF:{part['Ref']}"
    if "Fn::GetAtt" in part:
        return "ATT:" + ".".join(part["Fn::GetAtt"])
    raise AssertionError(f"unexpected token in the dashboard body: {part}")


def dashboard(template: dict[str, Any]) -> dict[str, Any]:
    (resource,) = TemplateView(template).of_type("AWS::CloudWatch::Dashboard").values()
    body = resource["Properties"]["DashboardBody"]
    if isinstance(body, dict):
        body = "".join(_placeholder(p) for p in body["Fn::Join"][1])
    parsed: dict[str, Any] = json.loads(body)
    return parsed


def graphed(template: dict[str, Any]) -> Iterator[tuple[str, list[Any]]]:
    """(widget title, metric row) for every metric row of every graph."""
    for widget in dashboard(template)["widgets"]:
        for row in widget["properties"].get("metrics", []):
            yield widget["properties"].get("title", ""), row


def _metric_row(row: list[Any]) -> tuple[str, str, dict[str, str]] | None:
    """(namespace, name, dimensions) of a row that names a metric (not an expression)."""
    names = [x for x in row if not isinstance(x, dict)]
    if len(names) < 2 or names[0] == "...":
        return None
    namespace, name, *dims = names
    return namespace, name, dict(zip(dims[::2], dims[1::2], strict=True))


def alarms(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Alarm properties by alarm name (without the stack prefix)."""
    found = {}
    for resource in TemplateView(template).of_type("AWS::CloudWatch::Alarm").values():
        props = resource["Properties"]
        found[props["AlarmName"].removeprefix("Parley-dev-")] = props
    return found


def alarm_metrics(props: dict[str, Any]) -> list[dict[str, Any]]:
    """The metrics an alarm reads: its own, or those of its math expression."""
    if "MetricName" in props:
        return [
            {
                "Namespace": props["Namespace"],
                "MetricName": props["MetricName"],
                "Dimensions": props.get("Dimensions", []),
                "Stat": props.get("Statistic") or props.get("ExtendedStatistic"),
            }
        ]
    return [
        {**m["MetricStat"]["Metric"], "Stat": m["MetricStat"]["Stat"]}
        for m in props["Metrics"]
        if "MetricStat" in m
    ]


def function_ids(template: dict[str, Any]) -> dict[str, str]:
    """Catalogue function id -> its logical id in the template."""
    view = TemplateView(template)
    return {spec.id: view.function_by_handler(spec.handler)[0] for spec in FUNCTIONS}


# -- what the handlers emit -------------------------------------------------------------


def error_codes() -> set[str]:
    """Every error code the service answers with (each is counted as Error_<code>)."""
    found: set[str] = set()
    todo: list[type[ParleyError]] = [ParleyError]
    while todo:
        cls = todo.pop()
        found.add(cls.code)
        todo.extend(cls.__subclasses__())
    return found


# -- the dashboard ----------------------------------------------------------------------


def test_dashboard_graphs_the_service_metrics_the_issue_asks_for(
    synth_template: dict[str, Any],
) -> None:
    service = {
        name
        for _, row in graphed(synth_template)
        if (m := _metric_row(row)) and m[0] == "Parley" and m[2] == APP_DIMENSIONS
        for name in [m[1]]
    }
    wanted = {
        "MessagesSent",
        "MessagesDelivered",
        "MessagesAcked",
        "SyncDelivered",  # sync backlog: events per sync page
        "FanOut",
        "OtpSent",
        "ConnectRefused",  # authorizer denials
    }
    assert wanted <= service


def test_every_metric_is_graphed_and_every_service_metric_read_is_one_the_handlers_emit(
    synth_template: dict[str, Any],
) -> None:
    service = {
        m[1]
        for _, row in graphed(synth_template)
        if (m := _metric_row(row)) and m[0] == "Parley" and m[2] == APP_DIMENSIONS
    }
    read = {
        m["MetricName"]
        for props in alarms(synth_template).values()
        for m in alarm_metrics(props)
        if m["Namespace"] == "Parley"
    }
    names = {metric.value for metric in Metric}
    assert {"MessagesSent", "ConnectRefused", "Error_invalid_code", "Http5xx"} <= names
    assert names <= service, f"not on the dashboard: {sorted(names - service)}"
    assert service | read <= names, f"read but not a Metric: {sorted((service | read) - names)}"
    # each fixed name is one a handler emits (handlers name metrics only through Metric)
    handlers = "".join(p.read_text() for p in HANDLERS.glob("*.py"))
    for metric in Metric:
        family = metric.value.startswith((ERROR_PREFIX, "Http"))
        assert family or f"Metric.{metric.name}" in handlers, (
            f"{metric.value} is read but no handler emits it"
        )
    # the per-code family: each member names a code the service really answers with
    codes = error_codes()
    for metric in Metric:
        if metric.value.startswith(ERROR_PREFIX):
            assert metric.value.removeprefix(ERROR_PREFIX) in codes, metric
            assert error_metric(metric.value.removeprefix(ERROR_PREFIX)) == metric.value
    assert {http_metric(status) for status in (200, 302, 404, 503)} == {
        Metric.HTTP_2XX,
        Metric.HTTP_3XX,
        Metric.HTTP_4XX,
        Metric.HTTP_5XX,
    }


def test_dashboard_shows_lambda_api_and_table_health(synth_template: dict[str, Any]) -> None:
    rows = [m for _, row in graphed(synth_template) if (m := _metric_row(row))]
    aws = {(ns, name) for ns, name, _ in rows}
    for metric in ("Errors", "Throttles", "Duration", "ConcurrentExecutions"):
        assert ("AWS/Lambda", metric) in aws
    for metric in ("4xx", "5xx", "IntegrationLatency", "ExecutionError", "IntegrationError"):
        assert ("AWS/ApiGateway", metric) in aws
    for metric in ("ReadThrottleEvents", "WriteThrottleEvents", "ConsumedWriteCapacityUnits"):
        assert ("AWS/DynamoDB", metric) in aws
    # every function has its own p99 duration line
    p99 = {
        dims["FunctionName"]
        for ns, name, dims in rows
        if (ns, name) == ("AWS/Lambda", "Duration") and "FunctionName" in dims
    }
    assert p99 == {f"REF:{logical}" for logical in function_ids(synth_template).values()}


def test_dashboard_lists_every_alarm(synth_template: dict[str, Any]) -> None:
    (status,) = [w for w in dashboard(synth_template)["widgets"] if w["type"] == "alarm"]
    listed = status["properties"]["alarms"]
    assert len(listed) == len(alarms(synth_template)) > 0


# -- the alarms -------------------------------------------------------------------------


def test_every_function_has_error_throttle_and_p99_duration_alarms(
    synth_template: dict[str, Any],
) -> None:
    found = alarms(synth_template)
    for function_id, logical in function_ids(synth_template).items():
        errors = found.get(f"{function_id}-Errors") or found[f"{function_id}-Faults"]
        read = {m["MetricName"] for m in alarm_metrics(errors)}
        assert "Errors" in read
        throttles = alarm_metrics(found[f"{function_id}-Throttles"])
        assert [m["MetricName"] for m in throttles] == ["Throttles"]
        duration = found[f"{function_id}-P99Duration"]
        (metric,) = alarm_metrics(duration)
        assert (metric["MetricName"], metric["Stat"]) == ("Duration", "p99")
        assert metric["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": logical}}]


def test_p99_alarms_fire_before_half_of_the_function_timeout(
    synth_template: dict[str, Any],
) -> None:
    found = alarms(synth_template)
    for spec in FUNCTIONS:
        threshold = found[f"{spec.id}-P99Duration"]["Threshold"]
        assert 0 < threshold <= spec.timeout_s * 1000 / 2, spec.id


def test_authorizer_refusals_are_not_counted_as_its_faults(
    synth_template: dict[str, Any],
) -> None:
    """The authorizer refuses a bad token by raising (API Gateway's contract), which
    Lambda counts as an error: its alarm takes the refusals it reported away."""
    faults = alarms(synth_template)["WsAuthorizer-Faults"]
    (expression,) = [m["Expression"] for m in faults["Metrics"] if "Expression" in m]
    assert "errors - refused" in expression
    names = {m["MetricName"] for m in alarm_metrics(faults)}
    assert names == {"Errors", "ConnectRefused"}
    assert "WsAuthorizer-Errors" not in alarms(synth_template)


def test_every_table_has_a_throttle_alarm(synth_template: dict[str, Any]) -> None:
    view = TemplateView(synth_template)
    tables = set(view.of_type("AWS::DynamoDB::Table"))
    assert len(tables) == len(TABLES)
    alarmed = set()
    for props in alarms(synth_template).values():
        for metric in alarm_metrics(props):
            if metric["MetricName"] in ("ReadThrottleEvents", "WriteThrottleEvents"):
                (dimension,) = metric["Dimensions"]
                alarmed.add(dimension["Value"]["Ref"])
    assert alarmed == tables


def test_api_errors_are_alarmed_for_both_apis(synth_template: dict[str, Any]) -> None:
    found = alarms(synth_template)
    http = {m["MetricName"] for m in alarm_metrics(found["HttpApi-5xx"])}
    assert http == {"5xx", "Count"}
    ws = {m["MetricName"] for m in alarm_metrics(found["WebSocketApi-Errors"])}
    assert ws == {"ExecutionError", "IntegrationError"}


def test_mailbox_age_and_authorizer_denials_are_alarmed_on_service_metrics(
    synth_template: dict[str, Any],
) -> None:
    found = alarms(synth_template)
    (age,) = alarm_metrics(found["MailboxAge"])
    assert (age["Namespace"], age["MetricName"]) == ("Parley", Metric.SYNC_OLDEST_AGE.value)
    assert age["Dimensions"] == [{"Name": k, "Value": v} for k, v in APP_DIMENSIONS.items()]
    assert found["MailboxAge"]["Threshold"] == Thresholds().mailbox_age_s
    denials = {m["MetricName"] for m in alarm_metrics(found["AuthorizerDenials"])}
    assert denials == {"ConnectRefused", "ConnectAllowed"}


def test_every_dead_letter_queue_has_a_depth_alarm(synth_template: dict[str, Any]) -> None:
    """For whatever queues the stack has: each queue named as a dead-letter target is
    alarmed on its depth, each other queue on the age of its oldest job."""
    view = TemplateView(synth_template)
    queues = view.of_type("AWS::SQS::Queue")
    dead = {
        q["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
        for q in queues.values()
        if "RedrivePolicy" in q.get("Properties", {})
    }
    watched: dict[str, set[str]] = {}
    for props in alarms(synth_template).values():
        for metric in alarm_metrics(props):
            if metric["Namespace"] == "AWS/SQS":
                (dimension,) = metric["Dimensions"]
                queue = dimension["Value"]["Fn::GetAtt"][0]
                watched.setdefault(queue, set()).add(metric["MetricName"])
    for queue in queues:
        wanted = (
            "ApproximateNumberOfMessagesVisible"
            if queue in dead
            else "ApproximateAgeOfOldestMessage"
        )
        assert wanted in watched.get(queue, set()), queue


def test_a_queue_with_a_dead_letter_queue_gets_depth_and_age_alarms() -> None:
    """The construct on its own, with a work queue and its dead-letter queue (the fan-out
    queue's shape), whether or not the stack has one yet."""
    from aws_cdk import App, Duration, Stack
    from aws_cdk import aws_apigatewayv2 as apigwv2
    from aws_cdk import aws_dynamodb as dynamodb
    from aws_cdk import aws_lambda as lambda_
    from aws_cdk import aws_sqs as sqs
    from aws_cdk.assertions import Template

    from parley_server.catalogue import Setting
    from stacks.observability import Observability, queues_in

    stack = Stack(App(), "Probe")
    dlq = sqs.Queue(stack, "Dead", fifo=True)
    sqs.Queue(
        stack,
        "Jobs",
        fifo=True,
        visibility_timeout=Duration.seconds(60),
        dead_letter_queue=sqs.DeadLetterQueue(max_receive_count=5, queue=dlq),
    )
    function = lambda_.Function(
        stack,
        "WsSend",
        code=lambda_.Code.from_inline("def handler(e, c): pass"),
        handler="index.handler",
        runtime=lambda_.Runtime.PYTHON_3_13,
    )
    table = dynamodb.Table(
        stack,
        "Mailbox",
        partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
    )
    ws = apigwv2.WebSocketApi(stack, "Ws")
    http = apigwv2.HttpApi(stack, "Http", create_default_stage=False)
    Observability(
        stack,
        "Observability",
        name="Probe",
        functions={"WsSend": function},
        tables={Setting.MAILBOX_TABLE: table},
        websocket_stage=apigwv2.WebSocketStage(stack, "WsStage", web_socket_api=ws, stage_name="x"),
        http_stage=apigwv2.HttpStage(stack, "HttpStage", http_api=http),
        queues=queues_in(stack),
    )
    found = {
        props["Properties"]["AlarmName"]: props["Properties"]
        for props in Template.from_stack(stack).find_resources("AWS::CloudWatch::Alarm").values()
    }
    depth = found["Probe-Dead-Depth"]
    assert (depth["MetricName"], depth["Threshold"]) == ("ApproximateNumberOfMessagesVisible", 1)
    assert depth["Dimensions"][0]["Value"]["Fn::GetAtt"][0].startswith("Dead")
    age = found["Probe-Jobs-Age"]
    assert age["MetricName"] == "ApproximateAgeOfOldestMessage"
    assert age["Threshold"] == Thresholds().queue_age_s
    assert "Probe-Jobs-Depth" not in found
    assert "Probe-Dead-Age" not in found


def test_missing_data_never_alarms(synth_template: dict[str, Any]) -> None:
    for name, props in alarms(synth_template).items():
        assert props["TreatMissingData"] == "notBreaching", name


def test_without_an_alarm_topic_alarms_notify_nobody(synth_template: dict[str, Any]) -> None:
    for name, props in alarms(synth_template).items():
        assert not props.get("AlarmActions"), name
        assert not props.get("OKActions"), name


@pytest.fixture(scope="module")
def with_topic(tmp_path_factory: pytest.TempPathFactory) -> Synthesis:
    return synthesize(tmp_path_factory.mktemp("cdk.out"), {"alarmTopicArn": TOPIC})


def test_alarm_topic_from_context_is_notified_on_alarm_and_on_recovery(
    with_topic: Synthesis,
) -> None:
    found = alarms(with_topic.template)
    assert found
    for name, props in found.items():
        assert props["AlarmActions"] == [TOPIC], name
        assert props["OKActions"] == [TOPIC], name
    assert with_topic.violations == []


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ("arn:aws:sns:us-east-1:123:oncall", ["alarmTopicArn", "SNS topic ARN"]),
        ("oncall", ["alarmTopicArn", "SNS topic ARN"]),
        (42, ["alarmTopicArn", "SNS topic ARN"]),
        ("arn:aws:sqs:us-east-1:123456789012:oncall", ["SNS topic ARN"]),
        ("arn:aws:sns:us-east-1:123456789012:oncall.fifo", ["FIFO", "standard topic"]),
    ],
)
def test_a_bad_alarm_topic_is_refused_with_a_message_naming_the_problem(
    raw: Any, words: list[str]
) -> None:
    with pytest.raises(ContextError) as refused:
        ParleySettings.from_context({"alarmTopicArn": raw})
    for word in words:
        assert word in str(refused.value)


def test_alarm_topic_is_optional_and_kept_as_given() -> None:
    assert ParleySettings.from_context({}).alarm_topic_arn is None
    assert ParleySettings.from_context({"alarmTopicArn": f" {TOPIC} "}).alarm_topic_arn == TOPIC
