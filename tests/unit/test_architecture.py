"""The import rules of docs/ARCHITECTURE.md, held: which part may import which, and
no import cycles between modules, in the server package and in the client SDK.

Imports are read from the source (nothing is imported here). An import inside a
function (done when called, deliberately late) or under `if TYPE_CHECKING:` does
not count for cycles; every import counts for the rules.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Edge:
    source: str  # the importing module
    target: str  # the imported module
    line: int
    eager: bool  # at import time (module level, not only for type checking)


def _module_name(base: Path, path: Path) -> str:
    parts = list(path.relative_to(base).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _eager_nodes(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """Statements run when the module is imported (not in functions or classes' methods)."""
    for node in body:
        if isinstance(node, ast.If) and _is_type_checking(node):
            yield from _eager_nodes(node.orelse)
            continue
        yield node
        if isinstance(node, ast.If | ast.Try | ast.With):
            for field in ("body", "orelse", "finalbody", "handlers"):
                for child in getattr(node, field, []):
                    if isinstance(child, ast.ExceptHandler):
                        yield from _eager_nodes(child.body)
                    else:
                        yield from _eager_nodes([child])


def _edges(base: Path, package: str) -> list[Edge]:
    modules = {
        _module_name(base, p): p
        for p in (base / package).rglob("*.py")
        if "__pycache__" not in p.parts
    }
    edges: list[Edge] = []
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), str(path))
        eager = {id(n) for n in _eager_nodes(tree.body)}
        is_package = path.name == "__init__.py"
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    anchor = name.split(".")
                    anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                    module = ".".join([*anchor, node.module] if node.module else anchor)
                else:
                    module = node.module or ""
                # `from pkg import submodule` imports the submodule
                subs = [f"{module}.{a.name}" for a in node.names if f"{module}.{a.name}" in modules]
                targets = subs if len(subs) == len(node.names) else [module, *subs]
            for target in targets:
                if target.split(".")[0] == package and target != name:
                    edges.append(Edge(name, target, node.lineno, id(node) in eager))
    return edges


def _within(module: str, part: str) -> bool:
    return module == part or module.startswith(part + ".")


def _violations(edges: list[Edge], rules: dict[str, tuple[str, ...]]) -> list[str]:
    """rules: part -> the parts it must not import."""
    found = []
    for edge in edges:
        for part, forbidden in rules.items():
            if _within(edge.source, part):
                found += [
                    f"{edge.source}:{edge.line} imports {edge.target} ({part} may not import {bad})"
                    for bad in forbidden
                    if _within(edge.target, bad) and not _within(edge.target, part)
                ]
    return found


