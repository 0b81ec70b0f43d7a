"""Every math expression of the alarms and the dashboard uses only what CloudWatch's
metric math documents (tests/infra/metric_math.py): CloudWatch judges an alarm's
expression only when CloudFormation creates it, and a refusal rolls the stack back."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.infra.metric_math import Kind, MetricMathError, check
from tests.infra.synthesis import TemplateView
from tests.infra.test_observability import dashboard

pytestmark = pytest.mark.infra


def alarm_expressions(template: dict[str, Any]) -> Iterator[tuple[str, str, set[str]]]:
    """(alarm name, expression, ids it may use) for every math expression of every alarm."""
    for resource in TemplateView(template).of_type("AWS::CloudWatch::Alarm").values():
        props = resource["Properties"]
        metrics = props.get("Metrics", [])
        ids = {m["Id"] for m in metrics}
        for metric in metrics:
            if "Expression" in metric:
                yield props["AlarmName"], metric["Expression"], ids - {metric["Id"]}


def widget_expressions(template: dict[str, Any]) -> Iterator[tuple[str, str, set[str]]]:
    """(widget title, expression, ids of that graph) for every expression on the dashboard."""
    for widget in dashboard(template)["widgets"]:
        rows = widget["properties"].get("metrics", [])
        options = [row[-1] for row in rows if row and isinstance(row[-1], dict)]
        ids = {o["id"] for o in options if "id" in o}
        for option in options:
            if "expression" in option:
                yield widget["properties"].get("title", ""), option["expression"], ids


def test_every_alarm_expression_is_documented_metric_math(
    synth_template: dict[str, Any],
) -> None:
    found = list(alarm_expressions(synth_template))
    # the error-rate alarms of every function but the authorizer, its faults, the APIs,
    # the tables and the refusals: the walk must find them to prove anything
    assert len(found) >= 10
    problems = []
    for name, expression, ids in found:
        try:
            check(expression, ids, alarm=True)
        except MetricMathError as exc:
            problems.append(f"{name}: {expression!r}: {exc}")
    assert problems == []


def test_every_dashboard_expression_is_documented_metric_math(
    synth_template: dict[str, Any],
) -> None:
    found = list(widget_expressions(synth_template))
    assert found, "the dashboard's table throttle graph sums reads and writes"
    problems = []
    for title, expression, ids in found:
        try:
            check(expression, ids, alarm=False)
        except MetricMathError as exc:
            problems.append(f"{title}: {expression!r}: {exc}")
    assert problems == []


@pytest.mark.parametrize(
    "expression",
    [
        "IF(errors >= 5 AND calls > 0, 100 * errors / calls, 0)",
        "IF(errors - refused >= 5, errors - refused, 0)",
        "IF(refused >= 50, 100 * refused / (refused + allowed), 0)",
        "reads + writes",
        "IF(calls > 0, 100*errors/calls, 0)",
        "IF(errors, calls)",
        "-errors ^ 2",
        "FILL(errors, 0) + ABS(calls - errors)",
        "errors - 0.5 * RATE(calls)",
    ],
)
def test_documented_forms_are_accepted(expression: str) -> None:
    ids = {"errors", "calls", "refused", "allowed", "reads", "writes"}
    assert check(expression, ids, alarm=True) is Kind.TS


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        # the form this stack used to deploy: an array holds time series, and MAX of
        # anything is discouraged in alarms
        ("IF(errors >= 5, 100 * errors / MAX([calls, 1]), 0)", "not scalars"),
        ("100 * errors / MAX([calls, refused])", "should not be used in alarms"),
        ("if(errors > 0, 1, 0)", "not a documented metric math function"),
        ("GREATEST(errors, calls)", "not a documented metric math function"),
        ("IF(5, 1, 0)", "not one of the documented forms"),
        ("IF(errors > 0)", "not one of the documented forms"),
        ("errors + unknown", "'unknown' is not a metric id"),
        ("SUM(errors)", "scalar"),
        ("(errors + calls", "expected ')'"),
        ("errors calls", "unexpected 'calls'"),
        ("errors % calls", "unexpected"),
        ("[errors, calls]", "exactly one time series"),
    ],
)
def test_undocumented_forms_are_refused_with_the_reason(expression: str, reason: str) -> None:
    with pytest.raises(MetricMathError) as refused:
        check(expression, {"errors", "calls", "refused"}, alarm=True)
    assert reason in str(refused.value)


def test_a_graph_may_show_an_array_but_ids_must_start_lowercase() -> None:
    assert check("[errors, calls] * 2", {"errors", "calls"}, alarm=False) is Kind.TS_ARRAY
    with pytest.raises(MetricMathError, match="lowercase"):
        check("Errors + 1", {"Errors"}, alarm=False)
