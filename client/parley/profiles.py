"""Where profiles live: ~/.parley/profiles/<name>/ (PARLEY_HOME overrides ~/.parley)."""

from __future__ import annotations

import os
import re
from pathlib import Path

from parley.errors import ConfigurationError

__all__ = ["parley_home", "profile_dir"]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def parley_home() -> Path:
    """The root of everything the client keeps on disk."""
    override = os.environ.get("PARLEY_HOME")
    return Path(override).expanduser() if override else Path.home() / ".parley"


def profile_dir(name: str, home: Path | None = None) -> Path:
    """The directory of profile `name` (one account on one device). Not created here."""
    if not _NAME.fullmatch(name):
        raise ConfigurationError(
            f"bad profile name {name!r}: use letters, digits, '.', '_' or '-' (at most 64)"
        )
    return (home or parley_home()) / "profiles" / name
