"""`python -m local`'s options: flags, their environment variables, and bad values."""

from __future__ import annotations

import pytest

from local.serve import parse_args


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "PARLEY_PORT",
        "PARLEY_LOCAL_FILE",
        "PARLEY_WS_IDLE_TIMEOUT",
        "PARLEY_WS_MAX_DURATION",
    ):
        monkeypatch.delenv(name, raising=False)


def test_defaults_are_api_gateways_and_the_documented_port() -> None:
    args = parse_args([])
    assert (args.host, args.port) == ("127.0.0.1", 8787)
    assert args.local_file == "~/.parley/local.json"
    assert (args.idle_timeout, args.max_connection_duration) == (600.0, 7200.0)


def test_environment_variables_set_the_defaults_and_flags_win(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PARLEY_PORT", "9000")
    monkeypatch.setenv("PARLEY_LOCAL_FILE", "/tmp/p.json")
    monkeypatch.setenv("PARLEY_WS_IDLE_TIMEOUT", "1.5")
    monkeypatch.setenv("PARLEY_WS_MAX_DURATION", "30")
    args = parse_args([])
    assert (args.port, args.local_file) == (9000, "/tmp/p.json")
    assert (args.idle_timeout, args.max_connection_duration) == (1.5, 30.0)
    assert parse_args(["--port", "0", "--idle-timeout", "2"]).port == 0
    assert parse_args(["--idle-timeout", "2"]).idle_timeout == 2.0


@pytest.mark.parametrize(
    ("env", "argv"),
    [
        ({"PARLEY_PORT": "eighty"}, []),
        ({}, ["--idle-timeout", "0"]),
        ({"PARLEY_WS_MAX_DURATION": "-1"}, []),
    ],
)
def test_bad_values_are_usage_errors(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], argv: list[str]
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as stopped:
        parse_args(argv)
    assert stopped.value.code == 2
