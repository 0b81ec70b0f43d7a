"""The Lambda asset, built the way `make synth` builds it (pip, no Docker):
Linux/arm64 CPython 3.13 binaries, the package, and no copy of the runtime's boto3.

This runs pip for real (wheels come from the pip cache or the index).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from stacks import asset as asset_module
from stacks.asset import NO_BYTECODE
from stacks.bundling import BYTECODE_PYTHON, PipLocalBundling, build_asset, bytecode_python

pytestmark = pytest.mark.infra

LAMBDAS = Path(__file__).resolve().parents[2] / "lambdas"
ELF_AARCH64 = 183  # e_machine of an ELF file built for arm64


@pytest.fixture(scope="module")
def asset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("asset")
    started = time.perf_counter()
    # called as the CDK calls it during synthesis
    assert PipLocalBundling(LAMBDAS).try_bundle(str(out), image=None) is True  # type: ignore[arg-type]
    print(
        f"\nasset built in {time.perf_counter() - started:.1f} s: "
        f"{sum(f.stat().st_size for f in out.rglob('*') if f.is_file()) / 1e6:.1f} MB"
    )
    return out


def _machine(path: Path) -> int:
    header = path.read_bytes()[:20]
    assert header[:4] == b"\x7fELF", path
    return int.from_bytes(header[18:20], "little")


def test_asset_holds_the_server_package_and_bytecode_only_for_3_13(asset: Path) -> None:
    assert (asset / "parley_server" / "catalogue.py").is_file()
    assert (asset / "parley_server" / "handlers").is_dir()
    compiled = {p.name.split(".")[-2] for p in asset.rglob("__pycache__/*.pyc")}
    # this machine's own .pyc files would be useless to Lambda's 3.13
    assert compiled <= {"cpython-313"}
    assert bool(compiled) == (bytecode_python() is not None)


def test_with_an_interpreter_of_the_version_the_asset_is_compiled_unchecked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    # this machine's Python stands in for Lambda's 3.13 (the mechanism is the same)
    here = f"{sys.version_info[0]}.{sys.version_info[1]}"
    monkeypatch.setenv(BYTECODE_PYTHON, sys.executable)
    source = tmp_path / "src"
    (source / "parley_server").mkdir(parents=True)
    (source / "parley_server" / "__init__.py").write_text("VALUE = 1\n")
    (source / "requirements.txt").write_text("")

    build_asset(
        tmp_path / "out", source=source, requirements=source / "requirements.txt", python=here
    )

    (pyc,) = (tmp_path / "out" / "parley_server" / "__pycache__").glob("*.pyc")
    assert pyc.name == f"__init__.{sys.implementation.cache_tag}.pyc"
    flags = int.from_bytes(pyc.read_bytes()[4:8], "little")
    assert flags == 0b01  # hash-based, source never checked: file times do not matter
    assert "no Python" not in capfd.readouterr().err

    monkeypatch.setenv(BYTECODE_PYTHON, "/nonexistent/python")
    build_asset(
        tmp_path / "bare", source=source, requirements=source / "requirements.txt", python=here
    )
    assert not list((tmp_path / "bare").rglob("*.pyc"))
    assert f"names /nonexistent/python, not a Python {here}" in capfd.readouterr().err


def test_compiled_dependencies_are_for_cpython_313_on_arm64(asset: Path) -> None:
    (msgspec_core,) = (asset / "msgspec").glob("_core.*.so")
    assert msgspec_core.name == "_core.cpython-313-aarch64-linux-gnu.so"
    (sodium,) = (asset / "nacl").glob("_sodium*.so")
    for library in (msgspec_core, sodium, *asset.glob("_cffi_backend*.so")):
        assert _machine(library) == ELF_AARCH64, library


def test_every_requirement_is_installed(asset: Path) -> None:
    for package in ("aws_lambda_powertools", "aws_xray_sdk", "msgspec", "jwt", "nacl"):
        assert (asset / package / "__init__.py").is_file(), package
    assert (asset / "phonenumbers").is_dir()
    # the HTTP API checks its requests with msgspec: pydantic would be shipped unused
    assert not (asset / "pydantic").exists()


def test_the_runtime_boto3_is_not_shadowed(asset: Path) -> None:
    for provided in ("boto3", "botocore", "s3transfer", "urllib3", "dateutil", "jmespath"):
        assert not (asset / provided).exists(), provided
    assert not list(asset.glob("botocore-*.dist-info"))


def test_a_failed_install_fails_loudly_instead_of_falling_back(tmp_path: Path) -> None:
    source = tmp_path / "src"
    (source / "parley_server").mkdir(parents=True)
    (source / "requirements.txt").write_text("--no-index\nno-such-package-for-parley==1.0\n")
    with pytest.raises(RuntimeError, match="pip could not install"):
        build_asset(tmp_path / "out", source=source, requirements=source / "requirements.txt")


def _fake_python(path: Path, prints: str | None) -> None:
    """An executable that answers the version check with `prints` (None: fails, as a
    pyenv shim of a version that is not selected does)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    body = f"echo {prints}" if prints is not None else "echo 'pyenv: not selected' >&2; exit 127"
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)


