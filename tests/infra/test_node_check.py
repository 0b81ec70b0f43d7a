"""The Makefile's Node.js check, run with a stand-in `node` first on PATH: supported
versions pass silently, older ones from 18 warn in one line and go on, and a missing
or too old Node.js stops with what to install."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.infra

ROOT = Path(__file__).resolve().parents[2]
MAKE = shutil.which("make")


def _node_check(tmp_path: Path, version: str | None) -> subprocess.CompletedProcess[str]:
    """`make node-check` where `node` is a script reporting `version` (None: no node)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    if version is not None:
        node = bin_dir / "node"
        major = version.lstrip("v").split(".")[0]
        node.write_text(
            f'#!/bin/sh\nif [ "$1" = "-p" ]; then echo {major}; else echo {version}; fi\n'
        )
        node.chmod(0o755)
    assert MAKE is not None, "make is needed to run the Makefile"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}
    env["PATH"] = str(bin_dir)
    return subprocess.run(
        [MAKE, "--no-print-directory", "-s", "node-check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("version", ["v22.11.0", "v24.1.0"])
def test_supported_versions_pass_silently(tmp_path: Path, version: str) -> None:
    result = _node_check(tmp_path, version)
    assert result.returncode == 0, result.stderr
    assert result.stdout + result.stderr == ""


@pytest.mark.parametrize("version", ["v18.20.4", "v20.20.2", "v23.3.0"])
def test_older_versions_warn_in_one_line_and_go_on(tmp_path: Path, version: str) -> None:
    result = _node_check(tmp_path, version)
    assert result.returncode == 0, result.stderr
    (line,) = (result.stdout + result.stderr).splitlines()
    assert line.startswith("warning:")
    assert version in line
    assert "22 and 24" in line


@pytest.mark.parametrize(
    ("version", "words"), [("v16.20.0", ["v16.20.0", "too old"]), (None, ["not found"])]
)
def test_a_missing_or_too_old_node_stops_with_what_to_install(
    tmp_path: Path, version: str | None, words: list[str]
) -> None:
    result = _node_check(tmp_path, version)
    assert result.returncode != 0
    for word in [*words, "Node.js 22 or 24"]:
        assert word in result.stderr
