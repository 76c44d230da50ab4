"""corecni's meta plugins exec'd by Go's libcni in a chain: bridge -> tuning -> bandwidth
(-> sbr), with corecni's bridge or Go's first, the bandwidth limits passed as the
``bandwidth`` capability. Kernel state is checked after ADD, CHECK and DEL
(``tc -j``, ``ip -j``, /proc) and the container reaches its gateway.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from corecni import launcher
from corecni.testing import ip_json, ns_name, ping

pytestmark = [pytest.mark.interop]

OURS = {"bridge": "corecni_contrib.bridge", "host-local": "corecni_contrib.host_local.plugin",
        "tuning": "corecni_contrib.tuning", "bandwidth": "corecni_contrib.bandwidth",
        "sbr": "corecni_contrib.sbr"}
CAPS = {"bandwidth": {"ingressRate": 8_000_000, "ingressBurst": 400_000,
                      "egressRate": 16_000_000, "egressBurst": 800_000}}


def go(gocni: str, cni_path: str, node: str, verb: str, conf: Path, ctr: str,
       cache: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ip", "netns", "exec", ns_name(node), gocni, verb, str(conf), ctr, "c1", "eth0",
         str(cache), json.dumps(CAPS)], env={**os.environ, "CNI_PATH": cni_path},
        capture_output=True, text=True, check=False)


def tc(ns: str, *args: str) -> list[dict[str, Any]]:
    out = subprocess.run(["tc", "-n", ns_name(ns), "-j", *args], check=True,
                         capture_output=True, text=True).stdout
    return list(json.loads(out or "[]"))


def chain(tmp: Path) -> dict[str, Any]:
    return {"cniVersion": "1.0.0", "name": "gometa", "plugins": [
        {"type": "bridge", "bridge": "cni-gometa0", "isGateway": True,
         "ipam": {"type": "host-local", "dataDir": str(tmp / "ipam"),
                  "subnet": "10.74.0.0/24", "routes": [{"dst": "0.0.0.0/0"}]}},
        {"type": "tuning", "dataDir": str(tmp / "tuning"), "mtu": 1400, "allmulti": True,
         "sysctl": {"net.ipv4.conf.eth0.arp_filter": "1"}},
        {"type": "bandwidth", "capabilities": {"bandwidth": True}}]}


@pytest.mark.parametrize("bridge_impl", ["ours", "go"])
def test_meta_chain_under_go_libcni(bridge_impl: str, gocni: str, go_plugins: str,
                                    netns_factory: Any, tmp_path: Path) -> None:
    ours = ["tuning", "bandwidth"] + (["bridge", "host-local"] if bridge_impl == "ours" else [])
    bindir = tmp_path / "bin"
    launcher.install(str(bindir), [launcher.LauncherSpec(t, OURS[t]) for t in ours])
    cni_path = f"{bindir}:{go_plugins}"
    node, ctr = netns_factory("node"), netns_factory("ctr")
    conf = tmp_path / "net.conflist"
    conf.write_text(json.dumps(chain(tmp_path)))
    cache = tmp_path / "cache"

    added = go(gocni, cni_path, node, "add", conf, ctr, cache)
    assert added.returncode == 0, added.stderr
    result = json.loads(added.stdout)
    ifb = ("bwp" + hashlib.sha512(b"gometac1").hexdigest())[:15]
    assert ifb in {i["name"] for i in result["interfaces"]}
    [veth] = [link["ifname"] for link in ip_json(node, "-d", "link", "show")
              if link.get("linkinfo", {}).get("info_kind") == "veth"]
    qdiscs = {(q["dev"], q["kind"]): q for q in tc(node, "qdisc", "show")}
    assert qdiscs[veth, "tbf"]["options"]["rate"] == 1_000_000
    assert qdiscs[ifb, "tbf"]["options"]["rate"] == 2_000_000
    assert (veth, "ingress") in qdiscs
    [eth0] = ip_json(ctr, "-d", "link", "show", "dev", "eth0")
    assert eth0["mtu"] == 1400 and "ALLMULTI" in eth0["flags"]
    arp_filter = subprocess.run(["ip", "netns", "exec", ns_name(ctr), "cat",
                                 "/proc/sys/net/ipv4/conf/eth0/arp_filter"],
                                capture_output=True, text=True, check=True).stdout.strip()
    assert arp_filter == "1"
    assert ping(ctr, result["ips"][0]["gateway"])

    checked = go(gocni, cni_path, node, "check", conf, ctr, cache)
    assert checked.returncode == 0, checked.stderr
    for _ in range(2):  # DEL is idempotent
        deleted = go(gocni, cni_path, node, "del", conf, ctr, cache)
        assert deleted.returncode == 0, deleted.stderr
    kinds = {link.get("linkinfo", {}).get("info_kind")
             for link in ip_json(node, "-d", "link", "show")}
    assert "ifb" not in kinds and "veth" not in kinds
    assert [link["ifname"] for link in ip_json(ctr, "link", "show")] == ["lo"]
    assert not list((tmp_path / "tuning").glob("*.json"))
