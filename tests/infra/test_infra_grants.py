"""The grants table and the catalogue agree: each function is granted on
exactly the resources its settings name, and a mismatch is caught at synth."""

from __future__ import annotations

import dataclasses

import pytest
from msgspec.structs import replace

from parley_server.catalogue import FUNCTIONS, Setting
from stacks.grants import GRANTS, FunctionGrants, Ops, check_grants, table_actions

pytestmark = pytest.mark.infra


def test_the_catalogue_and_the_grants_table_agree() -> None:
    check_grants()


def test_a_setting_without_a_grant_is_refused() -> None:
    functions = tuple(
        replace(spec, settings=spec.settings | {Setting.OTP_TABLE}) if spec.id == "WsSync" else spec
        for spec in FUNCTIONS
    )
    with pytest.raises(ValueError, match=r"WsSync: reads .*PARLEY_OTP_TABLE"):
        check_grants(functions, GRANTS)


def test_a_grant_without_a_setting_is_refused() -> None:
    grants = dict(GRANTS)
    grants["WsTyping"] = dataclasses.replace(GRANTS["WsTyping"], read_signing_secret=True)
    with pytest.raises(ValueError, match=r"WsTyping: granted .*PARLEY_SIGNING_SECRET_ARN"):
        check_grants(FUNCTIONS, grants)


def test_a_function_missing_from_the_grants_table_is_refused() -> None:
    grants = {k: v for k, v in GRANTS.items() if k != "WsAck"}
    grants["Ghost"] = FunctionGrants()
    with pytest.raises(ValueError, match="WsAck: no entry") as refused:
        check_grants(FUNCTIONS, grants)
    assert "Ghost: granted, but not in the catalogue" in str(refused.value)


def test_no_operation_set_includes_scan() -> None:
    every = table_actions(Ops.READ | Ops.WRITE | Ops.DELETE)
    assert "dynamodb:Scan" not in every
    assert "dynamodb:Query" in every


def test_delete_is_separate_from_write() -> None:
    assert "dynamodb:DeleteItem" not in table_actions(Ops.READ | Ops.WRITE)
    assert table_actions(Ops.DELETE) == ["dynamodb:DeleteItem"]
