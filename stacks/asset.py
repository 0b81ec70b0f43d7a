"""The Lambda asset, built on this machine with pip: never with Docker.

The asset is lambdas/parley_server plus the wheels of lambdas/requirements.txt
for Lambda's platform (Python 3.13 on arm64), fetched by pip with --platform so
no Linux/arm64 machine or container is needed. One asset serves every function.

Packages the Lambda runtime already provides (boto3 and its dependencies) are
removed after pip ran: a copy in the asset would shadow the runtime's matched
boto3/botocore pair with a botocore of a different version, and add ~25 MB.

Bytecode: Lambda's /var/task is read-only, so an asset without .pyc files is
compiled from source at every cold start (about half of a handler's import time).
The asset is compiled with a Python 3.13 interpreter, as unchecked-hash .pyc files
(valid whatever the files' times after unzipping): the one PARLEY_BYTECODE_PYTHON
names, else `python3.13` on the PATH, else one installed by pyenv or uv. When the
machine has none, uv (which `make` installs into .venv) fetches one, once, into
its own directory. Only when that fails too (no network), or when
PARLEY_BYTECODE_PYTHON=none asks for it, is the asset built without bytecode, and
the synth says what that costs.

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
    "NO_BYTECODE",
    "PACKAGE",
    "RUNTIME_PROVIDED",
    "build_asset",
    "bytecode_python",
    "compile_bytecode",
    "fetch_python",
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
# its value that asks for an asset without bytecode (nothing looked for or fetched)
NO_BYTECODE = "none"


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
    if named == NO_BYTECODE:
        return None
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


def _uv() -> str | None:
    """uv: the one beside this interpreter (make installs it into .venv), else the PATH's."""
    beside = Path(sys.executable).with_name("uv")
    return str(beside) if beside.is_file() else shutil.which("uv")


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def fetch_python(version: str = LAMBDA_PYTHON) -> str | None:
    """Have uv install a CPython of `version` (into uv's own directory, once: uv
    keeps it for the next synth) and return its interpreter; None, with the reason
    on stderr, when there is no uv or it cannot (no network)."""
    uv = _uv()
    if uv is None:
        print(f"note: no uv here to fetch Python {version} with", file=sys.stderr)
        return None
    print(
        f"fetching Python {version} with uv to compile the Lambda asset"
        f" (once: about 20 MB, kept in uv's Python directory; ${BYTECODE_PYTHON}"
        " names another interpreter)",
        file=sys.stderr,
    )
    try:
        subprocess.run(  # noqa: S603 (the uv make installed)
            [uv, "python", "install", version],
            capture_output=True,
            text=True,
            timeout=600,
            check=True,
        )
        found = subprocess.run(  # noqa: S603
            [uv, "python", "find", "--managed-python", version],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
    except subprocess.CalledProcessError as error:
        print(
            f"note: uv could not fetch Python {version}: {_last_line(error.stderr)}",
            file=sys.stderr,
        )
        return None
    except (OSError, subprocess.SubprocessError) as error:
        print(f"note: uv could not fetch Python {version}: {error}", file=sys.stderr)
        return None
    python = found.stdout.strip()
    return python if python and _is_version(python, version) else None


def _compile(output: Path, version: str) -> bool:
    """Compile the asset's modules with an interpreter of `version`, fetched by uv if
    the machine has none; False if there is none to be had, or none was wanted."""
    named = os.environ.get(BYTECODE_PYTHON)
    python = bytecode_python(version)
    if python is None and not named:
        python = fetch_python(version)
    if python is None:
        if named == NO_BYTECODE:
            why = f"${BYTECODE_PYTHON}={NO_BYTECODE}"
        elif named:
            why = f"${BYTECODE_PYTHON} names {named}, not a Python {version}"
        else:
            why = (
                f"no Python {version} here (python{version}, pyenv's or uv's),"
                " nor one uv could fetch"
            )
        print(
            f"note: {why}: the Lambda asset ships without bytecode, so each cold start"
            " compiles its modules (about twice the import time). Install Python "
            f"{version}, or let uv fetch one, to build a faster asset.",
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
