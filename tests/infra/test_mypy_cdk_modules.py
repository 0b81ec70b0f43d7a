"""mypy checks the CDK code against the aws_cdk modules it uses and skips the others
(pyproject.toml: aws_cdk's package imports its ~300 service modules, and analysing
them all was most of mypy's time on a fresh clone). A skipped module is Any to mypy,
so a module the stacks start using must join the checked list: this holds the list
to the imports of the code mypy checks."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

pytestmark = pytest.mark.infra

ROOT = Path(__file__).resolve().parents[2]


def _mypy_config() -> dict[str, object]:
    config: dict[str, object] = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]
    return config


def _follow(module: str) -> str:
    """follow_imports for `module`, as mypy resolves overlapping overrides: an exact
    name before a pattern, a longer pattern before a shorter one."""
    best: tuple[int, str] = (-1, "normal")
    for override in _mypy_config()["overrides"]:  # type: ignore[attr-defined]
        if "follow_imports" not in override:
            continue
        for pattern in override["module"]:
            if pattern == module:
                rank = 10_000
            elif pattern.endswith(".*") and (module + ".").startswith(pattern[:-1]):
                rank = len(pattern)
            else:
                continue
            if rank > best[0]:
                best = (rank, override["follow_imports"])
    return best[1]


def _cdk_modules_imported() -> dict[str, str]:
    """Every aws_cdk module imported by the files mypy checks -> where (file:line)."""
    found: dict[str, str] = {}
    for entry in _mypy_config()["files"]:  # type: ignore[attr-defined]
        path = ROOT / entry
        for file in [path] if path.is_file() else sorted(path.rglob("*.py")):
            tree = ast.parse(file.read_text(), str(file))
            for node in ast.walk(tree):
                names: list[str] = []
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module:
                    names = [node.module]
                    if node.module == "aws_cdk":
                        names += [f"aws_cdk.{a.name}" for a in node.names if a.name.islower()]
                for name in names:
                    if name == "aws_cdk" or name.startswith("aws_cdk."):
                        found.setdefault(name, f"{file.relative_to(ROOT)}:{node.lineno}")
    return found


def test_every_aws_cdk_module_the_code_imports_is_checked_by_mypy() -> None:
    imported = _cdk_modules_imported()
    assert "aws_cdk.aws_lambda" in imported  # the reading finds the stacks' imports
    skipped = {name: where for name, where in imported.items() if _follow(name) != "normal"}
    assert not skipped, (
        f"add these to the checked aws_cdk modules in pyproject.toml ([tool.mypy]): {skipped}"
    )


def test_the_modules_nobody_imports_are_skipped() -> None:
    assert _follow("aws_cdk.aws_quicksight") == "skip"
    assert _follow("aws_cdk.aws_ec2") == "skip"
    assert _follow("aws_cdk") == "normal"
