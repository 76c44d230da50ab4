"""Interop peers: Debian's Go plugins and a libcni driver built from Debian's source."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

GO_PLUGINS = "/usr/lib/cni"
GOCODE = "/usr/share/gocode"
DRIVER_SRC = Path(__file__).parent / "gocni" / "main.go"


@pytest.fixture(scope="session")
def gocni(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Build the libcni driver offline, in GOPATH mode, against Debian's libcni."""
    if os.geteuid() != 0:
        pytest.skip("interop tests need root")
    go = shutil.which("go")
    assert go, "golang-go is not installed (make deps installs it)"
    assert os.path.isdir(f"{GOCODE}/src/github.com/containernetworking/cni/libcni"), \
        "golang-github-appc-cni-dev is not installed (make deps installs it)"
    root = tmp_path_factory.mktemp("gopath")
    pkg = root / "src" / "gocni"
    pkg.mkdir(parents=True)
    shutil.copy(DRIVER_SRC, pkg / "main.go")
    out = root / "gocni"
    env = {**os.environ, "GO111MODULE": "off", "GOPATH": f"{root}:{GOCODE}",
           "GOCACHE": str(root / "cache"), "GOFLAGS": "", "CGO_ENABLED": "0"}
    subprocess.run([go, "build", "-o", str(out), "."], cwd=pkg, env=env, check=True,
                   capture_output=True)
    return str(out)


@pytest.fixture(scope="session")
def go_plugins() -> str:
    assert os.path.exists(f"{GO_PLUGINS}/bridge"), \
        "containernetworking-plugins is not installed (make deps installs it)"
    return GO_PLUGINS
