#!/usr/bin/env python3
"""CDK entry point: `make synth` / `make deploy` (the CDK CLI runs this file).

Synthesizes offline: no AWS call is made and no account is needed (the stack
is environment-agnostic; `cdk deploy` picks the account and region).
"""

from __future__ import annotations

import sys

from aws_cdk import App

from stacks.application import build
from stacks.settings import ContextError


def main() -> int:
    app = App()
    try:
        build(app)
    except ContextError as exc:
        # a configuration mistake: say what is wrong, not where in the code it was found
        print(f"parley: bad CDK context: {exc}", file=sys.stderr)
        return 2
    app.synth()
    return 0


if __name__ == "__main__":
    sys.exit(main())
