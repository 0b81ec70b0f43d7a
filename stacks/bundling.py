"""The Lambda asset, built on this machine with pip: never with Docker.

The asset is lambdas/parley_server plus the wheels of lambdas/requirements.txt
for Lambda's platform (Python 3.13 on arm64), fetched by pip with --platform so
no Linux/arm64 machine or container is needed. One asset serves every function.

Packages the Lambda runtime already provides (boto3 and its dependencies) are
removed after pip ran: a copy in the asset would shadow the runtime's matched
boto3/botocore pair with a botocore of a different version, and add ~25 MB.

Bytecode: Lambda's /var/task is read-only, so an asset without .pyc files is
compiled from source at every cold start (about half of a handler's import time).
When a Python 3.13 interpreter is on this machine (`python3.13`, or the one
PARLEY_BYTECODE_PYTHON names), the asset is compiled with it, as unchecked-hash
.pyc files (valid whatever the files' times after unzipping). Without one the
asset is built as before and the synth says what it costs.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsii
from aws_cdk import AssetHashType, BundlingOptions, DockerImage, ILocalBundling
from aws_cdk import aws_lambda as lambda_

__all__ = [
    "BYTECODE_PYTHON",
    "LAMBDA_PLATFORMS",
    "LAMBDA_PYTHON",
    "RUNTIME_PROVIDED",
    "PipLocalBundling",
    "build_asset",
    "bytecode_python",
    "lambda_code",
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


def _pip_install(requirements: Path, target: Path) -> None:
    platforms = [arg for platform in LAMBDA_PLATFORMS for arg in ("--platform", platform)]
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-compile",  # this Python's .pyc files would be useless to 3.13
        *platforms,
        "--implementation",
        "cp",
        "--python-version",
        LAMBDA_PYTHON,
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
            f"(Python {LAMBDA_PYTHON}, {', '.join(LAMBDA_PLATFORMS)}); see its output above"
        )


def _remove_runtime_provided(target: Path) -> list[str]:
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


def bytecode_python(version: str = LAMBDA_PYTHON) -> str | None:
    """An interpreter of `version` on this machine (PARLEY_BYTECODE_PYTHON, else
    `python<version>` on the PATH), or None."""
    found = os.environ.get(BYTECODE_PYTHON) or shutil.which(f"python{version}")
    if not found:
        return None
    try:
        answer = subprocess.run(  # noqa: S603 (an interpreter the deployer has)
            [found, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return found if answer.stdout.strip() == version else None


def _compile(output: Path, version: str) -> bool:
    """Compile the asset's modules with an interpreter of `version`; False if none."""
    python = bytecode_python(version)
    if python is None:
        print(
            f"note: no Python {version} here (python{version} or ${BYTECODE_PYTHON}): the"
            " Lambda asset ships without bytecode, so each cold start compiles its modules"
            " (about twice the import time). Install Python "
            f"{version} to build a faster asset.",
            file=sys.stderr,
        )
        return False
    subprocess.run(  # noqa: S603
        [
            python,
            "-m",
            "compileall",
            "-q",
            "-j",
            "0",
            "--invalidation-mode",
            "unchecked-hash",
            str(output),
        ],
        check=True,
        timeout=600,
    )
    return True


def build_asset(
    output: Path, *, source: Path, requirements: Path, python: str = LAMBDA_PYTHON
) -> None:
    """Fill `output` with the Lambda asset: the requirements' wheels + the package,
    compiled for Python `python` when an interpreter of it is here."""
    output.mkdir(parents=True, exist_ok=True)
    _pip_install(requirements, output)
    _remove_runtime_provided(output)
    shutil.rmtree(output / "bin", ignore_errors=True)  # console scripts: unused on Lambda
    shutil.copytree(source / PACKAGE, output / PACKAGE, ignore=_JUNK, dirs_exist_ok=True)
    _compile(output, python)


@jsii.implements(ILocalBundling)
class PipLocalBundling:
    """CDK local bundling: builds the asset with pip, or fails the synth.

    It never answers False, because False would make the CDK fall back to
    bundling in a Docker container, and the machines that build Parley have none.
    """

    def __init__(self, source: Path) -> None:
        self._source = source

    def try_bundle(self, output_dir: str, *, image: DockerImage, **_options: Any) -> bool:
        build_asset(
            Path(output_dir), source=self._source, requirements=self._source / "requirements.txt"
        )
        return True


def lambda_code(source: Path) -> lambda_.Code:
    """The one asset every function runs: `source` is the lambdas/ directory.

    Its hash is taken from the source (package + requirements.txt), so an
    unchanged source reuses the bundle already in cdk.out instead of running pip.
    """
    return lambda_.Code.from_asset(
        str(source),
        asset_hash_type=AssetHashType.SOURCE,
        exclude=["**/__pycache__", "**/*.pyc", "**/.mypy_cache", "**/.pytest_cache"],
        bundling=BundlingOptions(
            # Required by the API, never pulled: local bundling always succeeds or raises.
            image=DockerImage.from_registry("parley-bundles-locally-without-docker"),
            local=PipLocalBundling(source),
        ),
    )
