"""What every side-by-side benchmark needs: scratch namespaces and a Go driver.

Benchmarks run corecni and Go's reference in one run, inside namespaces they
create and always remove (the machine's own network is never touched), and
drive Go's side with a small libcni program built offline from Debian's libcni
source in GOPATH mode. Both needs are the same in every benchmark, so they
live here once.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from types import TracebackType

#: Debian's Go plugins and Go source tree (containernetworking-plugins,
#: golang-github-appc-cni-dev)
GO_PLUGINS = "/usr/lib/cni"
GOCODE = "/usr/share/gocode"


def build_go(main_go: Path, work: Path, name: str) -> str:
    """Build the Go program ``main_go`` (package ``name``) offline; its path.

    GOPATH mode with Debian's source tree beside a private GOPATH under
    ``work``: no module download, no cache outside ``work``.
    """
    pkg = work / "gopath" / "src" / name
    pkg.mkdir(parents=True)
    shutil.copy(main_go, pkg / "main.go")
    out = work / name
    env = {**os.environ, "GO111MODULE": "off", "GOPATH": f"{work / 'gopath'}:{GOCODE}",
           "GOCACHE": str(work / "gocache"), "GOFLAGS": "", "CGO_ENABLED": "0"}
    subprocess.run(["go", "build", "-o", str(out), "."], cwd=pkg, env=env, check=True,
                   capture_output=True)
    return str(out)


def have_root(prog: str) -> bool:
    """True as root; otherwise say why ``prog`` cannot run (namespaces need root)."""
    if os.geteuid() == 0:
        return True
    print(f"{prog} needs root (network namespaces)", file=sys.stderr)
    return False


class Namespaces:
    """Named network namespaces for one run, all removed when the block ends.

    Names carry ``prefix``, the pid and a random tag, so runs never collide
    and a leftover is recognisable. Each namespace gets ``lo`` up (the kernel
    creates it down; ping and TCP to a local address need it).
    """

    def __init__(self, prefix: str) -> None:
        self.tag = f"{prefix}-{os.getpid()}-{uuid.uuid4().hex[:4]}"
        self.names: list[str] = []

    def make(self, role: str) -> str:
        """A fresh namespace for ``role``; its path under /run/netns."""
        name = f"{self.tag}-{role}"
        subprocess.run(["ip", "netns", "add", name], check=True)
        self.names.append(name)
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        return f"/run/netns/{name}"

    def cleanup(self) -> None:
        """Delete every namespace made so far (newest first; missing ones are fine)."""
        for name in reversed(self.names):
            subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)
        self.names.clear()

    def __enter__(self) -> Namespaces:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.cleanup()
