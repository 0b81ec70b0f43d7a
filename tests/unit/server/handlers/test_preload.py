"""Every handler imports, at its cold start, the modules of each adapter it uses
(`wiring.preload`), so none of that import waits for its first request; and it
imports nothing heavy that it does not use."""

from __future__ import annotations

import ast
import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

from parley_server import wiring
from parley_server.catalogue import FUNCTIONS, Setting

HANDLERS = sorted({spec.handler.rsplit(".", 1)[0] for spec in FUNCTIONS})
_PACKAGE = "parley_server.handlers"
_USE = re.compile(r"(?:\bdeps|\badapters\(\))\.([a-z_]+)")


def _tree(module: str) -> tuple[str, ast.Module]:
    source = Path(importlib.import_module(module).__file__ or "").read_text()
    return source, ast.parse(source)


def _helpers(tree: ast.Module) -> tuple[dict[str, str], dict[str, tuple[str, str]]]:
    """The handler helper modules a module imports (alias -> module) and the helper
    functions it imports by name (name -> (module, function))."""
    modules: dict[str, str] = {}
    functions: dict[str, tuple[str, str]] = {}
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(_PACKAGE):
            for alias in node.names:
                if node.module == _PACKAGE:
                    modules[alias.asname or alias.name] = f"{_PACKAGE}.{alias.name}"
                else:
                    functions[alias.asname or alias.name] = (node.module or "", alias.name)
    return modules, functions


def _calls(node: ast.AST, module: str, tree: ast.Module) -> set[tuple[str, str]]:
    """The helper functions `node` refers to: in other handler modules, and the
    module's own top-level functions."""
    modules, functions = _helpers(tree)
    own = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    found: set[tuple[str, str]] = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Attribute) and isinstance(sub.value, ast.Name):
            if sub.value.id in modules:
                found.add((modules[sub.value.id], sub.attr))
        elif isinstance(sub, ast.Name):
            if sub.id in functions:
                found.add(functions[sub.id])
            elif sub.id in own:
                found.add((module, sub.id))
    return found


def _used(module: str) -> set[str]:
    """Every adapter the handler module, and the helper functions it reaches, use."""
    source, tree = _tree(module)
    names = set(_USE.findall(source))
    todo = sorted(_calls(tree, module, tree) - {(module, n) for n in _own(tree)})
    seen: set[tuple[str, str]] = set()
    while todo:
        helper, function = todo.pop()
        if (helper, function) in seen:
            continue
        seen.add((helper, function))
        helper_source, helper_tree = _tree(helper)
        node = next((n for n in helper_tree.body if getattr(n, "name", None) == function), None)
        if node is None:
            continue  # a class or a constant
        names |= set(_USE.findall(ast.get_source_segment(helper_source, node) or ""))
        todo += sorted(_calls(node, helper, helper_tree) - seen)
    return names - {"config"}


def _own(tree: ast.Module) -> set[str]:
    return {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}


@pytest.mark.parametrize("module", HANDLERS)
def test_a_handler_preloads_every_adapter_it_uses(module: str) -> None:
    handler = importlib.import_module(module)
    preloaded: frozenset[str] = handler.PRELOADED
    assert _used(module) <= preloaded, f"{module} uses adapters it does not preload"
    assert preloaded <= set(wiring.ADAPTER_MODULES)


# settings whose value is parsed (the rest name resources, nothing is called)
_SETTING_VALUES = {
    Setting.WS_ENDPOINT.value: "https://example.invalid/prod",
    Setting.PUSH_APPS.value: "{}",
    Setting.LIMITS.value: "{}",
    Setting.SMS_ORIGINATION.value: "{}",
    Setting.TEST_NUMBERS.value: "[]",
    Setting.GROUP_FANOUT_QUEUE.value: "https://example.invalid/q.fifo",
    Setting.SIGNING_SECRET_ARN.value: "arn:aws:secretsmanager:us-east-1:1:secret:x",
    # the kvs relays, the ones with clients to build
    Setting.CALL_RELAYS.value: "kvs",
    Setting.CALL_CHANNELS.value: '["arn:aws:kinesisvideo:us-east-1:1:channel/c/1"]',
}
_BUILD = """
import sys
from parley_server import wiring
from parley_server.config import load_config
wiring.preload({name!r})
loaded = set(sys.modules)
getattr(wiring.Adapters(load_config()), {name!r})
print(" ".join(sorted(m for m in set(sys.modules) - loaded if m.startswith("parley_server"))))
"""


@pytest.mark.parametrize("name", sorted(wiring.ADAPTER_MODULES))
def test_building_a_preloaded_adapter_imports_nothing_more(name: str) -> None:
    """ADAPTER_MODULES names what each adapter's property imports: preloading it
    leaves nothing of ours for the first request to load."""
    root = Path(__file__).resolve().parents[4]
    env = {
        "PYTHONPATH": str(root / "lambdas"),
        "PATH": "/usr/bin:/bin",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        # every setting, so that any adapter can be built (nothing is called)
        **{setting.value: _SETTING_VALUES.get(setting.value, "x") for setting in Setting},
    }
    out = subprocess.run(
        [sys.executable, "-c", _BUILD.format(name=name)],
        check=True,
        capture_output=True,
        text=True,
        cwd=root,
        env=env,
    )
    assert out.stdout.split() == []


def test_an_unknown_adapter_is_refused() -> None:
    with pytest.raises(KeyError, match="no such adapters: mailboxes"):
        wiring.preload("mailbox", "mailboxes")


# What a WebSocket handler must not pull in: each is tens of milliseconds of cold start
# that only sign-in, tokens, linking or account deletion need.
_HEAVY = ("phonenumbers", "jwt", "parley_server.logic.account_deletion", "pydantic")


def _fresh_interpreter(probe: str) -> str:
    """What `probe` prints in a new interpreter with only the service's package on the
    path (nothing a test has imported already)."""
    env_root = Path(__file__).resolve().parents[4]
    return subprocess.run(
        [sys.executable, "-c", probe],
        check=True,
        capture_output=True,
        text=True,
        cwd=env_root,
        env={"PYTHONPATH": str(env_root / "lambdas"), "PATH": "/usr/bin:/bin"},
    ).stdout


@pytest.mark.parametrize(
    "module", [m for m in HANDLERS if m.rsplit(".", 1)[1].startswith(("ws_", "group_"))]
)
def test_a_websocket_handler_imports_nothing_heavy_it_does_not_use(module: str) -> None:
    probe = f"import sys, {module}; print(' '.join(m for m in {_HEAVY!r} if m in sys.modules))"
    loaded = _fresh_interpreter(probe).split()
    allowed = {"jwt"} if module.endswith("ws_authorizer") else set()
    assert set(loaded) <= allowed, f"{module} imports {loaded}"


def test_the_http_api_checks_its_requests_without_pydantic() -> None:
    # pydantic and the resolver's validation were about 70 ms of each HttpApi cold start
    probe = (
        "import sys, parley_server.handlers.http_api\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'pydantic', 'pydantic_core'}))"
    )
    assert _fresh_interpreter(probe).strip() == "[]"


def test_the_http_api_imports_phonenumbers_only_when_a_route_reads_a_number() -> None:
    probe = (
        "import sys, parley_server.handlers.http_api as api\n"
        "before = 'phonenumbers' in sys.modules\n"
        "from parley_server.logic.otp import normalize_phone\n"
        "print(before, normalize_phone('+44 7911 123456'), 'phonenumbers' in sys.modules)"
    )
    assert _fresh_interpreter(probe).split() == ["False", "+447911123456", "True"]
