"""Infra fixtures: the prod stage synthesized once per session (as the default
context is, in tests/conftest.py), for every module that checks its template."""

from __future__ import annotations

import pytest

from tests.infra.synthesis import Synthesis, synthesize


@pytest.fixture(scope="session")
def prod_synthesis(tmp_path_factory: pytest.TempPathFactory) -> Synthesis:
    """The app synthesized with tests/infra/test_infra_prod.py's prod context."""
    from tests.infra.test_infra_prod import CONTEXT

    return synthesize(tmp_path_factory.mktemp("cdk.out.prod"), CONTEXT)
