"""``corecni new-plugin`` / ``corecni.scaffold``: names, refusals, the files written.

That the generated projects work (install, their own tests pass, lint-clean)
is tests/integration/test_scaffold_projects.py.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from corecni import scaffold
from corecni.spec.errors import CNIError

LAYOUT = {"pyproject.toml", "README.md", "tests/test_unit.py", "tests/test_integration.py"}


@pytest.mark.parametrize("family", scaffold.FAMILIES)
def test_every_family_writes_a_complete_project(family: str, tmp_path: Path) -> None:
    root = scaffold.generate("acme-thing", family, tmp_path)
    assert root == tmp_path / "acme-thing"
    files = {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}
    assert files == LAYOUT | {"acme_thing/__init__.py", "acme_thing/plugin.py"}
    pyproject = (root / "pyproject.toml").read_text()
    assert '[project.entry-points."corecni.plugins"]\nacme-thing = "acme_thing.plugin"' \
        in pyproject
    plugin = (root / "acme_thing" / "plugin.py").read_text()
    hooks = {"interface": "def cni_add(", "ipam": "def ipam_add(", "meta": "def meta_add("}
    assert hooks[family] in plugin
    assert "$" not in "".join(p.read_text() for p in root.rglob("*") if p.is_file())
    for path in root.rglob("*.py"):  # valid Python, whatever the name substituted
        compile(path.read_text(), str(path), "exec")


def test_plugins_import_only_the_public_kit(tmp_path: Path) -> None:
    for family in scaffold.FAMILIES:
        plugin = scaffold.generate(f"p-{family}", family, tmp_path) / f"p_{family}" / "plugin.py"
        imports = [line for line in plugin.read_text().splitlines()
                   if line.startswith(("from corecni", "import corecni"))]
        assert imports == ["from corecni.kit import ("], (family, imports)


def test_an_existing_non_empty_directory_is_never_overwritten(tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(CNIError, match="exists and is not empty") as err:
        scaffold.generate("mine", "meta", tmp_path)
    assert err.value.code == 4
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["notes.txt"]


@pytest.mark.parametrize("name", ["", "a/b", "class", "-x", "x y", "ä"])
def test_bad_names_are_refused(name: str, tmp_path: Path) -> None:
    with pytest.raises(CNIError):
        scaffold.generate(name, "ipam", tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_an_unknown_family_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CNIError, match="unknown plugin family 'bridge'"):
        scaffold.generate("x", "bridge", tmp_path)


def test_cli_new_plugin(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "corecni.cli", "new-plugin", "my-alias",
                          "--family", "meta", "--dir", str(tmp_path)],
                         capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert "meta plugin 'my-alias'" in out.stdout
    assert (tmp_path / "my-alias" / "my_alias" / "plugin.py").is_file()
    again = subprocess.run([sys.executable, "-m", "corecni.cli", "new-plugin", "my-alias",
                            "--family", "meta", "--dir", str(tmp_path)],
                           capture_output=True, text=True, check=False)
    assert again.returncode == 1 and "exists and is not empty" in again.stderr
    usage = subprocess.run([sys.executable, "-m", "corecni.cli", "new-plugin", "x"],
                           capture_output=True, text=True, check=False)
    assert usage.returncode == 2 and "--family" in usage.stderr
