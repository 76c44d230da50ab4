"""corecni-contrib ``ptp`` against the kernel, in throwaway namespaces.

The node namespace holds the host ends, the gateway /32 (/128) addresses, the
host routes and the masquerade rules; each container its end with Go's routing
trick (no on-link subnet route: the gateway as a link route, the subnet via
the gateway). Runs in-process and exec'd through a launcher, on every net
backend; kernel state is read with ``ip -j``, connectivity proved with pings.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from corecni import launcher, netns
from corecni.net import ENV_VAR, available_backends
from corecni.plugin import Attachment
from corecni.registry import Registry
from corecni.runtime import CNIRuntime
from corecni.spec.config import NetworkConfigList, RuntimeConf
from corecni.spec.errors import CNIError
from corecni.testing import ip_json, ns_name, ping

pytestmark = pytest.mark.root

GO_PLUGINS = "/usr/lib/cni"
NsFactory = Callable[..., str]


# --- harness (as in test_bridge) -------------------------------------------------------

@attrs.define
class Cni:
    runtime: CNIRuntime
    node: str

    def _call(self, verb: str, conf: dict[str, Any], ctr: str, cid: str) -> Any:
        with netns.entered(self.node):
            method = getattr(self.runtime, f"{verb}_network_list")
            return method(NetworkConfigList.from_dict(conf), RuntimeConf(cid, "eth0", ctr))

    def add(self, conf: dict[str, Any], ctr: str, cid: str) -> dict[str, Any]:
        return dict(self._call("add", conf, ctr, cid).to_dict())

    def check(self, conf: dict[str, Any], ctr: str, cid: str) -> None:
        self._call("check", conf, ctr, cid)

    def delete(self, conf: dict[str, Any], ctr: str, cid: str) -> None:
        self._call("del", conf, ctr, cid)


def in_process_runtime(tmp: Path, *, rollback: bool = True) -> CNIRuntime:
    """ptp and host-local in-process; anything else (Go's static) exec'd from CNI_PATH."""
    registry = Registry(path=(GO_PLUGINS,), entry_points=False)
    registry.register("ptp", "corecni_contrib.ptp")
    registry.register("host-local", "corecni_contrib.host_local.plugin")
    return CNIRuntime(path=(GO_PLUGINS,), cache_dir=str(tmp / "cache"), registry=registry,
                      rollback=rollback)


def exec_runtime(tmp: Path) -> CNIRuntime:
    bindir = str(tmp / "bin")
    launcher.install(bindir, [launcher.LauncherSpec("ptp", "corecni_contrib.ptp")])
    path = (bindir, GO_PLUGINS)
    return CNIRuntime(path=path, cache_dir=str(tmp / "cache"),
                      registry=Registry(path=path, entry_points=False, in_process=False))


@pytest.fixture(params=available_backends())
def net_backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(ENV_VAR, str(request.param))
    return str(request.param)


@pytest.fixture
def cni(net_backend: str, node_netns: str, tmp_path: Path) -> Cni:
    return Cni(in_process_runtime(tmp_path), node_netns)


@pytest.fixture
def bare_cni(net_backend: str, node_netns: str, tmp_path: Path) -> Cni:
    return Cni(in_process_runtime(tmp_path, rollback=False), node_netns)


@pytest.fixture(autouse=True)
def _root_namespace_untouched() -> Iterator[None]:
    def state() -> tuple[set[str], str, str]:
        with open("/proc/sys/net/ipv4/ip_forward") as fh:
            forward = fh.read()
        tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True,
                                check=False).stdout
        return {str(link["ifname"]) for link in ip_json(None, "link", "show")}, tables, forward

    before, inode = state(), netns.current_inode()
    yield
    assert netns.current_inode() == inode
    assert state() == before


def conf(tmp: Path, name: str = "ptpnet", **plugin: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "type": "ptp", "ipMasq": True, "mtu": 1450,
        "ipam": {"type": "host-local", "dataDir": str(tmp / "ipam"),
                 "ranges": [[{"subnet": "10.92.0.0/24"}], [{"subnet": "fd92::/64"}]],
                 "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}]}}
    base.update(plugin)
    return {"cniVersion": "1.0.0", "name": name, "plugins": [base]}


def eventually(check: Callable[[], bool], timeout: float = 5.0) -> bool:
    """The kernel destroys a deleted namespace's links asynchronously (cleanup_net)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def link(ns: str, name: str) -> dict[str, Any]:
    [item] = ip_json(ns, "-d", "link", "show", "dev", name)
    return dict(item)


def link_names(ns: str) -> set[str]:
    return {str(item["ifname"]) for item in ip_json(ns, "link", "show")}


def addrs(ns: str, name: str) -> set[str]:
    items: list[dict[str, Any]] = [dict(i) for i in ip_json(ns, "addr", "show", "dev", name)]
    return {f"{a['local']}/{a['prefixlen']}" for item in items for a in item["addr_info"]
            if a.get("scope") == "global"}


def routes(ns: str, family: str, *args: str) -> list[dict[str, Any]]:
    return [dict(r) for r in ip_json(ns, family, "route", "show", *args)]


def masq_chains(ns: str) -> list[str]:
    """Per-attachment masquerade chains, whichever backend wrote them (iptables-nft's
    rules show up in nft too; its v4 and v6 chains share one name)."""
    out = subprocess.run(["ip", "netns", "exec", ns_name(ns), "nft", "list", "ruleset"],
                         capture_output=True, text=True, check=True).stdout
    return sorted(set(re.findall(r"chain (CNI-[0-9a-f]+)", out)))


def leases(tmp: Path, network: str = "ptpnet") -> list[str]:
    d = tmp / "ipam" / network
    if not d.exists():
        return []
    return sorted(f.name for f in d.iterdir()
                  if f.name != "lock" and not f.name.startswith("last_reserved_ip"))


def ips_of(result: dict[str, Any]) -> list[str]:
    return [str(ip["address"]).split("/")[0] for ip in result["ips"]]


# --- lifecycle ----------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["in-process", "exec"])
def test_dual_stack_two_containers(mode: str, net_backend: str, netns_factory: NsFactory,
                                   tmp_path: Path) -> None:
    node = netns_factory("node")
    ctrs = [netns_factory("ctr"), netns_factory("ctr")]
    cni = Cni(in_process_runtime(tmp_path) if mode == "in-process" else exec_runtime(tmp_path),
              node)
    cfg = conf(tmp_path, dns={"nameservers": ["10.92.0.53"]})
    results = [cni.add(cfg, ctr, f"c{i}") for i, ctr in enumerate(ctrs)]

    for i, (ctr, result) in enumerate(zip(ctrs, results, strict=True)):
        host, cont = result["interfaces"]
        assert re.fullmatch(r"veth[0-9a-f]{8}", host["name"]) and "sandbox" not in host
        assert cont["name"] == "eth0" and cont["sandbox"] == ctr
        assert all(ip["interface"] == 1 for ip in result["ips"])
        assert [ip["gateway"] for ip in result["ips"]] == ["10.92.0.1", "fd92::1"]
        assert result["dns"] == {"nameservers": ["10.92.0.53"]}
        # container: the address with its prefix, but no on-link subnet route
        eth0 = link(ctr, "eth0")
        assert eth0["mtu"] == 1450 and eth0["address"] == cont["mac"]
        assert addrs(ctr, "eth0") == {ip["address"] for ip in result["ips"]}
        v4 = {(r["dst"], r.get("gateway"), r.get("scope")) for r in routes(ctr, "-4")}
        assert v4 == {("default", "10.92.0.1", None), ("10.92.0.1", None, "link"),
                      ("10.92.0.0/24", "10.92.0.1", None)}
        v6 = {(r["dst"], r.get("gateway")) for r in routes(ctr, "-6")
              if not r["dst"].startswith("fe80")}
        assert v6 == {("default", "fd92::1"), ("fd92::1", None), ("fd92::/64", "fd92::1")}
        # node: the gateways as host addresses, a host route per container address
        assert link(node, host["name"])["mtu"] == 1450
        assert addrs(node, host["name"]) == {"10.92.0.1/32", "fd92::1/128"}
        mine = ips_of(result)
        assert [r["dst"] for r in routes(node, "-4", "dev", host["name"])] == [mine[0]]
        assert mine[1] in [r["dst"] for r in routes(node, "-6", "dev", host["name"])]
        cni.check(cfg, ctr, f"c{i}")
    assert len(masq_chains(node)) == 2 and len(leases(tmp_path)) == 4

    assert ping(ctrs[0], "10.92.0.1") and ping(ctrs[0], "fd92::1")
    for address in ips_of(results[1]):
        assert ping(ctrs[0], address), address  # routed through the node
    for address in ips_of(results[0]):
        assert ping(node, address), address

    for i, ctr in enumerate(ctrs):
        cni.delete(cfg, ctr, f"c{i}")
        cni.delete(cfg, ctr, f"c{i}")
        assert link_names(ctr) == {"lo"}
    assert link_names(node) == {"lo"}
    assert masq_chains(node) == [] and leases(tmp_path) == []


def test_del_without_add_and_after_netns_gone(cni: Cni, netns_factory: NsFactory,
                                              tmp_path: Path) -> None:
    cfg = conf(tmp_path)
    ctr = netns_factory("ctr")
    cni.delete(cfg, ctr, "never-added")
    cni.add(cfg, ctr, "c0")
    subprocess.run(["ip", "netns", "del", ns_name(ctr)], check=True)
    cni.delete(cfg, ctr, "c0")
    cni.delete(cfg, ctr, "c0")
    assert leases(tmp_path) == [] and masq_chains(cni.node) == []
    assert eventually(lambda: link_names(cni.node) == {"lo"})


def test_check_detects_drift(cni: Cni, container_netns: str, tmp_path: Path) -> None:
    cfg = conf(tmp_path)
    ctr = container_netns
    result = cni.add(cfg, ctr, "c0")
    host = result["interfaces"][0]["name"]

    def ip(ns: str, *args: str) -> None:
        subprocess.run(["ip", "-n", ns_name(ns), *args], check=True)

    def error() -> str:
        with pytest.raises(CNIError) as err:
            cni.check(cfg, ctr, "c0")
        return str(err.value)

    ip(ctr, "-6", "addr", "del", result["ips"][1]["address"], "dev", "eth0")
    assert f"expected address {result['ips'][1]['address']} is missing" in error()
    ip(ctr, "-6", "addr", "add", result["ips"][1]["address"], "dev", "eth0", "nodad")
    ip(ctr, "-6", "route", "replace", "default", "via", "fd92::1")
    cni.check(cfg, ctr, "c0")

    ip(ctr, "route", "del", "default")
    assert "expected route to 0.0.0.0/0 via 10.92.0.1 is missing" in error()
    ip(ctr, "route", "add", "default", "via", "10.92.0.1")

    ip(cni.node, "link", "set", host, "name", "moved0")
    assert f"host veth {host} from prevResult not found" in error()
    ip(cni.node, "link", "set", "moved0", "name", host)
    cni.check(cfg, ctr, "c0")
    cni.delete(cfg, ctr, "c0")


# --- errors ---------------------------------------------------------------------------

def test_ifname_taken_in_container(bare_cni: Cni, container_netns: str, tmp_path: Path) -> None:
    subprocess.run(["ip", "-n", ns_name(container_netns), "link", "add", "eth0", "type", "veth",
                    "peer", "name", "eth0peer"], check=True)
    with pytest.raises(CNIError) as err:
        bare_cni.add(conf(tmp_path), container_netns, "c0")
    assert err.value.code == 4 and "interface eth0 already exists" in err.value.msg
    assert link_names(bare_cni.node) == {"lo"} and leases(tmp_path) == []
    bare_cni.delete(conf(tmp_path), container_netns, "c0")  # not ours: DEL leaves it
    assert link_names(container_netns) == {"lo", "eth0", "eth0peer"}


def test_ipam_without_gateway_leaves_nothing(bare_cni: Cni, container_netns: str,
                                             tmp_path: Path) -> None:
    """Go's static IPAM (exec'd from CNI_PATH by the in-process ptp) gives no gateway."""
    cfg = conf(tmp_path, ipam={"type": "static", "addresses": [{"address": "10.93.0.5/24"}]})
    with pytest.raises(CNIError) as err:
        bare_cni.add(cfg, container_netns, "c0")
    assert err.value.code == 7 and "ptp needs a gateway for every address" in err.value.msg
    assert link_names(bare_cni.node) == {"lo"}
    assert link_names(container_netns) == {"lo"}
    assert masq_chains(bare_cni.node) == []


@pytest.mark.parametrize(("extra", "message"), [
    ({"mtu": -1}, "invalid MTU -1"),
    ({"ipMasq": "yes"}, "'ipMasq' must be a boolean"),
    ({"ipam": {}}, "missing ipam.type"),
    ({"dns": {"nameservers": "1.1.1.1"}}, "invalid 'dns'"),
])
def test_bad_config_is_code_7(extra: dict[str, Any], message: str, bare_cni: Cni,
                              container_netns: str, tmp_path: Path) -> None:
    with pytest.raises(CNIError) as err:
        bare_cni.add(conf(tmp_path, **extra), container_netns, "c0")
    assert err.value.code == 7 and message in str(err.value)
    assert link_names(bare_cni.node) == {"lo"} and leases(tmp_path) == []


def test_status_and_gc(cni: Cni, netns_factory: NsFactory, tmp_path: Path) -> None:
    """STATUS asks IPAM (as Go's ptp does); GC reaches IPAM and the masquerade chains."""
    cfg = conf(tmp_path, ipMasqBackend="nftables")  # GC collects the nftables layout
    cfg["cniVersion"] = "1.1.0"
    net = NetworkConfigList.from_dict(cfg)
    cni.runtime.get_status_network_list(net)
    ctrs = [netns_factory("ctr"), netns_factory("ctr")]
    cni.add(cfg, ctrs[0], "c0")
    Cni(in_process_runtime(tmp_path / "other"), cni.node).add(cfg, ctrs[1], "c1")
    assert len(masq_chains(cni.node)) == 2 and len(leases(tmp_path)) == 4
    with netns.entered(cni.node):
        cni.runtime.gc_network_list(net, [Attachment("c0", "eth0")])
    assert len(masq_chains(cni.node)) == 1 and len(leases(tmp_path)) == 2
    cni.delete(cfg, ctrs[0], "c0")
    assert masq_chains(cni.node) == [] and leases(tmp_path) == []
