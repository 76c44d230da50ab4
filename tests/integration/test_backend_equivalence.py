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


# --- the requests of the meta plugins (bandwidth, tuning, sbr, tap), op by op ----------

def _tc(ns: str, *args: str) -> list[dict[str, Any]]:
    out = subprocess.run(["tc", "-n", ns_name(ns), "-j", *args], check=True,
                         capture_output=True, text=True).stdout
    return list(json.loads(out or "[]"))


def tc_rules_snapshot(ns: str) -> dict[str, Any]:
    """Links with their tuning flags, qdiscs, filters, rules and every route table."""
    links = sorted(
        (link["ifname"], link.get("linkinfo", {}).get("info_kind", ""), link["mtu"],
         link.get("txqlen"), link.get("promiscuity"), link.get("allmulti"),
         sorted(set(link["flags"]) - {"LOWER_UP", "NO-CARRIER"}),
         json.dumps(link.get("linkinfo", {}).get("info_data", {}), sort_keys=True))
        for link in _ip(ns, "link", "show"))
    qdiscs = sorted(json.dumps({k: q.get(k) for k in ("kind", "handle", "parent", "dev",
                                                      "root", "options")}, sort_keys=True)
                    for q in _tc(ns, "qdisc", "show"))
    filters = sorted(json.dumps(f, sort_keys=True) for dev in ("v0", "v1")
                     for f in _tc(ns, "filter", "show", "dev", dev, "ingress"))
    rules = sorted(json.dumps(r, sort_keys=True) for family in ("-4", "-6")
                   for r in _ip(ns, family, "rule", "show"))
    routes = sorted(json.dumps(r, sort_keys=True) for family in ("-4", "-6")
                    for r in _ip(ns, family, "route", "show", "table", "all")
                    if r.get("table") != "local" and not str(r.get("dst", "")).startswith("fe80")
                    and r.get("type") != "multicast")
    return {"links": links, "qdiscs": qdiscs, "filters": filters, "rules": rules,
            "routes": routes}


def _steps() -> list[Any]:
    from corecni.net import (
        TC_H_INGRESS,
        TC_H_INGRESS_HANDLE,
        Filter,
        Qdisc,
        Route,
        Rule,
        tc_handle,
    )

    def links(b: Any) -> None:
        (b.add_veth("v0", "v1").add_ifb("ifb0", mtu=1400).set_link("ifb0", up=True)
         .set_link("v0", up=True, promisc=True, allmulti=True, txqlen=500, mtu=1450)
         .set_link("v1", up=True).add_address("v1", "10.93.0.2/24")
         .add_address("v1", "fd93::2/64", nodad=True)
         .add_tap("tap0", mtu=1300, mac="02:00:00:00:00:93", multi_queue=True))

    def shaping(b: Any) -> None:
        (b.add_qdisc(Qdisc("v0", "tbf", handle=tc_handle(1), rate=125_000, burst=15_625,
                           limit=128_125))
         .add_qdisc(Qdisc("v0", "ingress", handle=TC_H_INGRESS_HANDLE, parent=TC_H_INGRESS))
         .add_filter(Filter("v0", TC_H_INGRESS_HANDLE, classid=tc_handle(1, 1),
                            redirect="ifb0"))
         .add_qdisc(Qdisc("ifb0", "tbf", handle=tc_handle(1), rate=1_250_000_000,
                          burst=2**20, limit=2**22)))

    def policy(b: Any) -> None:
        (b.add_rule(Rule(table=100, src="10.93.0.2/32"))
         .add_rule(Rule(table=101, priority=1000, dst="fd93::/64", iif="v1"))
         .add_rule(Rule(table=1002, priority=1001, oif="v1"))
         .add_route(Route(dst="0.0.0.0/0", gateway="10.93.0.1", ifname="v1", table=100))
         .add_route(Route(dst="10.94.0.0/16", ifname="v1", table=1002, priority=7))
         .add_route(Route(dst="::/0", gateway="fd93::1", ifname="v1", table=101)))

    def tune_back(b: Any) -> None:
        b.set_link("v0", promisc=False, allmulti=False, txqlen=1000)

    def teardown(b: Any) -> None:
        (b.del_filter(Filter("v0", TC_H_INGRESS_HANDLE))
         .del_qdisc("v0", parent=TC_H_INGRESS).del_qdisc("v0").del_qdisc("ifb0")
         .del_qdisc("v0", missing_ok=True)
         .del_rule(Rule(table=100, src="10.93.0.2/32"))
         .del_rule(Rule(table=101, priority=1000, dst="fd93::/64", iif="v1"))
         .del_rule(Rule(table=1002, priority=1001, oif="v1"), missing_ok=True)
         .del_rule(Rule(table=1002, priority=1001, oif="v1"), missing_ok=True)
         .del_route(Route(dst="0.0.0.0/0", gateway="10.93.0.1", ifname="v1", table=100))
         .del_link("tap0").del_link("ifb0"))

    return [links, shaping, policy, tune_back, teardown]


def test_tc_rule_and_tuning_state_identical_across_backends(netns_factory: Any) -> None:
    """Every new request (ifb, tap, promisc/allmulti/txqlen, tbf, ingress, the redirect
    filter, rules, routes in other tables, and their deletes) leaves the same kernel
    state through both backends, compared after each step."""
    from corecni.net import get_backend

    states: dict[str, list[dict[str, Any]]] = {}
    for name in ("native", "pyroute2"):
        backend = get_backend(name)
        ns = netns_factory("eqtc")
        seen = []
        for step in _steps():
            batch = backend.batch(ns)
            step(batch)
            batch.commit()
            seen.append(tc_rules_snapshot(ns))
        states[name] = seen
    for step, (native, pyroute2) in enumerate(zip(states["native"], states["pyroute2"],
                                                  strict=True)):
        for field in ("links", "qdiscs", "filters", "rules", "routes"):
            assert native[field] == pyroute2[field], (step, field)
    shaped = states["native"][1]
    assert any('"tbf"' in q and "ifb0" in q for q in shaped["qdiscs"])
    assert any("mirred" in f for f in shaped["filters"])
    assert len(states["native"][2]["rules"]) == len(states["native"][0]["rules"]) + 3
    assert states["native"][-1]["rules"] == states["native"][0]["rules"]
