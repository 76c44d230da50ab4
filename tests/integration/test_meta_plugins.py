"""bandwidth, tuning, sbr, tap, dummy and vrf in real namespaces, in chains.

Each chain runs with corecni's runtime from a node namespace, our plugins either
in-process or exec'd through the launchers ``corecni install`` writes, and mixed
with Go's plugins from /usr/lib/cni where Go has them (Go bridge -> our
bandwidth, our bridge -> Go tuning, Go's sbr/tuning/bandwidth on one side and
ours on the other with the kernel states compared). Kernel state is read with
``tc -j``, ``ip -j`` and /proc, never through the link layer under test; the
shaped rate is measured with iperf3 in both directions.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from corecni import launcher, netns
from corecni.registry import Registry
from corecni.runtime import CNIRuntime
from corecni.spec.config import NetworkConfigList, RuntimeConf
from corecni.spec.errors import CNIError
from corecni.testing import ip_json, ns_name, ping

GO = "/usr/lib/cni"
OURS = {"bridge": "corecni_contrib.bridge", "host-local": "corecni_contrib.host_local.plugin",
        "static": "corecni_contrib.static", "bandwidth": "corecni_contrib.bandwidth",
        "tuning": "corecni_contrib.tuning", "sbr": "corecni_contrib.sbr",
        "tap": "corecni_contrib.tap", "dummy": "corecni_contrib.dummy",
        "vrf": "corecni_contrib.vrf"}
NsFactory = Callable[..., str]

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(not os.path.exists(f"{GO}/bridge"),
                                 reason="Go plugins (containernetworking-plugins) missing")]


def make_runtime(mode: str, tmp: Path, ours: list[str], cache: Path | None = None) -> CNIRuntime:
    """Our ``ours`` types in-process, or exec'd through installed launchers; every other
    type is Go's, exec'd from /usr/lib/cni. Results are cached in ``cache``
    (default ``tmp/cache``)."""
    if mode == "exec":
        bindir = tmp / "bin"
        launcher.install(str(bindir), [launcher.LauncherSpec(t, OURS[t]) for t in ours])
        path: tuple[str, ...] = (str(bindir), GO)
        registry = Registry(path=path, entry_points=False, in_process=False)
    else:
        path = (GO,)
        registry = Registry(path=path, entry_points=False)
        for t in ours:
            registry.register(t, OURS[t])
    return CNIRuntime(path=path, cache_dir=str(cache or tmp / "cache"), registry=registry)


class Chain:
    """One network list run from ``node`` for container ``ctr``."""

    def __init__(self, rt: CNIRuntime, node: str, ctr: str, conf: dict[str, Any],
                 cid: str = "ctr1", **kw: Any) -> None:
        self.rt, self.node, self.net = rt, node, NetworkConfigList.from_dict(conf)
        self.conf = RuntimeConf(cid, "eth0", ctr, **kw)

    def add(self) -> dict[str, Any]:
        with netns.entered(self.node):
            return dict(self.rt.add_network_list(self.net, self.conf).to_dict())

    def check(self) -> None:
        with netns.entered(self.node):
            self.rt.check_network_list(self.net, self.conf)

    def delete(self) -> None:
        with netns.entered(self.node):
            self.rt.del_network_list(self.net, self.conf)


def bridge(tmp: Path, subnet: str = "10.80.0.0/24", **extra: Any) -> dict[str, Any]:
    return {"type": "bridge", "bridge": "cni-meta0", "isGateway": True,
            "ipam": {"type": "host-local", "dataDir": str(tmp / "ipam"), "subnet": subnet,
                     "routes": [{"dst": "0.0.0.0/0"}]}, **extra}


def conflist(*plugins: dict[str, Any], name: str = "metanet") -> dict[str, Any]:
    return {"cniVersion": "1.0.0", "name": name, "plugins": list(plugins)}


def tc(ns: str, *args: str) -> list[dict[str, Any]]:
    out = subprocess.run(["tc", "-n", ns_name(ns), "-j", *args], check=True,
                         capture_output=True, text=True).stdout
    return list(json.loads(out or "[]"))


def host_veth(node: str) -> str:
    [veth] = [link["ifname"] for link in ip_json(node, "-d", "link", "show")
              if link.get("linkinfo", {}).get("info_kind") == "veth"]
    return str(veth)


def ifb_links(node: str) -> list[str]:
    return [str(link["ifname"]) for link in ip_json(node, "-d", "link", "show")
            if link.get("linkinfo", {}).get("info_kind") == "ifb"]


def sysctl(ns: str, key: str) -> str:
    return subprocess.run(["ip", "netns", "exec", ns_name(ns), "cat",
                           f"/proc/sys/{key.replace('.', '/')}"], check=True,
                          capture_output=True, text=True).stdout.strip()


@pytest.fixture
def node(netns_factory: NsFactory) -> str:
    return netns_factory("node")


@pytest.fixture
def ctr(netns_factory: NsFactory) -> str:
    return netns_factory("ctr")


# --- bandwidth ---------------------------------------------------------------------------

LIMITS = {"ingressRate": 8_000_000, "ingressBurst": 400_000,
          "egressRate": 16_000_000, "egressBurst": 800_000}


def shaped_state(node: str) -> dict[str, Any]:
    veth = host_veth(node)
    qd = {(q["dev"], q["kind"]): q for q in tc(node, "qdisc", "show")}
    [ifb] = ifb_links(node)
    filters = [f for f in tc(node, "filter", "show", "dev", veth, "ingress")
               if "actions" in f.get("options", {})]
    return {"veth": veth, "ifb": ifb, "qdiscs": qd, "filters": filters}


@pytest.mark.parametrize(("mode", "bridge_impl"), [
    ("in-process", "ours"), ("exec", "ours"), ("in-process", "go"), ("exec", "go")])
def test_bandwidth_chain(mode: str, bridge_impl: str, node: str, ctr: str,
                         tmp_path: Path) -> None:
    """ADD builds Go's shape (tbf on the veth, ifb + redirect + tbf), Go's bandwidth CHECK
    accepts it, DEL removes it; with our bridge or Go's before it."""
    ours = ["bandwidth"] + (["bridge", "host-local"] if bridge_impl == "ours" else [])
    conf = conflist(bridge(tmp_path), {"type": "bandwidth", **LIMITS})
    chain = Chain(make_runtime(mode, tmp_path, ours), node, ctr, conf)
    result = chain.add()
    state = shaped_state(node)
    tbf = state["qdiscs"][state["veth"], "tbf"]["options"]
    assert (tbf["rate"], tbf["burst"]) == (1_000_000, 50_000)  # bytes
    assert state["qdiscs"][state["veth"], "ingress"]["handle"] == "ffff:"
    assert state["qdiscs"][state["ifb"], "tbf"]["options"]["rate"] == 2_000_000
    [flt] = state["filters"]
    assert flt["options"]["actions"][0]["to_dev"] == state["ifb"]
    assert flt["options"]["flowid"] == "1:1"
    import hashlib
    assert state["ifb"] == ("bwp" + hashlib.sha512(b"metanetctr1").hexdigest())[:15]
    assert any(i["name"] == state["ifb"] for i in result["interfaces"])
    chain.check()
    # Go's bandwidth CHECK (same cache) accepts what ours built: the tbf values are Go's
    go_ours = ["bridge", "host-local"] if bridge_impl == "ours" else []
    Chain(make_runtime(mode, tmp_path / "go", go_ours, cache=tmp_path / "cache"), node, ctr,
          conf).check()
    chain.delete()
    assert ifb_links(node) == []
    assert not [link for link in ip_json(node, "link", "show") if "veth" in link["ifname"]]
    chain.delete()  # DEL twice is fine


