"""tests/example_dist is written as a third party writes a plugin: its plugins import only
``corecni.kit`` and its tests only ``corecni.kit`` and ``corecni.testing``; corecni
finds its plugins only through the entry points of its own pyproject.toml."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[1] / "example_dist"


def corecni_imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module or ""] if isinstance(node, ast.ImportFrom) else []
        found |= {n for n in names if n.partition(".")[0] == "corecni"}
    return found


def test_plugins_import_only_the_kit() -> None:
    sources = sorted((EXAMPLE / "src").rglob("*.py"))
    assert len(sources) == 3
    imported = set().union(*map(corecni_imports, sources))
    assert imported == {"corecni.kit"}


def test_tests_import_only_the_kit_and_the_testing_toolkit() -> None:
    sources = sorted((EXAMPLE / "tests").rglob("*.py"))
    assert len(sources) == 2
    imported = set().union(*map(corecni_imports, sources))
    assert imported == {"corecni.kit", "corecni.testing"}


def test_entry_points_name_one_interface_and_one_meta_plugin() -> None:
    with open(EXAMPLE / "pyproject.toml", "rb") as fh:
        project = tomllib.load(fh)["project"]
    assert project["dependencies"] == ["corecni"]
    plugins = project["entry-points"]["corecni.plugins"]
    assert plugins == {"example-veth": "corecni_example.veth",
                       "example-tune": "corecni_example.tune"}
    hooks = {name: {n.name for n in ast.parse(
        (EXAMPLE / "src" / "corecni_example" / f"{target.rpartition('.')[2]}.py").read_text()
    ).body if isinstance(n, ast.FunctionDef)} for name, target in plugins.items()}
    assert {"cni_add", "cni_del", "cni_check"} <= hooks["example-veth"]
    assert {"meta_add", "meta_del", "meta_check"} <= hooks["example-tune"]
