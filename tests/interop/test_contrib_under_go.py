"""corecni-contrib plugins exec'd by Go's libcni, alone and mixed with Go plugins.

Plugins are installed exactly as ``corecni install`` does, once as Python
launchers and once as the native shim served by a running ``corecni daemon``
(the ``install`` fixture); Go's libcni finds them on CNI_PATH like any plugin
binary. Kernel state is checked after ADD and
after DEL, and pings prove connectivity.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from corecni import daemon_wire as wire
from corecni import launcher
from corecni.testing import (
    dad_settled,
    eventually,
    install_launchers,
    ip_json,
    ns_name,
    ping,
    plugin_target,
)
from tests._daemon import running_daemon

pytestmark = [pytest.mark.interop]



Install = Callable[[Path, list[str]], str]


@pytest.fixture(params=["launcher", "shim"])
def install(request: pytest.FixtureRequest, tmp_path: Path,
            monkeypatch: pytest.MonkeyPatch) -> Iterator[Install]:
    """``install(bindir, types)`` -> CNI_PATH entry: launchers, or shims + a daemon."""
    shim = launcher.shim_binary() if request.param == "shim" else None
    if request.param == "shim" and shim is None:
        pytest.fail("corecni's shim is not built (make venv builds it)")

    def do(bindir: Path, types: list[str]) -> str:
        if shim is None:
            install_launchers(bindir, types)
        else:
            launcher.install(str(bindir),
                             [launcher.LauncherSpec(t, plugin_target(t)) for t in types],
                             shim=shim)
        return str(bindir)

    if shim is None:
        yield do
        return
    with running_daemon(tmp_path / "daemon") as daemon:
        monkeypatch.setenv(wire.SOCKET_ENV, daemon.socket)  # Go's invoke passes env on
        yield do
        calls = daemon.records()
    assert calls, "no call reached the daemon: the shims fell back"
    assert all(c["code"] == 0 for c in calls), calls


def go(gocni: str, cni_path: str, node: str, verb: str, conf: Path, ctr: str, cid: str,
       cache: Path, ifname: str = "eth0") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ip", "netns", "exec", ns_name(node), gocni, verb, str(conf), ctr, cid, ifname,
         str(cache)], env={**os.environ, "CNI_PATH": cni_path}, capture_output=True, text=True,
        check=False)


def lifecycle(gocni: str, cni_path: str, node: str, ctrs: list[str], conf: dict[str, Any],
              tmp: Path) -> list[dict[str, Any]]:
    """ADD + CHECK every container; return the results (DEL is the caller's)."""
    path = tmp / "net.conflist"
    path.write_text(json.dumps(conf))
    results = []
    for i, ctr in enumerate(ctrs):
        added = go(gocni, cni_path, node, "add", path, ctr, f"c{i}", tmp / "cache")
        assert added.returncode == 0, added.stderr
        results.append(json.loads(added.stdout))
        checked = go(gocni, cni_path, node, "check", path, ctr, f"c{i}", tmp / "cache")
        assert checked.returncode == 0, checked.stderr
    return results


def delete_all(gocni: str, cni_path: str, node: str, ctrs: list[str], tmp: Path) -> None:
    for i, ctr in enumerate(ctrs):
        for _ in range(2):  # DEL is idempotent
            deleted = go(gocni, cni_path, node, "del", tmp / "net.conflist", ctr, f"c{i}",
                         tmp / "cache")
            assert deleted.returncode == 0, deleted.stderr


def global_addrs(ns: str, ifname: str) -> set[str]:
    return {f"{a['local']}/{a['prefixlen']}" for link in ip_json(ns, "addr", "show", ifname)
            for a in link["addr_info"] if a.get("scope") == "global"}


def ipam_files(ipam_dir: Path, network: str) -> list[str]:
    d = ipam_dir / network
    return sorted(f.name for f in d.iterdir()
                  if f.name != "lock" and not f.name.startswith("last_reserved_ip")) \
        if d.exists() else []


def bridge_conf(tmp: Path, name: str = "gobr") -> dict[str, Any]:
    return {"cniVersion": "1.0.0", "name": name, "plugins": [{
        "type": "bridge", "bridge": "cni-gobr0", "isGateway": True, "ipMasq": True,
        "hairpinMode": True, "mtu": 1400,
        "ipam": {"type": "host-local", "dataDir": str(tmp / "ipam"),
                 "ranges": [[{"subnet": "10.70.0.0/24"}], [{"subnet": "fd70::/64"}]],
                 "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}]}}]}


# (bridge implementation, host-local implementation)
BRIDGE_MIXES = [("ours", "ours"), ("go", "ours"), ("ours", "go")]


@pytest.mark.parametrize(("bridge_impl", "ipam_impl"), BRIDGE_MIXES)
def test_bridge_host_local_under_go_libcni(bridge_impl: str, ipam_impl: str, gocni: str,
                                           go_plugins: str, netns_factory: Any,
                                           tmp_path: Path, install: Install) -> None:
    ours = [t for t, impl in (("bridge", bridge_impl), ("host-local", ipam_impl))
            if impl == "ours"]
    cni_path = f"{install(tmp_path / 'bin', ours)}:{go_plugins}"
    node = netns_factory("node")
    ctrs = [netns_factory("ctr"), netns_factory("ctr")]
    results = lifecycle(gocni, cni_path, node, ctrs, bridge_conf(tmp_path), tmp_path)
    for ctr, result in zip(ctrs, results, strict=True):
        assert global_addrs(ctr, "eth0") == {ip["address"] for ip in result["ips"]}
        eth0 = ip_json(ctr, "link", "show", "eth0")[0]
        assert eth0["mtu"] == 1400
        assert result["interfaces"][0]["name"] == "cni-gobr0"
    ports = ip_json(node, "-d", "link", "show", "master", "cni-gobr0")
    assert len(ports) == 2 and all(p["linkinfo"]["info_slave_data"]["hairpin"] for p in ports)
    # container <-> gateway and container <-> container, v4 and v6. Go's bridge adds the
    # gateway without nodad: fd70::1 answers only once its DAD is over, which on a busy
    # machine can outlast ping's deadline (corecni's bridge adds it with nodad)
    for ns, link in ((node, "cni-gobr0"), *((ctr, "eth0") for ctr in ctrs)):
        assert eventually(functools.partial(dad_settled, ns, link)), (ns, link)
    assert ping(ctrs[0], "10.70.0.1") and ping(ctrs[0], "fd70::1")
    other = {ip["address"].split("/")[0] for ip in results[1]["ips"]}
    for address in other:
        assert ping(ctrs[0], address), address
    delete_all(gocni, cni_path, node, ctrs, tmp_path)
    assert ipam_files(tmp_path / "ipam", "gobr") == []
    assert {link["ifname"] for link in ip_json(node, "link", "show")} <= {"lo", "cni-gobr0"}
    for ctr in ctrs:
        assert {link["ifname"] for link in ip_json(ctr, "link", "show")} == {"lo"}


def test_ptp_and_loopback_under_go_libcni(gocni: str, go_plugins: str, netns_factory: Any,
                                          tmp_path: Path, install: Install) -> None:
    cni_path = install(tmp_path / "bin", ["ptp", "host-local", "loopback"])
    node, ctr = netns_factory("node"), netns_factory("ctr", lo_up=False)
    conf = {"cniVersion": "1.0.0", "name": "goptp", "plugins": [
        {"type": "loopback"},
        {"type": "ptp", "ipMasq": True, "mtu": 1450,
         "ipam": {"type": "host-local", "dataDir": str(tmp_path / "ipam"),
                  "subnet": "10.71.0.0/24", "routes": [{"dst": "0.0.0.0/0"}]}}]}
    [result] = lifecycle(gocni, cni_path, node, [ctr], conf, tmp_path)
    assert ip_json(ctr, "link", "show", "lo")[0]["operstate"] == "UNKNOWN"  # lo is up
    assert global_addrs(ctr, "eth0") == {ip["address"] for ip in result["ips"]}
    gateway = result["ips"][0]["gateway"]
    assert ping(ctr, gateway)
    delete_all(gocni, cni_path, node, [ctr], tmp_path)
    assert ipam_files(tmp_path / "ipam", "goptp") == []
    assert {link["ifname"] for link in ip_json(node, "link", "show")} == {"lo"}


def test_macvlan_static_under_go_libcni(gocni: str, go_plugins: str, netns_factory: Any,
                                        tmp_path: Path, install: Install) -> None:
    cni_path = install(tmp_path / "bin", ["macvlan", "static"])
    node = netns_factory("node")
    ctrs = [netns_factory("ctr"), netns_factory("ctr")]
    subprocess.run(["ip", "-n", ns_name(node), "link", "add", "phys0", "type", "veth",
                    "peer", "name", "phys0p"], check=True)
    subprocess.run(["ip", "-n", ns_name(node), "link", "set", "phys0", "up"], check=True)
    subprocess.run(["ip", "-n", ns_name(node), "link", "set", "phys0p", "up"], check=True)
    for i, ctr in enumerate(ctrs):
        conf = {"cniVersion": "1.0.0", "name": "gomv", "plugins": [
            {"type": "macvlan", "master": "phys0", "mode": "bridge",
             "ipam": {"type": "static", "addresses": [{"address": f"10.72.0.{i + 10}/24"}]}}]}
        (tmp_path / str(i)).mkdir()
        [result] = lifecycle(gocni, cni_path, node, [ctr], conf, tmp_path / str(i))
        assert global_addrs(ctr, "eth0") == {f"10.72.0.{i + 10}/24"}
        link = ip_json(ctr, "-d", "link", "show", "eth0")[0]
        assert link["linkinfo"]["info_kind"] == "macvlan"
        assert link["linkinfo"]["info_data"]["mode"] == "bridge"
        assert result["interfaces"][0]["name"] == "eth0"
    assert ping(ctrs[0], "10.72.0.11")
    for i, ctr in enumerate(ctrs):
        delete_all(gocni, cni_path, node, [ctr], tmp_path / str(i))
        assert {link["ifname"] for link in ip_json(ctr, "link", "show")} == {"lo"}


def test_host_device_under_go_libcni(gocni: str, go_plugins: str, netns_factory: Any,
                                     tmp_path: Path, install: Install) -> None:
    """A node device moves into the container as eth0 and comes back on DEL."""
    cni_path = install(tmp_path / "bin", ["host-device", "static"])
    node, ctr = netns_factory("node"), netns_factory("ctr")
    n = ns_name(node)
    subprocess.run(["ip", "-n", n, "link", "add", "phys0", "type", "veth", "peer", "name",
                    "phys0p"], check=True)
    subprocess.run(["ip", "-n", n, "addr", "add", "10.73.0.1/24", "dev", "phys0p"], check=True)
    subprocess.run(["ip", "-n", n, "link", "set", "phys0p", "up"], check=True)
    mac = ip_json(node, "link", "show", "phys0")[0]["address"]
    conf = {"cniVersion": "1.0.0", "name": "gohd", "plugins": [
        {"type": "host-device", "device": "phys0",
         "ipam": {"type": "static", "addresses": [{"address": "10.73.0.10/24"}]}}]}
    [result] = lifecycle(gocni, cni_path, node, [ctr], conf, tmp_path)
    assert result["interfaces"][0]["name"] == "eth0"
    assert ip_json(ctr, "link", "show", "eth0")[0]["address"] == mac
    assert global_addrs(ctr, "eth0") == {"10.73.0.10/24"}
    assert "phys0" not in {link["ifname"] for link in ip_json(node, "link", "show")}
    assert ping(ctr, "10.73.0.1")
    delete_all(gocni, cni_path, node, [ctr], tmp_path)
    assert {link["ifname"] for link in ip_json(ctr, "link", "show")} == {"lo"}
    back = ip_json(node, "link", "show", "phys0")[0]
    assert back["address"] == mac
