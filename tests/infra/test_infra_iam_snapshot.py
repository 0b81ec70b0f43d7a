"""local/iam/policies.json, which the local stack and the tests enforce, is the
policy the CDK app synthesizes today: a grant changed in stacks/ without
`make iam-policies` fails here, and so does a drift between the grants table
and what the constructs really grant."""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest

from local.iam.snapshot import render, synthesized_extract
from local.iam.template import SNAPSHOT

pytestmark = pytest.mark.infra


def test_the_enforced_policies_are_the_synthesized_ones(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    fresh = render(synthesized_extract(Path(tmp_path_factory.mktemp("cdk.out.iam"))))
    committed = SNAPSHOT.read_text()
    if fresh != committed:
        diff = "".join(
            difflib.unified_diff(
                committed.splitlines(keepends=True),
                fresh.splitlines(keepends=True),
                "local/iam/policies.json (committed)",
                "synthesized now",
                n=2,
            )
        )
        pytest.fail(
            "local/iam/policies.json is stale: run `make iam-policies` and commit it\n" + diff,
            pytrace=False,
        )
