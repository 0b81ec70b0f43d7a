"""app.py, run as the CDK CLI runs it: offline synthesis, and a clear message
(never a stack trace) for context it cannot deploy."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from stacks.application import cdk_json_context

pytestmark = pytest.mark.infra

ROOT = Path(__file__).resolve().parents[2]


def _run_app(context: dict[str, object], outdir: Path) -> subprocess.CompletedProcess[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "CDK_")) and k not in ("HTTP_PROXY", "HTTPS_PROXY")
    }
    env |= {
        # what the CDK CLI hands the app
        "CDK_CONTEXT_JSON": json.dumps(context),
        "CDK_OUTDIR": str(outdir),
        # no credentials, and any network call would hit a closed port
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "HTTP_PROXY": "http://127.0.0.1:9",
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION": "1",
        "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1",
    }
    return subprocess.run(
        [sys.executable, "app.py"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_app_synthesizes_offline_without_an_account(tmp_path: Path) -> None:
    context = {**cdk_json_context(), "aws:cdk:bundling-stacks": []}
    result = _run_app(context, tmp_path)
    assert result.returncode == 0, result.stderr
    template = json.loads((tmp_path / "Parley-dev.template.json").read_text())
    assert set(template["Outputs"]) == {"HttpUrl", "WebSocketUrl", "Region"}
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    # environment-agnostic: `cdk deploy` chooses the account and region
    assert (
        manifest["artifacts"]["Parley-dev"]["environment"] == "aws://unknown-account/unknown-region"
    )


def test_bad_context_exits_with_a_message_not_a_stack_trace(tmp_path: Path) -> None:
    result = _run_app({"stage": "qa", "aws:cdk:bundling-stacks": []}, tmp_path)
    assert result.returncode == 2
    assert "parley: bad CDK context: context stage: 'qa' is not a stage" in result.stderr
    assert "dev, prod" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "manifest.json").exists()
