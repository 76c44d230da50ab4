"""The ``corecni`` command line against real namespaces: ``ip netns`` names, and EPERM
explained (issue 13, CLI)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from corecni import launcher
from corecni.cli import cnitool_container_id
from corecni.testing import ip_json, ns_name

REPO = str(Path(__file__).resolve().parents[2])
GO_PLUGINS = "/usr/lib/cni"


def corecni(*args: str, env: dict[str, str],
            prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*prefix, sys.executable, "-m", "corecni.cli", *args], env=env,
                          capture_output=True, text=True, check=False, cwd=REPO)


def _env(tmp_path: Path, *networks: dict[str, object], path: str) -> dict[str, str]:
    confdir = tmp_path / "net.d"
    confdir.mkdir(exist_ok=True)
    for net in networks:
        (confdir / f"{net['name']}.conflist").write_text(json.dumps(net))
    return {**os.environ, "NETCONFPATH": str(confdir), "CNI_PATH": path,
            "CNI_CACHE_DIR": str(tmp_path / "cache"), "PYTHONPATH": REPO}


def test_bare_netns_name_is_ip_netns(container_netns: str, tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    launcher.install(str(bindir), [
        launcher.LauncherSpec("fake-iface", "tests.plugins.fake_iface", sys_path=(REPO,)),
        launcher.LauncherSpec("fixed-ipam", "tests.plugins.fixed_ipam", sys_path=(REPO,))])
    env = _env(tmp_path, {"cniVersion": "1.0.0", "name": "fake", "plugins": [
        {"type": "fake-iface", "ipam": {"type": "fixed-ipam"}}]}, path=str(bindir))
    name = ns_name(container_netns)
    out = corecni("add", "fake", name, env=env, prefix=("env", "-C", str(tmp_path)))
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["interfaces"][0]["sandbox"] == f"/run/netns/{name}"
    cid = cnitool_container_id(f"/run/netns/{name}")  # same ID as `add fake /run/netns/NAME`
    assert (tmp_path / "cache" / "results" / f"fake-{cid}-eth0").exists()
    assert corecni("check", "fake", f"/run/netns/{name}", env=env).returncode == 0
    assert corecni("del", "fake", name, env=env).returncode == 0
    assert not (tmp_path / "cache" / "results" / f"fake-{cid}-eth0").exists()
    out = corecni("add", "fake", "no-such-netns-here", env=env)
    assert out.returncode == 1
    assert "/run/netns/no-such-netns-here (CNI error code 3)" in out.stderr


LOOPBACK = {"cniVersion": "1.0.0", "name": "lo", "plugins": [{"type": "loopback"}]}


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs setpriv (util-linux)")
@pytest.mark.parametrize("mode", ["in-process", "exec-go"])
def test_eperm_says_needs_root(netns_factory: Callable[..., str], tmp_path: Path,
                               mode: str) -> None:
    if mode == "exec-go" and not os.access(f"{GO_PLUGINS}/loopback", os.X_OK):
        pytest.skip(f"no Go loopback plugin in {GO_PLUGINS}")
    ctr = netns_factory("ctr", lo_up=False)
    env = _env(tmp_path, LOOPBACK, path=GO_PLUGINS)
    flags = ["--exec-only"] if mode == "exec-go" else []
    no_net_admin = ("setpriv", "--bounding-set", "-net_admin")
    out = corecni(*flags, "add", "lo", ctr, env=env, prefix=no_net_admin)
    assert out.returncode == 1 and out.stdout == ""
    line = out.stderr.strip()
    assert len(line.splitlines()) == 1, out.stderr
    assert "(needs root / CAP_NET_ADMIN)" in line and "loopback" in line
    assert "UP" not in ip_json(ctr, "link", "show", "lo")[0]["flags"]  # nothing half-done
    # the control: the same command with CAP_NET_ADMIN works
    out = corecni(*flags, "add", "lo", ctr, env=env)
    assert out.returncode == 0, out.stderr
    assert "UP" in ip_json(ctr, "link", "show", "lo")[0]["flags"]
    assert corecni(*flags, "del", "lo", ctr, env=env).returncode == 0
