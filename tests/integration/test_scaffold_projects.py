"""What ``corecni new-plugin`` generates works as generated, for every family.

Each project is pip-installed into this environment (so its ``corecni.plugins``
entry point is real), its own tests run with pytest in a subprocess (unit
tests on the fake link layer, the integration test through CNIRuntime in
throwaway namespaces, in-process and exec'd) and must all pass, none skipped; it must
also be ruff-clean by this project's rules. It is uninstalled afterwards,
whatever happened.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from corecni import scaffold

pytestmark = pytest.mark.root

PIP = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]


@pytest.fixture
def installed(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path]:
    family: str = request.param
    name = f"ccni-scaffold-{family}"
    root = scaffold.generate(name, family, tmp_path)
    try:
        subprocess.run([*PIP, "install", "--no-deps", str(root)], check=True,
                       capture_output=True, text=True)
        yield root
    finally:
        subprocess.run([*PIP, "uninstall", "-y", name], check=False, capture_output=True)


@pytest.mark.parametrize("installed", scaffold.FAMILIES, indirect=True)
def test_generated_project_passes_its_own_tests(installed: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider"],
                         cwd=installed, capture_output=True, text=True, check=False)
    report = out.stdout + out.stderr
    assert out.returncode == 0, report
    summary = report.strip().splitlines()[-1]
    assert re.fullmatch(r"\d+ passed in .*", summary), report  # none skipped, none failed
    assert int(summary.split()[0]) >= 8  # integration: in-process and exec'd, both ran


@pytest.mark.parametrize("family", scaffold.FAMILIES)
def test_generated_project_is_lint_clean(family: str, tmp_path: Path) -> None:
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent))
    if ruff is None:
        pytest.skip("ruff is not installed beside this Python")
    root = scaffold.generate(f"lint-{family}", family, tmp_path)
    out = subprocess.run([ruff, "check", "--isolated", "--line-length", "100",
                          "--select", "E,F,W,I,B,UP,SIM,RUF", "."],
                         cwd=root, capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