def test_an_interpreter_pyenv_installed_is_found_when_the_path_has_only_a_failing_shim(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(BYTECODE_PYTHON, raising=False)
    _fake_python(tmp_path / "shims" / "python3.13", None)
    installed = tmp_path / "pyenv" / "versions" / "3.13.4" / "bin" / "python3.13"
    _fake_python(installed, "3.13")
    monkeypatch.setenv("PATH", str(tmp_path / "shims"))
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path / "pyenv"))
    monkeypatch.setenv("UV_PYTHON_INSTALL_DIR", str(tmp_path / "uv"))
    assert bytecode_python("3.13") == str(installed)

    # one of another version is no use; nor is any when the variable names a wrong one
    _fake_python(installed, "3.12")
    assert bytecode_python("3.13") is None
    _fake_python(installed, "3.13")
    monkeypatch.setenv(BYTECODE_PYTHON, str(tmp_path / "shims" / "python3.13"))
    assert bytecode_python("3.13") is None


def _fake_uv(path: Path, log: Path, python: str | None) -> None:
    """A uv that logs its arguments and 'installs' `python` (a script that runs this
    interpreter), or fails as uv does without a network (None)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if python is None:
        install = (
            "echo 'error: Failed to install cpython' >&2; echo '  cause: dns error' >&2; exit 1"
        )
    else:
        script = f'#!/bin/sh\\nexec {sys.executable} "$@"\\n'
        install = f"printf '{script}' > {python}; /bin/chmod +x {python}"
    path.write_text(
        "#!/bin/sh\n"
        f'echo "$*" >> {log}\n'
        'case "$2" in\n'
        f"  install) {install} ;;\n"
        f"  find) echo {python} ;;\n"
        "esac\n"
    )
    path.chmod(0o755)


@pytest.fixture
def no_python_here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A machine with no interpreter of this version: an empty PATH, pyenv and uv
    directories; returns the source of a one-module asset."""
    monkeypatch.delenv(BYTECODE_PYTHON, raising=False)
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path / "pyenv"))
    monkeypatch.setenv("UV_PYTHON_INSTALL_DIR", str(tmp_path / "uv"))
    source = tmp_path / "src"
    (source / "parley_server").mkdir(parents=True)
    (source / "parley_server" / "__init__.py").write_text("VALUE = 1\n")
    (source / "requirements.txt").write_text("")
    return source


HERE = f"{sys.version_info[0]}.{sys.version_info[1]}"  # this Python stands in for 3.13


def _build(source: Path, out: Path) -> None:
    build_asset(out, source=source, requirements=source / "requirements.txt", python=HERE)


def _uv_that(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, fetches: bool) -> Path:
    """The fake uv in place of .venv's (one that installs an interpreter, or fails as
    uv does without a network); returns the file it logs its calls to."""
    log = tmp_path / "uv.log"
    _fake_uv(tmp_path / "bin" / "uv", log, str(tmp_path / "fetched-python") if fetches else None)
    monkeypatch.setattr(asset_module, "_uv", lambda: str(tmp_path / "bin" / "uv"))
    return log


def test_without_an_interpreter_uv_fetches_one_and_the_asset_is_compiled_with_it(
    no_python_here: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    log = _uv_that(tmp_path, monkeypatch, fetches=True)

    _build(no_python_here, tmp_path / "out")

    assert log.read_text().splitlines() == [
        f"python install {HERE}",
        f"python find --managed-python {HERE}",
    ]
    (pyc,) = (tmp_path / "out" / "parley_server" / "__pycache__").glob("*.pyc")
    assert pyc.name == f"__init__.{sys.implementation.cache_tag}.pyc"
    err = capfd.readouterr().err
    assert f"fetching Python {HERE} with uv" in err
    assert "without bytecode" not in err


def test_when_uv_cannot_fetch_the_asset_ships_source_and_the_synth_says_why(
    no_python_here: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    log = _uv_that(tmp_path, monkeypatch, fetches=False)

    _build(no_python_here, tmp_path / "out")

    assert log.read_text().splitlines() == [f"python install {HERE}"]
    assert not list((tmp_path / "out").rglob("*.pyc"))
    assert (tmp_path / "out" / "parley_server" / "__init__.py").is_file()
    err = capfd.readouterr().err
    assert f"uv could not fetch Python {HERE}: cause: dns error" in err
    assert f"no Python {HERE} here" in err
    assert "ships without bytecode" in err


@pytest.mark.parametrize("named", [NO_BYTECODE, "/nonexistent/python"])
def test_a_named_choice_is_kept_and_nothing_is_fetched(
    named: str,
    no_python_here: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    log = _uv_that(tmp_path, monkeypatch, fetches=True)
    monkeypatch.setenv(BYTECODE_PYTHON, named)

    _build(no_python_here, tmp_path / "out")

    assert not log.exists()
    assert not list((tmp_path / "out").rglob("*.pyc"))
    assert f"${BYTECODE_PYTHON}" in capfd.readouterr().err