def _cycles(edges: list[Edge]) -> list[list[str]]:
    """Strongly connected components (of more than one module) over eager imports."""
    graph: dict[str, set[str]] = {}
    for edge in edges:
        if edge.eager:
            graph.setdefault(edge.source, set()).add(edge.target)
            graph.setdefault(edge.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan; the graphs are a few hundred modules
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


S = "parley_server"
SERVER_RULES: dict[str, tuple[str, ...]] = {
    # the domain's value types and wire models: nothing below them
    f"{S}.models": (f"{S}.logic", f"{S}.store", f"{S}.handlers", f"{S}.wiring", f"{S}.config"),
    f"{S}.ids": (f"{S}.models", f"{S}.logic", f"{S}.store", f"{S}.handlers", f"{S}.wiring"),
    f"{S}.metrics": (f"{S}.models", f"{S}.logic", f"{S}.store", f"{S}.handlers", f"{S}.wiring"),
    # adapters: each owns its table; none knows the use cases or the wiring
    f"{S}.store": (f"{S}.logic", f"{S}.handlers", f"{S}.wiring", f"{S}.config"),
    # use cases: through ports, never the Lambda side
    f"{S}.logic": (f"{S}.handlers", f"{S}.wiring", f"{S}.store.aws"),
    f"{S}.wiring": (f"{S}.handlers",),
}

C = "parley"
_SDK_TOP = (f"{C}.client", f"{C}.inbound", f"{C}.connection", f"{C}.engine", f"{C}.cli")
_SLICES = (f"{C}.store", f"{C}.conversations", f"{C}.groups", f"{C}.calling")
CLIENT_RULES: dict[str, tuple[str, ...]] = {
    f"{C}.crypto": (f"{C}.store", f"{C}.content", f"{C}.conversations", f"{C}.groups", *_SDK_TOP),
    f"{C}.content": (
        f"{C}.attachments",
        f"{C}.calling",
        f"{C}.store",
        f"{C}.conversations",
        f"{C}.groups",
        *_SDK_TOP,
    ),
    f"{C}.attachments": (f"{C}.store", f"{C}.conversations", f"{C}.groups", *_SDK_TOP),
    f"{C}.protocol": (f"{C}.store", f"{C}.conversations", f"{C}.groups", f"{C}.api", *_SDK_TOP),
    f"{C}.store": (
        f"{C}.conversations",
        f"{C}.calling",
        f"{C}.groups.membership",
        f"{C}.groups.sending",
        f"{C}.groups.sender_keys",
        f"{C}.groups.receipts",
        f"{C}.api",
        *_SDK_TOP,
    ),
    # a sender key that arrives is handed to groups through a callback; a call
    # signal to the calls slice through the inbound dispatcher
    f"{C}.conversations": (f"{C}.groups", f"{C}.calling", *_SDK_TOP),
    f"{C}.groups": (f"{C}.calling", *_SDK_TOP),
    # calls stand on conversations (sealing) and the store, beside groups
    f"{C}.calling": (f"{C}.groups", *_SDK_TOP),
    # its rules are read by the store: it builds on content and models alone
    f"{C}.payments": (f"{C}.conversations", f"{C}.groups", *_SDK_TOP),
    # the SDK never depends on its command line or the demo
    f"{C}.client": (f"{C}.cli", f"{C}.demo", f"{C}.smoke"),
    f"{C}.signup": (f"{C}.cli", f"{C}.demo", f"{C}.smoke"),
}


@pytest.mark.parametrize(
    ("base", "package", "rules"),
    [(ROOT / "lambdas", S, SERVER_RULES), (ROOT / "client", C, CLIENT_RULES)],
    ids=["server", "client"],
)
def test_each_part_imports_only_what_it_may(
    base: Path, package: str, rules: dict[str, tuple[str, ...]]
) -> None:
    assert _violations(_edges(base, package), rules) == []


@pytest.mark.parametrize(
    ("base", "package"), [(ROOT / "lambdas", S), (ROOT / "client", C)], ids=["server", "client"]
)
def test_no_import_cycles(base: Path, package: str) -> None:
    assert _cycles(_edges(base, package)) == []


def test_boto3_is_imported_by_the_adapters_alone() -> None:
    importers = sorted(
        _module_name(ROOT / "lambdas", p)
        for p in (ROOT / "lambdas" / S).rglob("*.py")
        if any(
            isinstance(n, ast.Import | ast.ImportFrom)
            and any(
                (getattr(n, "module", None) or a.name).split(".")[0] in ("boto3", "botocore")
                for a in n.names
            )
            for n in ast.walk(ast.parse(p.read_text()))
        )
    )
    assert importers
    assert [m for m in importers if not _within(m, f"{S}.store")] == []


def test_the_checks_see_a_violation_and_a_cycle() -> None:
    # the rules and the cycle search on a made-up graph: a store importing a use case,
    # and two modules importing each other at import time (a late import is no cycle)
    edges = [
        Edge(f"{S}.store.users", f"{S}.logic.tokens", 3, True),
        Edge("p.a", "p.b", 1, True),
        Edge("p.b", "p.a", 1, True),
        Edge("p.c", "p.d", 1, True),
        Edge("p.d", "p.c", 9, False),
    ]
    assert _violations(edges, SERVER_RULES) == [
        f"{S}.store.users:3 imports {S}.logic.tokens ({S}.store may not import {S}.logic)"
    ]
    assert _cycles(edges) == [["p.a", "p.b"]]
