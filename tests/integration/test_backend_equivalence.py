"""The native and pyroute2 backends leave the kernel in the same state.

The same plugin chains run twice, once per backend, each in its own node and
container namespaces; after ADD, after CHECK and after DEL the kernel state of
both sides is compared field by field (links, masters, MTU, flags, addresses,
routes, neighbours). Only what is random by design is masked: MACs, ifindexes,
generated veth names.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from corecni import netns
from corecni.config import list_from_bytes
from corecni.net import available_backends
from corecni.registry import Registry
from corecni.runtime import CNIRuntime
from corecni.spec.config import RuntimeConf
from corecni.testing import ns_name, plugin_target

pytestmark = pytest.mark.skipif(
    set(available_backends()) != {"native", "pyroute2"},
    reason=f"needs both backends, have {available_backends()}")

PLUGINS = ("bridge", "ptp", "host-local", "loopback", "macvlan", "static")
VETH = re.compile(r"^veth[0-9a-f]{8}$")


def _ip(ns: str, *args: str) -> list[dict[str, Any]]:
    out = subprocess.run(["ip", "-j", "-d", "-n", ns_name(ns), *args], check=True,
                         capture_output=True, text=True).stdout
    return list(json.loads(out or "[]"))


def _name(name: str | None) -> str | None:
    return "veth*" if name and VETH.match(name) else name


def snapshot(ns: str) -> dict[str, Any]:
    """The kernel state of one namespace, with the random parts masked."""
    links = []
    for link in _ip(ns, "link", "show"):
        info = link.get("linkinfo", {})
        slave = info.get("info_slave_data", {})
        links.append({
            "name": _name(link["ifname"]), "kind": info.get("info_kind", ""),
            "mtu": link["mtu"], "flags": sorted(set(link["flags"]) - {"LOWER_UP", "NO-CARRIER"}),
            "master": link.get("master"), "promiscuity": link.get("promiscuity"),
            "hairpin": slave.get("hairpin"), "mode": info.get("info_data", {}).get("mode"),
        })
    addrs = sorted((_name(link["ifname"]), a["family"], a["local"], a["prefixlen"], a["scope"],
                    sorted(k for k in ("nodad", "tentative", "noprefixroute") if a.get(k)))
                   for link in _ip(ns, "addr", "show") for a in link["addr_info"]
                   if a.get("scope") != "link")  # link-local v6 derives from the random MAC
    routes = sorted(
        json.dumps({**{k: r.get(k) for k in ("dst", "gateway", "scope", "protocol", "metric",
                                             "table", "type")}, "dev": _name(r.get("dev"))},
                   sort_keys=True)
        for family in ("-4", "-6")
        for r in _ip(ns, family, "route", "show", "table", "all")
        if not str(r.get("dst", "")).startswith("fe80")
        and r.get("type") != "multicast" and r.get("table") != "local")
    neigh = sorted((_name(n.get("dev")), n["dst"], tuple(n.get("state", [])))
                   for n in _ip(ns, "neigh", "show") if "PERMANENT" in n.get("state", []))
    return {"links": sorted(links, key=lambda x: str(x["name"])), "addrs": addrs,
            "routes": routes, "neigh": neigh}


def bridge_chain(tmp: Path) -> dict[str, Any]:
    return {"cniVersion": "1.1.0", "name": "eqbr", "plugins": [{
        "type": "bridge", "bridge": "cni-eq0", "isGateway": True, "isDefaultGateway": True,
        "mtu": 1400, "hairpinMode": True, "ipMasq": True,
        "ipam": {"type": "host-local", "dataDir": str(tmp / "ipam"),
                 "ranges": [[{"subnet": "10.91.0.0/24"}], [{"subnet": "fd91::/64"}]]}}]}


def ptp_chain(tmp: Path) -> dict[str, Any]:
    return {"cniVersion": "1.1.0", "name": "eqptp", "plugins": [
        {"type": "loopback"},
        {"type": "ptp", "mtu": 1450,
         "ipam": {"type": "host-local", "dataDir": str(tmp / "ipam"), "subnet": "10.92.0.0/24",
                  "routes": [{"dst": "0.0.0.0/0"}, {"dst": "192.168.250.0/24"}]}}]}


@pytest.mark.parametrize("make_chain", [bridge_chain, ptp_chain])
def test_kernel_state_identical_across_backends(make_chain: Any, netns_factory: Any,
                                                tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    states: dict[str, list[dict[str, Any]]] = {}
    for backend in ("native", "pyroute2"):
        monkeypatch.setenv("CORECNI_NET_BACKEND", backend)
        work = tmp_path / backend
        work.mkdir()
        node, ctr = netns_factory("node"), netns_factory("ctr", lo_up=False)
        registry = Registry(path=(), entry_points=False)
        for ptype in PLUGINS:
            registry.register(ptype, plugin_target(ptype))
        runtime = CNIRuntime(path=(), cache_dir=str(work / "cache"), registry=registry)
        net = list_from_bytes(json.dumps(make_chain(work)).encode())
        rt = RuntimeConf(container_id="eq", ifname="eth0", netns=ctr)
        seen = []
        with netns.entered(node):
            runtime.add_network_list(net, rt)
            seen.append({"node": snapshot(node), "ctr": snapshot(ctr)})
            runtime.check_network_list(net, rt)
            seen.append({"node": snapshot(node), "ctr": snapshot(ctr)})
            runtime.del_network_list(net, rt)
            seen.append({"node": snapshot(node), "ctr": snapshot(ctr)})
        states[backend] = seen
    for step, (native, pyroute2) in enumerate(zip(states["native"], states["pyroute2"],
                                                  strict=True)):
        for side in ("node", "ctr"):
            for field in ("links", "addrs", "routes", "neigh"):
                assert native[side][field] == pyroute2[side][field], (step, side, field)
    # the comparison is not vacuous: after ADD the container has eth0 with an address
    assert any(a[0] == "eth0" and a[1] == "inet" for a in states["native"][0]["ctr"]["addrs"])
