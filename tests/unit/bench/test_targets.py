"""The target lines `make bench` prints: met, not met, or not measured, from the figures
of one run (ratios within the run, the worst figure of a family decides)."""

from __future__ import annotations

from bench.report import Figure
from bench.targets import TARGETS, Target, check, format_verdicts

COST = "cost (us-east-1 list prices of 2026-11)"


def fig(group: str, name: str, value: float) -> Figure:
    return Figure(group, name, value, "", "")


def test_each_target_reads_its_figure_and_says_met_or_not() -> None:
    figures = [
        fig("(a) one message", "AWS requests / message", 8.0),
        fig("(b) burst of 10", "AWS requests / message", 4.5),
        fig(COST, "1:1 message: messaging core", 6.49),
        fig(COST, "1:1 burst of 10: messaging core", 3.9),
        fig(COST, "1:1 message: billed WebSocket messages", 6.0),
        fig("throughput (local stack)", "messages delivered end to end / s (50 clients)", 99.0),
        fig("throughput (local stack)", "send-to-receive latency p50 (50 clients)", 240.0),
        fig("ratchet", "one-way: speed-up", 3.48),
        fig("ratchet", "ping-pong: speed-up", 1.99),
    ]
    verdicts = {v.target.what: v for v in check(figures)}
    assert {what for what, v in verdicts.items() if v.met} == {
        "AWS requests per 1:1 message",  # 8 is at most 8
        "cost per 1:1 message",
        "cost per message, bursts of 10",
        "local stack p50 latency under that load",
        "ratchet, one-way",
    }
    assert verdicts["AWS requests per message, bursts of 10"].worst == 4.5
    assert verdicts["ratchet, ping-pong"].worst == 1.99
    # no cold-start figures in this run: said so, and not counted as met
    assert verdicts["cold start, HTTP API"].worst is None
    text = format_verdicts(list(verdicts.values()))
    assert "cold start, HTTP API" in text
    # the cold starts, on this Python and on 3.13
    assert text.count("not measured") == 4
    assert text.count("NOT MET") == 4
    assert len(text.splitlines()) == len(TARGETS)


def test_a_cold_start_target_takes_the_worst_handler_against_the_same_runs_boto3() -> None:
    figures = [
        fig("compiled cold start", "bare `import boto3` handler", 100.0),
        fig("compiled cold start", "ws_ack", 125.0),
        fig("compiled cold start", "ws_send", 140.0),
        fig("compiled cold start", "http_api", 170.0),
    ]
    ws, http = (
        next(v for v in check(figures) if v.target.what == what)
        for what in ("cold start, every WebSocket handler", "cold start, HTTP API")
    )
    assert (ws.worst, ws.which, ws.met) == (1.4, "ws_send", False)
    assert (http.worst, http.met) == (1.7, True)
    assert "1.40x boto3 (ws_send): NOT MET" in format_verdicts([ws])


def test_the_cold_start_targets_judge_the_compiled_asset_make_synth_builds() -> None:
    # the asset without bytecode (an offline build) is timed, but judges nothing
    figures = [
        fig("cold start", "bare `import boto3` handler", 100.0),
        fig("cold start", "ws_send", 250.0),
        fig("cold start", "http_api", 400.0),
        fig("compiled cold start", "bare `import boto3` handler", 90.0),
        fig("compiled cold start", "ws_send", 117.0),
        fig("compiled cold start", "http_api", 180.0),
    ]
    verdicts = {v.target.what: v for v in check(figures)}
    ws = verdicts["cold start, every WebSocket handler"]
    assert (ws.worst, ws.met) == (1.3, True)
    assert verdicts["cold start, HTTP API"].worst == 2.0
    assert not any(v.worst is not None and v.worst > 2.0 for v in verdicts.values())


def test_the_python_3_13_targets_read_only_3_13_figures_against_3_13s_boto3() -> None:
    figures = [
        fig("compiled cold start", "bare `import boto3` handler", 100.0),
        fig("compiled cold start", "ws_send", 120.0),
        fig("Python 3.13 cold start", "bare `import boto3` handler", 100.0),
        fig("Python 3.13 cold start", "ws_send", 300.0),
        fig("Python 3.13 compiled cold start", "bare `import boto3` handler", 200.0),
        fig("Python 3.13 compiled cold start", "ws_send", 250.0),
        fig("Python 3.13 compiled cold start", "http_api", 340.0),
    ]
    verdicts = {v.target.what: v for v in check(figures)}
    # this Python's figures are not mixed with 3.13's, nor compiled with uncompiled
    assert verdicts["cold start, every WebSocket handler"].worst == 1.2
    assert verdicts["cold start, HTTP API"].worst is None
    assert verdicts["cold start on 3.13, every WebSocket handler"].worst == 1.25
    assert verdicts["cold start on 3.13, HTTP API"].worst == 1.7


def test_a_ratio_without_its_baseline_is_not_measured() -> None:
    target = Target("x", "cold start", "ws_", "at most", 1.3, "x", per=("cold start", "bare"))
    (verdict,) = check([fig("cold start", "ws_ack", 120.0)], [target])
    assert verdict.worst is None
    assert not verdict.met
