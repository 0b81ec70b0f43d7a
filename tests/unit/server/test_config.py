"""The configuration is read once per process; what handlers build from it is
built once per configuration, and again only after it is reloaded."""

from __future__ import annotations

import pytest

from parley_server.catalogue import Setting
from parley_server.config import Config, load_config, per_config, reset_config


def test_what_is_built_from_the_configuration_is_rebuilt_only_when_it_is_reloaded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(Setting.USERS_TABLE.value, "first")
    reset_config()
    built: list[Config] = []

    def build(config: Config) -> tuple[str]:
        built.append(config)
        return (config.users_table,)

    current = per_config(build)
    first = current()
    assert current() is first
    assert built == [load_config()]

    monkeypatch.setenv(Setting.USERS_TABLE.value, "second")
    assert current() is first  # the environment is read once per process
    reset_config()
    assert current() == ("second",)
    assert len(built) == 2
    reset_config()


def test_a_configuration_shown_in_a_log_leaves_the_environment_out() -> None:
    config = Config.from_environ({"AWS_SESSION_TOKEN": "s3cr3t", Setting.USERS_TABLE.value: "t"})
    assert config.users_table == "t"
    assert "s3cr3t" not in repr(config)
    assert "limits=" in repr(config)


def test_settings_derived_once_are_kept_on_the_configuration() -> None:
    config = Config.from_environ({Setting.TEST_NUMBERS.value: '["+1 206 555 0142"]'})
    numbers = config.test_numbers
    assert numbers == {"+12065550142"}
    assert config.test_numbers is numbers  # cached_property: parsed once, kept on the Struct
