"""A node without a working compiler still gets a working corecni.

The package is built with ``CC=/bin/false``: the build must succeed with one
warning naming the failure, the wheel must hold no native module, and the
installed package must select the pyroute2 backend under ``auto``.
"""

from __future__ import annotations

import shutil
import site
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_failed_native_build_falls_back_to_pyroute2(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(REPO / name, src / name)
    for name in ("corecni", "native"):
        shutil.copytree(REPO / name, src / name,
                        ignore=shutil.ignore_patterns("__pycache__", "*.so", "_build"))
    env = {"PATH": "/usr/bin:/bin", "CC": "/bin/false", "HOME": str(tmp_path)}
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "-w",
                            str(tmp_path / "dist"), str(src)], env=env, capture_output=True,
                           text=True, check=False)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    output = build.stdout + build.stderr
    assert output.count("WARNING: corecni native module not built") == 1
    assert "falling back to the pyroute2 backend" in output
    [wheel] = (tmp_path / "dist").glob("corecni-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "corecni/net/native_backend.py" in names
    assert not [n for n in names if "_native" in n and n.endswith(".so")]

    target = tmp_path / "installed"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target",
                    str(target), str(wheel)], env=env, check=True)
    probe = (f"import sys; sys.path[:0] = [{str(target)!r}, *{site.getsitepackages()!r}]; "
             "import corecni.net as n; "
             "print(n.get_backend().name, n.available_backends(), n.__file__)")
    out = subprocess.run([sys.executable, "-I", "-S", "-c", probe], capture_output=True,
                         text=True, check=True).stdout.split(" ", 2)
    assert out[0] == "pyroute2"
    assert "native" not in out[1]
    assert out[2].startswith(str(target))  # the wheel's copy, not the developer's tree
