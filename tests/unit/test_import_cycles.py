"""No import cycle in corecni: each module can be read (and loaded) after the ones it uses.

The layer rules themselves are import-linter contracts (pyproject.toml, run by
``make lint``); a cycle between two modules of one layer is what they cannot
see, so it is checked here on grimp's import graph (function-level imports
included, ``TYPE_CHECKING`` imports left out: they never run).
"""

from __future__ import annotations

import grimp


def _cycles(graph: grimp.ImportGraph, package: str) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    modules = sorted(m for m in graph.modules if m.startswith(package))
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for target in sorted(graph.find_modules_directly_imported_by(module)):
            if not target.startswith(package):
                continue
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in on_stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in modules:
        if module not in index:
            visit(module)
    return found


def _is_package_init_edge(importer: str, imported: str) -> bool:
    """A package's ``__init__`` re-exporting its submodules is not a cycle of logic."""
    return imported.startswith(importer + ".") or importer.startswith(imported + ".")


def test_corecni_has_no_import_cycle() -> None:
    graph = grimp.build_graph("corecni", exclude_type_checking_imports=True)
    for importer in list(graph.modules):
        for imported in list(graph.find_modules_directly_imported_by(importer)):
            if _is_package_init_edge(importer, imported):
                graph.remove_import(importer=importer, imported=imported)
    assert _cycles(graph, "corecni") == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = grimp.ImportGraph()
    for module in ("p", "p.a", "p.b", "p.c"):
        graph.add_module(module)
    graph.add_import(importer="p.a", imported="p.b")
    graph.add_import(importer="p.b", imported="p.a")
    graph.add_import(importer="p.c", imported="p.a")
    assert _cycles(graph, "p") == [["p.a", "p.b"]]
