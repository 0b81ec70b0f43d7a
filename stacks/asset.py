"""The Lambda asset, built on this machine with pip: never with Docker.

The asset is lambdas/parley_server plus the wheels of lambdas/requirements.txt
for Lambda's platform (Python 3.13 on arm64), fetched by pip with --platform so
no Linux/arm64 machine or container is needed. One asset serves every function.

Packages the Lambda runtime already provides (boto3 and its dependencies) are
removed after pip ran: a copy in the asset would shadow the runtime's matched
boto3/botocore pair with a botocore of a different version, and add ~25 MB.

Bytecode: Lambda's /var/task is read-only, so an asset without .pyc files is
compiled from source at every cold start (about half of a handler's import time).
When a Python 3.13 interpreter is on this machine (the one PARLEY_BYTECODE_PYTHON
names, else `python3.13` on the PATH, else one installed by pyenv or uv), the asset
is compiled with it, as unchecked-hash .pyc files (valid whatever the files' times
after unzipping). Without one the
asset is built as before and the synth says what it costs.

stacks/bundling.py plugs this into the CDK; this module imports no CDK, so the
benchmarks build the same asset without starting jsii.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
from pathlib import Path

__all__ = [
    "BYTECODE_PYTHON",
    "LAMBDA_PLATFORMS",
    "LAMBDA_PYTHON",
    "PACKAGE",
    "RUNTIME_PROVIDED",
    "build_asset",
    "bytecode_python",
    "compile_bytecode",
    "install_requirements",
    "remove_runtime_provided",
]

LAMBDA_PYTHON = "3.13"
# Lambda's Python 3.13 runs on Amazon Linux 2023 (glibc 2.34): manylinux_2_28
# wheels and older ones (manylinux2014 = manylinux_2_17) all load there.
LAMBDA_PLATFORMS = ("manylinux2014_aarch64", "manylinux_2_28_aarch64")
# Distributions the python3.13 runtime ships (boto3 and what it depends on).
RUNTIME_PROVIDED = frozenset(
    {"boto3", "botocore", "s3transfer", "jmespath", "python-dateutil", "six", "urllib3"}
)
PACKAGE = "parley_server"
_JUNK = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo", ".mypy_cache", ".pytest_cache")


def install_requirements(
    requirements: Path,
    target: Path,
    platforms: tuple[str, ...] = LAMBDA_PLATFORMS,
    python_version: str = LAMBDA_PYTHON,
) -> None:
    """pip's wheels of `requirements` for CPython `python_version` on `platforms` into
    `target`."""
    wanted = [arg for platform in platforms for arg in ("--platform", platform)]
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-compile",  # this Python's .pyc files would be useless to 3.13
        *wanted,
        "--implementation",
        "cp",
        "--python-version",
        python_version,
        "--only-binary=:all:",
        "--target",
        str(target),
        "-r",
        str(requirements),
    ]
    # stdout carries nothing we need; pip's errors go to stderr, shown as they come
    result = subprocess.run(command, stdout=sys.stderr, check=False)  # noqa: S603
    if result.returncode != 0:
        raise RuntimeError(
            f"pip could not install {requirements} for Lambda "
            f"(Python {python_version}, {', '.join(platforms)}); see its output above"
        )


def remove_runtime_provided(target: Path) -> list[str]:
    """Remove the distributions the Lambda runtime provides from `target`."""
    removed = []
    for dist in importlib.metadata.distributions(path=[str(target)]):
        name = dist.metadata["Name"].lower().replace("_", "-")
        if name not in RUNTIME_PROVIDED:
            continue
        for file in dist.files or ():
            path = Path(str(dist.locate_file(file))).resolve()
            if path.is_relative_to(target) and path.is_file():
                path.unlink()
        removed.append(name)
    # what is left of their directories: empty folders and stale bytecode caches
    for folder in sorted(target.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
    return sorted(removed)


# names an interpreter of the Lambda runtime's version to compile the asset with
BYTECODE_PYTHON = "PARLEY_BYTECODE_PYTHON"


def _installed_pythons(version: str) -> list[str]:
    """Interpreters of `version` that pyenv or uv installed (neither need be active)."""
    pyenv = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    uv = Path(os.environ.get("UV_PYTHON_INSTALL_DIR") or Path.home() / ".local/share/uv/python")
    found = sorted(pyenv.glob(f"{version}.*/bin/python{version}"), reverse=True)
    found += sorted(uv.glob(f"cpython-{version}.*/bin/python{version}"), reverse=True)
    return [str(path) for path in found]


def bytecode_python(version: str = LAMBDA_PYTHON) -> str | None:
    """An interpreter of `version` on this machine, or None: the one
    PARLEY_BYTECODE_PYTHON names if it is set, else `python<version>` on the PATH (a
    pyenv shim of a version not selected does not run), else one pyenv or uv installed."""
    named = os.environ.get(BYTECODE_PYTHON)
    if named:
        return named if _is_version(named, version) else None
    on_path = shutil.which(f"python{version}")
    candidates = ([on_path] if on_path else []) + _installed_pythons(version)
    return next((found for found in candidates if _is_version(found, version)), None)


def _is_version(found: str, version: str) -> bool:
    try:
        answer = subprocess.run(  # noqa: S603 (an interpreter the deployer has)
            [found, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return answer.stdout.strip() == version


def _compile(output: Path, version: str) -> bool:
    """Compile the asset's modules with an interpreter of `version`; False if none."""
    python = bytecode_python(version)
    if python is None:
        print(
            f"note: no Python {version} here (${BYTECODE_PYTHON}, python{version}, pyenv's"
            " or uv's): the Lambda asset ships without bytecode, so each cold start"
            " compiles its modules (about twice the import time). Install Python "
            f"{version} to build a faster asset.",
            file=sys.stderr,
        )
        return False
    compile_bytecode(python, output)
    return True


def compile_bytecode(python: str, directory: Path) -> None:
    """Compile every module under `directory` with `python`, as unchecked-hash .pyc
    files (valid whatever the files' times after unzipping)."""
    mode = ["--invalidation-mode", "unchecked-hash"]
    subprocess.run(  # noqa: S603 (an interpreter the deployer has)
        [python, "-m", "compileall", "-q", "-j", "0", *mode, str(directory)],
        check=True,
        timeout=600,
    )


def build_asset(
    output: Path, *, source: Path, requirements: Path, python: str = LAMBDA_PYTHON
) -> None:
    """Fill `output` with the Lambda asset: the requirements' wheels + the package,
    compiled for Python `python` when an interpreter of it is here."""
    output.mkdir(parents=True, exist_ok=True)
    install_requirements(requirements, output)
    remove_runtime_provided(output)
    shutil.rmtree(output / "bin", ignore_errors=True)  # console scripts: unused on Lambda
    shutil.copytree(source / PACKAGE, output / PACKAGE, ignore=_JUNK, dirs_exist_ok=True)
    _compile(output, python)
