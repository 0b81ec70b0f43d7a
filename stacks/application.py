"""Building the app: what app.py runs and what the tests synthesize.

Both go through build(), so the template the tests check is the one that
deploys: same context parsing, same stack, same cdk-nag checks.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aws_cdk import App, Validations
from cdk_nag import AwsSolutionsChecks

from stacks.parley_stack import ParleyStack
from stacks.settings import ParleySettings

__all__ = ["CDK_JSON", "build", "cdk_json_context"]

CDK_JSON = Path(__file__).resolve().parent.parent / "cdk.json"


def build(app: App) -> ParleyStack:
    """Add the Parley stack, as the app's context describes it, and cdk-nag's checks.

    Raises stacks.settings.ContextError for context it cannot deploy.
    """
    settings = ParleySettings.from_context(app.node.get_all_context())
    stack = ParleyStack(app, settings.stack_name, settings=settings)
    # a finding that is not acknowledged interrupts synthesis with a report
    Validations.of(app).add_plugins(AwsSolutionsChecks(app, verbose=True))
    return stack


def cdk_json_context(path: Path = CDK_JSON) -> dict[str, Any]:
    """The context cdk.json gives the CLI (feature flags), for apps built outside it."""
    context = json.loads(path.read_text())["context"]
    assert isinstance(context, dict)
    return context
