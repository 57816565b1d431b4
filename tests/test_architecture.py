"""The layers of docs/ARCHITECTURE.md, read from the code's own imports.

    crypto  <-  service.platform  <-  service.domain  <-  service.web | reviewer  <-  entry

Entry is service/app.py (it lists every route), service/cli.py and service/client.py. An
import may point down the layers only; the two front ends do not import each other; no
module imports itself round a circle; crypto imports nothing of ours; the domain knows
nothing of requests, responses or templates; and imports sit at the top of a module
(service/cli.py says in its docstring why its commands import late).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("crypto", "service", "reviewer")
ENTRY = {"service", "service.app", "service.cli", "service.client"}
LATE_IMPORTS_ALLOWED = {"service.cli"}
# What a request-free domain may not import (starlette.datastructures, plain form values, is
# allowed: the report form's fields are parsed in the domain).
WEB_ONLY = ("starlette.requests", "starlette.responses", "starlette.routing",
            "starlette.applications", "starlette.middleware", "jinja2",
            "service.platform.templating", "service.platform.middleware")


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


MODULES = _modules()


def _resolve(name: str) -> str | None:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str) -> list[tuple[str, ast.stmt, bool]]:
    """(imported name, statement, at top level) for every import in ``module``."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    top = {id(node) for node in tree.body}
    in_type_checking = set()
    for node in tree.body:
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            in_type_checking.update(id(child) for child in ast.walk(node))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            # ``from package import module`` imports the module (a package's __init__ that
            # re-exports its modules is not a circle with them).
            names = [f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in MODULES
                     else node.module for alias in node.names]
        else:
            continue
        at_top = id(node) in top or id(node) in in_type_checking
        found.extend((name, node, at_top) for name in names)
    return found


def _ours(module: str) -> set[str]:
    targets = set()
    for name, _, _ in _imports(module):
        target = _resolve(name)
        if target and target != module and target not in {"service", "reviewer"}:
            targets.add(target)
    return targets


GRAPH = {module: _ours(module) for module in MODULES}


def layer(module: str) -> tuple[int, str]:
    if module.split(".")[0] == "crypto":
        return 0, "crypto"
    if module in ENTRY:
        return 4, "entry"
    if module.startswith("service.platform"):
        return 1, "platform"
    if module.startswith("service.domain"):
        return 2, "domain"
    if module.startswith("service.web"):
        return 3, "web"
    if module.startswith("reviewer"):
        return 3, "console"
    raise AssertionError(f"{module} is in no layer: docs/ARCHITECTURE.md says where it goes")


def test_every_module_is_in_a_layer() -> None:
    for module in MODULES:
        layer(module)


def test_imports_point_down_the_layers() -> None:
    against = []
    for module, targets in GRAPH.items():
        rank, name = layer(module)
        for target in targets:
            target_rank, target_name = layer(target)
            if target_rank > rank or (target_rank == rank == 3 and target_name != name):
                against.append(f"{module} ({name}) -> {target} ({target_name})")
    assert not against, "imports against the layers:\n" + "\n".join(sorted(against))


def test_crypto_imports_nothing_of_ours() -> None:
    for module in (m for m in MODULES if m.split(".")[0] == "crypto"):
        assert all(t.split(".")[0] == "crypto" for t in GRAPH[module]), module


def test_the_domain_knows_no_request_or_template() -> None:
    found = []
    for module in (m for m in MODULES if m.startswith("service.domain")):
        for name, _, _ in _imports(module):
            if any(name == banned or name.startswith(banned + ".") for banned in WEB_ONLY):
                found.append(f"{module}: {name}")
    assert not found, "\n".join(found)


def _cycles() -> list[list[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in GRAPH[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for node in sorted(GRAPH):
        if node not in index:
            visit(node)
    return circles


def test_no_import_circle() -> None:
    assert _cycles() == []


def test_imports_sit_at_the_top() -> None:
    late = []
    for module in MODULES:
        if module in LATE_IMPORTS_ALLOWED:
            continue
        for name, node, at_top in _imports(module):
            if not at_top:
                late.append(f"{MODULES[module].relative_to(ROOT)}:{node.lineno} {name}")
    assert not late, "imports inside functions:\n" + "\n".join(sorted(set(late)))


@pytest.mark.parametrize("module", sorted(MODULES))
def test_a_long_module_says_why(module: str) -> None:
    text = MODULES[module].read_text(encoding="utf-8")
    if len(text.splitlines()) <= 500:
        return
    docstring = ast.get_docstring(ast.parse(text)) or ""
    assert "Longer than" in docstring, (
        f"{module} has {len(text.splitlines())} lines: split it, or say in its docstring "
        "why it is one module ('Longer than … because …')")


def test_the_checker_sees_a_circle_and_an_arrow_up() -> None:
    # The graph above is only as good as its reading: a made-up circle must show.
    GRAPH["service.platform.settings"].add("service.domain.models")
    try:
        with pytest.raises(AssertionError, match="against the layers"):
            test_imports_point_down_the_layers()
    finally:
        GRAPH["service.platform.settings"].discard("service.domain.models")
    GRAPH["service.domain.models.base"].add("service.domain.models")
    try:
        assert _cycles(), "a circle through models/__init__ must be found"
    finally:
        GRAPH["service.domain.models.base"].discard("service.domain.models")


def test_tests_read_nothing_outside_the_repository() -> None:
    # A fresh clone must run every test: fixtures live in tests/fixtures, not in a folder
    # beside the checkout, where a missing one would only skip its tests.
    outside = ("/work/", "../shared", '"shared" / "fixtures"')
    found = [f"{path.relative_to(ROOT)}: {needle}"
             for path in sorted((ROOT / "tests").rglob("*.py"))
             for needle in outside if needle in path.read_text(encoding="utf-8")
             and path.name != "test_architecture.py"]
    assert not found, found