def test_go_bandwidth_state_equals_ours(node: str, ctr: str, netns_factory: NsFactory,
                                        tmp_path: Path) -> None:
    """The same chain with Go's bandwidth and with ours: identical qdiscs and filter."""
    states = []
    for ours, (n, c) in ((["bandwidth"], (node, ctr)),
                         ([], (netns_factory("node"), netns_factory("ctr")))):
        tmp = tmp_path / str(len(states))
        conf = conflist(bridge(tmp), {"type": "bandwidth", **LIMITS})
        Chain(make_runtime("in-process", tmp, ours), n, c, conf).add()
        state = shaped_state(n)
        states.append((
            sorted((dev == state["ifb"], kind, json.dumps(q.get("options"), sort_keys=True),
                    q["handle"]) for (dev, kind), q in state["qdiscs"].items()),
            [json.dumps({k: v for k, v in f["options"].items() if k != "actions"},
                        sort_keys=True) for f in state["filters"]],
            state["ifb"]))
    assert states[0] == states[1]


def test_bandwidth_capability_and_bad_input(node: str, ctr: str, tmp_path: Path) -> None:
    rt = make_runtime("in-process", tmp_path, ["bandwidth", "bridge", "host-local"])
    bad = Chain(rt, node, ctr, conflist(bridge(tmp_path), {"type": "bandwidth",
                                                           "egressRate": 1_000_000}))
    with pytest.raises(CNIError) as info:
        bad.add()
    assert info.value.code == 7 and "burst" in info.value.msg
    assert ifb_links(node) == []  # nothing half-written (and the bridge rolled back)
    assert not [q for q in tc(node, "qdisc", "show") if q["kind"] in ("tbf", "ingress")]
    conf = conflist(bridge(tmp_path), {"type": "bandwidth", "capabilities": {"bandwidth": True}})
    chain = Chain(rt, node, ctr, conf, capability_args={"bandwidth": {
        "ingressRate": 8_000_000, "ingressBurst": 400_000}})
    chain.add()
    assert tc(node, "qdisc", "show", "dev", host_veth(node))[0]["kind"] == "tbf"
    assert ifb_links(node) == []  # no egress limit: no ifb
    chain.check()
    chain.delete()


