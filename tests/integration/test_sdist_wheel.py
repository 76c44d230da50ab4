"""The sdist and wheels install into a fresh venv and give a working corecni, without the Makefile.

What a user does: ``python -m build`` (the sdist, then the wheel built FROM the
sdist, so a file missing from the sdist breaks the native module), ``pip
install`` both distributions into a new venv, then ``corecni doctor`` and
``corecni install``, and a runtime execs an installed shim and launcher. The build runs
on a copy of the tracked files, so no build output lands in the tree; the
packages come from the configured index, as for ``make venv``. About 50 s.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _tracked_copy(dest: Path) -> None:
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True,
                           check=True).stdout.decode().split("\0")
    for name in filter(None, files):
        if (REPO / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, dest / name)


def _run(*cmd: str | Path, **kw: object) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, check=False,
                          **kw)  # type: ignore[call-overload]
    assert proc.returncode == 0, f"{cmd}: {proc.stdout[-3000:]}{proc.stderr[-3000:]}"
    return proc  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new venv holding only the built corecni and corecni-contrib (and their deps)."""
    if not shutil.which("git") or not (REPO / ".git").exists():
        pytest.skip("needs a git checkout to know the tracked files")
    work = tmp_path_factory.mktemp("dist")
    src, out = work / "src", work / "dist"
    _tracked_copy(src)
    # the two builds are independent: run them side by side
    builds = [subprocess.Popen([sys.executable, "-m", "build", "--outdir", str(out), str(path),
                                *extra], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
              for path, extra in ((src, ()), (src / "contrib", ("--wheel",)))]
    for build in builds:
        log, _ = build.communicate()
        assert build.returncode == 0, log[-4000:]
    names = sorted(p.name for p in out.iterdir())
    assert [n.split("-")[0] for n in names] == ["corecni", "corecni", "corecni_contrib"], names
    venv = work / "venv"
    _run(sys.executable, "-m", "venv", venv)
    _run(venv / "bin" / "pip", "install", "-q", *sorted(out.glob("*.whl")), cwd=work)
    return venv


def test_sdist_has_the_native_sources(fresh_venv: Path) -> None:
    [sdist] = (fresh_venv.parent / "dist").glob("corecni-*.tar.gz")
    listing = _run("tar", "tzf", sdist).stdout.split()
    for name in ("native/build_native.py", "native/corecni_native.cdef", "native/batch.c",
                 "corecni/kit/__init__.py", "corecni/testing/__init__.py"):
        assert any(entry.endswith(name) for entry in listing), name


def test_installed_corecni_runs_native_from_its_venv(fresh_venv: Path) -> None:
    python = fresh_venv / "bin" / "python"
    where = _run(python, "-c", "import corecni, corecni._native, corecni.kit, corecni.runtime;"
                 "print(corecni.__file__)", cwd="/").stdout.strip()
    assert where.startswith(str(fresh_venv)), where  # not the source tree
    doctor = _run(fresh_venv / "bin" / "corecni", "doctor", cwd="/").stdout
    assert "net backend: native" in doctor, doctor
    with open(REPO / "contrib" / "pyproject.toml", "rb") as fh:
        contrib = tomllib.load(fh)["project"]["entry-points"]["corecni.plugins"]
    assert f"plugins: {len(contrib)} ({len(contrib)} in-process" in doctor, doctor


def test_installed_launcher_answers_version(fresh_venv: Path, tmp_path: Path) -> None:
    """``corecni install`` writes the native shim (built into the wheel) with the Python
    launcher behind it; with no daemon running, the shim falls back to the launcher."""
    bindir = tmp_path / "bin"
    installed = _run(fresh_venv / "bin" / "corecni", "install", "--dir", bindir, cwd="/").stdout
    assert "bridge: installed (shim)" in installed, installed
    behind = bindir / ".corecni" / "bridge"
    assert behind.read_text().startswith(f"#!{fresh_venv}/bin/python")
    env = {"PATH": os.environ["PATH"], "CNI_COMMAND": "VERSION",
           "CORECNI_DAEMON_SOCKET": str(tmp_path / "no-daemon.sock")}
    for exe in (bindir / "bridge", behind):
        out = _run(exe, input=json.dumps({"cniVersion": "1.1.0"}), env=env, cwd="/").stdout
        info = json.loads(out)
        assert info["cniVersion"] == "1.1.0" and "0.4.0" in info["supportedVersions"]
