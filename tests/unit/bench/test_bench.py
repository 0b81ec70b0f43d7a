"""`python -m bench`: every benchmark module runs (quick pass) and gives figures, and the
runner prints one table and reports a failing module without stopping the others.
Figures are never checked for their values: the machines are noisy."""

from __future__ import annotations

import json
import math
import platform
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from bench.__main__ import MODULES, main, run_all
from bench.report import Figure

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def probes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Two stand-in benchmark modules: one gives a figure, one fails."""

    def good_run(quick: bool = False) -> list[Figure]:
        return [Figure("probe", "answer", 42.0 if quick else 41.0, "things", "counted")]

    def bad_run(quick: bool = False) -> list[Figure]:
        raise RuntimeError("the local stack did not start")

    for name, run in (("probe_good", good_run), ("probe_bad", bad_run)):
        module = types.ModuleType(f"bench.{name}")
        module.run = run  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, f"bench.{name}", module)
    return ["probe_bad", "probe_good"]


def test_a_failing_module_is_reported_and_the_others_still_run(probes: list[str]) -> None:
    lines: list[str] = []
    bad, good = run_all(probes, quick=True, progress=lines.append)
    assert bad.figures == []
    assert bad.error is not None
    assert "the local stack did not start" in bad.error
    assert good.error is None
    assert [f.value for f in good.figures] == [42.0]  # quick was passed through
    assert any("probe_bad failed" in line for line in lines)


def test_main_prints_one_table_and_fails_when_a_module_failed(
    probes: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("bench.__main__.MODULES", tuple(probes))
    assert main(["--quick"]) == 1
    out, err = capsys.readouterr()
    assert out.count("how measured") == 1
    assert "answer" in out
    assert "probe_bad failed" in err


def test_only_runs_the_named_module_from_the_command_line() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--only", "ratchet"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("measured ")
    assert "how measured" in done.stdout
    assert "bench: ratchet" in done.stderr
    assert "bench: coldstart" not in done.stderr


def test_an_unknown_module_is_refused() -> None:
    with pytest.raises(SystemExit):
        main(["--only", "nonsense"])


@pytest.mark.parametrize("module", MODULES)
def test_each_benchmark_runs_its_quick_pass_and_gives_figures(module: str) -> None:
    (outcome,) = run_all([module], quick=True)
    assert outcome.error is None, outcome.error
    assert outcome.figures, f"{module} gave no figures"
    for figure in outcome.figures:
        assert isinstance(figure, Figure)
        assert figure.group
        assert figure.name
        assert figure.unit
        assert figure.how, f"{module}: {figure.name} does not say how it was measured"
        assert math.isfinite(figure.value)


# -- coldstart: the interpreter is laid out as Lambda's (not its timings) ------------


@pytest.fixture(scope="module")
def layout() -> Any:
    from bench.coldstart import lambda_layout

    with lambda_layout() as built:
        yield built


def test_coldstart_asset_holds_the_requirements_without_the_runtimes_packages(
    layout: Any,
) -> None:
    task = {p.name for p in layout.task_root.iterdir()}
    for package in ("parley_server", "aws_lambda_powertools", "aws_xray_sdk", "msgspec", "nacl"):
        assert package in task, package
    assert not task & {"boto3", "botocore", "s3transfer", "urllib3"}
    # the asset ships no bytecode: Lambda compiles it at every cold start
    assert not [p for p in layout.task_root.rglob("*") if p.suffix == ".pyc"]
    assert not [p for p in layout.task_root.rglob("__pycache__")]
    runtime = {p.name for p in layout.runtime.iterdir()}
    assert {"boto3", "botocore"} <= runtime
    assert "msgspec" not in runtime


def test_coldstart_layout_for_another_python_takes_its_wheels_and_compiles_the_runtime() -> None:
    # this machine's Python stands in for Lambda's 3.13: pip fetches wheels for its version
    from bench.coldstart import lambda_layout_for, probe_command, probe_environment

    tag = sys.implementation.cache_tag
    with lambda_layout_for(sys.executable) as other:
        task = {p.name for p in other.task_root.iterdir()}
        assert {"parley_server", "msgspec", "nacl"} <= task
        assert not task & {"boto3", "botocore", "urllib3"}
        # binary wheels for this version and processor, not copies of this machine's files
        (core,) = (other.task_root / "msgspec").glob("_core.*.so")
        assert f"{sys.version_info[0]}{sys.version_info[1]}" in core.name
        assert platform.machine() in core.name
        assert not list(other.task_root.rglob("*.pyc"))
        # the runtime's boto3, compiled by that interpreter
        assert list((other.runtime / "boto3" / "__pycache__").glob(f"*.{tag}.pyc"))
        done = subprocess.run(
            probe_command("import parley_server.handlers.ws_send, boto3; print(boto3.__file__)"),
            env=probe_environment(other),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip().startswith(str(other.runtime))


def test_coldstart_probe_runs_as_lambda_with_the_tracer_on(layout: Any) -> None:
    from bench.coldstart import probe_command, probe_environment

    env = probe_environment(layout)
    assert env["LAMBDA_TASK_ROOT"] == str(layout.task_root)
    assert "POWERTOOLS_TRACE_DISABLED" not in env
    code = (
        "import json, sys\n"
        "from parley_server.handlers import http_api\n"
        "import boto3, msgspec\n"
        "from aws_xray_sdk.core import xray_recorder\n"
        "print(json.dumps({'path': sys.path, 'boto3': boto3.__file__,\n"
        "  'msgspec': msgspec.__file__, 'tracing': not http_api.tracer._config['disabled'],\n"
        "  'context': type(xray_recorder.context).__name__,\n"
        "  'bytecode': sys.dont_write_bytecode}))\n"
    )
    done = subprocess.run(
        probe_command(code), env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["tracing"] is True
    assert seen["context"] == "LambdaContext"  # the X-Ray SDK believes it is in Lambda
    assert seen["bytecode"] is True
    assert seen["boto3"].startswith(str(layout.runtime))
    assert seen["msgspec"].startswith(str(layout.task_root))
    # nothing but the two directories and the standard library: no site-packages
    assert not [p for p in seen["path"] if "site-packages" in p]
    assert seen["path"].index(str(layout.task_root)) < seen["path"].index(str(layout.runtime))