def iperf(client_ns: str, server_ns: str, server_ip: str) -> float:
    """bits/s received by the server, one 4 s TCP run (first second omitted)."""
    server = subprocess.Popen(["ip", "netns", "exec", ns_name(server_ns), "iperf3", "-s", "-1",
                               "-B", server_ip, "-p", "5201"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):  # until the server listens
            listening = subprocess.run(["ip", "netns", "exec", ns_name(server_ns), "ss", "-Hltn",
                                        "sport", "= :5201"], capture_output=True, text=True,
                                       check=False).stdout
            if listening.strip():
                break
            time.sleep(0.05)
        proc = subprocess.run(["ip", "netns", "exec", ns_name(client_ns), "iperf3", "-c",
                               server_ip, "-p", "5201", "-t", "4", "-O", "1", "-J"],
                              capture_output=True, text=True, check=False)
        report = json.loads(proc.stdout or "{}")
        assert proc.returncode == 0 and "error" not in report, proc.stdout[-2000:] + proc.stderr
        return float(report["end"]["sum_received"]["bits_per_second"])
    finally:
        server.kill()
        server.wait()


@pytest.mark.skipif(not os.path.exists("/usr/bin/iperf3"), reason="iperf3 not installed")
def test_bandwidth_shapes_traffic_both_ways(node: str, ctr: str, tmp_path: Path) -> None:
    conf = conflist(bridge(tmp_path), {"type": "bandwidth", **LIMITS})
    chain = Chain(make_runtime("in-process", tmp_path, ["bandwidth", "bridge", "host-local"]),
                  node, ctr, conf)
    result = chain.add()
    ctr_ip = result["ips"][0]["address"].split("/")[0]
    gw = result["ips"][0]["gateway"]
    assert ping(ctr, gw)
    to_ctr = iperf(node, ctr, ctr_ip)  # the container's ingress: tbf on the host veth
    from_ctr = iperf(ctr, node, gw)  # its egress: redirected into the ifb's tbf
    print(f"shaped: to the container {to_ctr / 1e6:.2f} Mbit/s (limit 8), "
          f"from it {from_ctr / 1e6:.2f} Mbit/s (limit 16)")
    assert abs(to_ctr - LIMITS["ingressRate"]) <= 0.2 * LIMITS["ingressRate"], to_ctr
    assert abs(from_ctr - LIMITS["egressRate"]) <= 0.2 * LIMITS["egressRate"], from_ctr
    chain.delete()


# --- tuning ------------------------------------------------------------------------------

def tuning_conf(tmp: Path, **extra: Any) -> dict[str, Any]:
    return {"type": "tuning", "dataDir": str(tmp / "tuning"),
            "sysctl": {"net.ipv4.conf.IFNAME.arp_filter": "1", "net.core.somaxconn": "1234"},
            "mtu": 1300, "promisc": True, "allmulti": True, "mac": "02:00:00:00:12:34",
            **extra}


def tuned_state(ctr: str) -> dict[str, Any]:
    [link] = ip_json(ctr, "-d", "link", "show", "dev", "eth0")
    return {"mtu": link["mtu"], "mac": link["address"], "promisc": link.get("promiscuity"),
            "flags": sorted(set(link["flags"]) - {"LOWER_UP", "NO-CARRIER"}),
            "txqlen": link.get("txqlen"),
            "arp_filter": sysctl(ctr, "net.ipv4.conf.eth0.arp_filter"),
            "somaxconn": sysctl(ctr, "net.core.somaxconn")}


@pytest.mark.parametrize("mode", ["in-process", "exec"])
def test_tuning_chain(mode: str, node: str, ctr: str, tmp_path: Path) -> None:
    conf = conflist(bridge(tmp_path), tuning_conf(tmp_path, txQLen=500))
    chain = Chain(make_runtime(mode, tmp_path, ["tuning", "bridge", "host-local"]), node, ctr,
                  conf)
    result = chain.add()
    state = tuned_state(ctr)
    assert state["mtu"] == 1300 and state["mac"] == "02:00:00:00:12:34"
    assert {"PROMISC", "ALLMULTI"} <= set(state["flags"]) and state["txqlen"] == 500
    assert (state["arp_filter"], state["somaxconn"]) == ("1", "1234")
    assert [i["mac"] for i in result["interfaces"] if i["name"] == "eth0"] == [
        "02:00:00:00:12:34"]
    saved = json.loads((tmp_path / "tuning" / "ctr1_eth0.json").read_text())
    assert saved["mtu"] == 1500 and saved["promisc"] is False and saved["txQLen"] == 1000
    chain.check()
    subprocess.run(["ip", "-n", ns_name(ctr), "link", "set", "eth0", "mtu", "1280"], check=True)
    with pytest.raises(CNIError) as info:
        chain.check()
    assert "MTU" in info.value.msg
    chain.delete()
    assert not (tmp_path / "tuning" / "ctr1_eth0.json").exists()


def test_our_bridge_then_go_tuning(node: str, ctr: str, tmp_path: Path,
                                   netns_factory: NsFactory) -> None:
    """Go's tuning after our bridge, and the same chain with ours: same container state."""
    states = []
    for ours, c in ((["bridge", "host-local"], ctr),
                    (["bridge", "host-local", "tuning"], netns_factory("ctr"))):
        tmp = tmp_path / str(len(states))
        # Go 1.1.1's CHECK does not substitute IFNAME (it reads .../conf/IFNAME/...): the
        # interface is named here so Go's CHECK can run too
        chain = Chain(make_runtime("in-process", tmp, ours), node, c,
                      conflist(bridge(tmp),
                               tuning_conf(tmp, sysctl={"net.ipv4.conf.eth0.arp_filter": "1",
                                                        "net.core.somaxconn": "1234"})),
                      cid=f"c{len(states)}")
        chain.add()
        states.append(tuned_state(c))
        chain.check()
        chain.delete()
    assert states[0] == states[1]


@pytest.mark.parametrize(("add_by", "del_by"), [("ours", "go"), ("go", "ours")])
def test_tuning_restore_across_implementations(add_by: str, del_by: str, ctr: str,
                                               tmp_path: Path) -> None:
    """One implementation's ADD, the other's DEL: the link gets its settings back (the
    saved file is the same format), while the link itself stays."""
    subprocess.run(["ip", "-n", ns_name(ctr), "link", "add", "eth0", "type", "veth", "peer",
                    "name", "peer0"], check=True)
    before = tuned_state(ctr)
    conf = {"cniVersion": "1.0.0", "name": "tun", **tuning_conf(tmp_path),
            "prevResult": {"cniVersion": "1.0.0",
                           "interfaces": [{"name": "eth0", "sandbox": ctr}]}}
    bindir = tmp_path / "bin"
    launcher.install(str(bindir), [launcher.LauncherSpec("tuning", OURS["tuning"])])
    impl = {"ours": str(bindir / "tuning"), "go": f"{GO}/tuning"}
    for command, who in (("ADD", add_by), ("DEL", del_by)):
        env = {"PATH": os.environ["PATH"], "CNI_COMMAND": command, "CNI_CONTAINERID": "ctr9",
               "CNI_NETNS": ctr, "CNI_IFNAME": "eth0", "CNI_PATH": f"{bindir}:{GO}"}
        proc = subprocess.run([impl[who]], input=json.dumps(conf).encode(), env=env,
                              capture_output=True, check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        if command == "ADD":
            tuned = tuned_state(ctr)
            assert tuned["mtu"] == 1300 and tuned["mac"] == "02:00:00:00:12:34"
    after = tuned_state(ctr)
    for key in ("mtu", "mac", "promisc", "flags"):  # sysctls are not restored (Go neither)
        assert after[key] == before[key], key
    assert not (tmp_path / "tuning" / "ctr9_eth0.json").exists()


def test_tuning_bad_sysctl_writes_nothing(node: str, ctr: str, tmp_path: Path) -> None:
    before = sysctl(ctr, "net.core.somaxconn")
    for key in ("kernel.hostname", "net/../kernel/hostname"):
        conf = conflist(bridge(tmp_path), tuning_conf(tmp_path, sysctl={
            "net.core.somaxconn": "999", key: "x"}))
        chain = Chain(make_runtime("in-process", tmp_path, ["tuning", "bridge", "host-local"]),
                      node, ctr, conf)
        with pytest.raises(CNIError) as info:
            chain.add()
        assert info.value.code == 7 and "sysctl" in info.value.msg
        assert sysctl(ctr, "net.core.somaxconn") == before
        assert [link["ifname"] for link in ip_json(ctr, "link", "show")] == ["lo"]


# --- sbr ---------------------------------------------------------------------------------

def routing_state(ctr: str) -> dict[str, Any]:
    rules = sorted(json.dumps(r, sort_keys=True) for r in ip_json(ctr, "rule", "show"))
    routes = sorted(json.dumps(r, sort_keys=True)
                    for family in ("-4", "-6")
                    for r in ip_json(ctr, family, "route", "show", "table", "all")
                    if r.get("table") != "local" and r.get("type") != "multicast"
                    and not str(r.get("dst", "")).startswith("fe80"))
    return {"rules": rules, "routes": routes}


def sbr_check(ctr: str, result: dict[str, Any]) -> None:
    from corecni_contrib import sbr

    from corecni.net import get_backend
    from corecni.request import Request
    from corecni.spec.config import PluginConfig
    from corecni.spec.result import Result

    prev = Result.from_dict(result, "1.0.0")
    req = Request(command="CHECK", config=PluginConfig.from_dict(
        {"cniVersion": "1.0.0", "name": "metanet", "type": "sbr"}), container_id="ctr1",
        netns=ctr, ifname="eth0", prev_result=prev, net=get_backend())
    sbr.meta_check(req, prev)


def test_sbr_ours_and_gos_build_the_same_tables(node: str, ctr: str, tmp_path: Path,
                                                netns_factory: NsFactory) -> None:
    states = []
    for ours, (n, c) in ((["sbr", "bridge", "host-local"], (node, ctr)),
                         (["bridge", "host-local"],
                          (netns_factory("node"), netns_factory("ctr")))):
        tmp = tmp_path / str(len(states))
        chain = Chain(make_runtime("in-process", tmp, ours), n, c,
                      conflist(bridge(tmp), {"type": "sbr"}))
        result = chain.add()
        state = routing_state(c)
        states.append(state)
        ip = result["ips"][0]["address"].split("/")[0]
        assert any(f'"src": "{ip}"' in r and '"table": "100"' in r for r in state["rules"])
        assert not any('"dev": "eth0"' in r and '"table"' not in r for r in state["routes"])
        # from the address: the rule sends it through table 100 (main has no route left)
        assert subprocess.run(["ip", "netns", "exec", ns_name(c), "ping", "-c", "1", "-W", "2",
                               "-I", ip, result["ips"][0]["gateway"]],
                              capture_output=True, check=False).returncode == 0
        # (the bridge's own CHECK fails after sbr, Go's too: its default route left the
        # main table; sbr's CHECK is called alone)
        sbr_check(c, result)
        chain.delete()
        assert not any('"table": "100"' in r for r in routing_state(c)["rules"])
    assert states[0] == states[1]


def test_sbr_two_interfaces_get_two_tables(node: str, ctr: str, tmp_path: Path) -> None:
    rt = make_runtime("exec", tmp_path, ["sbr", "bridge", "host-local"])
    chains = []
    for i, ifname in enumerate(("eth0", "net1")):
        conf = conflist(bridge(tmp_path / ifname, subnet=f"10.9{i}.0.0/24",
                               bridge=f"cni-sbr{i}"), {"type": "sbr"}, name=f"sbr{i}")
        chain = Chain(rt, node, ctr, conf)
        chain.conf = RuntimeConf("ctr1", ifname, ctr)
        chain.add()
        chains.append(chain)
    tables = sorted(str(r.get("table")) for r in ip_json(ctr, "rule", "show")
                    if r.get("src") not in (None, "all"))
    assert tables == ["100", "101"]
    for chain in reversed(chains):
        chain.delete()
    assert not [r for r in ip_json(ctr, "rule", "show") if r.get("src") not in (None, "all")]


# --- tap, dummy, vrf ------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["in-process", "exec"])
def test_tap_plugin(mode: str, node: str, ctr: str, tmp_path: Path) -> None:
    conf = conflist({"type": "tap", "mtu": 1400, "multiQueue": True, "mac": "02:00:00:00:0a:01",
                     "ipam": {"type": "static", "addresses": [{"address": "10.70.0.2/24"}]}})
    chain = Chain(make_runtime(mode, tmp_path, ["tap", "static"]), node, ctr, conf)
    result = chain.add()
    [link] = ip_json(ctr, "-d", "link", "show", "dev", "eth0")
    info = link["linkinfo"]["info_data"]
    assert (link["mtu"], link["address"], info["type"], info["multi_queue"]) == (
        1400, "02:00:00:00:0a:01", "tap", True)
    assert "UP" in link["flags"]
    assert result["interfaces"][0]["sandbox"] == ctr
    addrs = [a["local"] for a in ip_json(ctr, "addr", "show", "dev", "eth0")[0]["addr_info"]]
    assert "10.70.0.2" in addrs
    chain.check()
    chain.delete()
    assert [link["ifname"] for link in ip_json(ctr, "link", "show")] == ["lo"]
    chain.delete()


@pytest.mark.parametrize(("kind", "plugins"), [
    ("dummy", [{"type": "dummy", "ipam": {"type": "static",
                                           "addresses": [{"address": "10.71.0.2/24"}]}}]),
    ("vrf", [{"type": "tap", "ipam": {"type": "static",
                                       "addresses": [{"address": "10.72.0.2/24"}]}},
             {"type": "vrf", "vrfname": "blue", "table": 1001}]),
])
def test_dummy_and_vrf(kind: str, plugins: list[dict[str, Any]], node: str, ctr: str,
                       tmp_path: Path) -> None:
    chain = Chain(make_runtime("in-process", tmp_path, ["dummy", "vrf", "tap", "static"]),
                  node, ctr, conflist(*plugins))
    try:
        chain.add()
    except CNIError as exc:
        if f"{kind} kernel module" in exc.msg:
            assert [link["ifname"] for link in ip_json(ctr, "link", "show")] == ["lo"]
            pytest.skip(f"kernel has no {kind} support: {exc.msg}")
        raise
    links = {link["ifname"]: link for link in ip_json(ctr, "-d", "link", "show")}
    if kind == "vrf":
        assert links["blue"]["linkinfo"]["info_data"]["table"] == 1001
        assert links["eth0"]["master"] == "blue"
    else:
        assert links["eth0"]["linkinfo"]["info_kind"] == "dummy"
    chain.check()
    chain.delete()
    assert [link["ifname"] for link in ip_json(ctr, "link", "show")] == ["lo"]
