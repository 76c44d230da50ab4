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
from pathlib import Path
from typing import Any

import pytest

from corecni import netns
from corecni.plugin import Attachment
from corecni.spec.config import NetworkConfigList
from corecni.spec.errors import CNIError
from corecni.testing import (
    NodeCni,
    addrs,
    conflist,
    eventually,
    expect_error,
    ip,
    link_info,
    link_names,
    ns_name,
    ping,
    routes,
)
from tests.integration import _harness
from tests.integration._harness import (
    NsFactory,
    check_error,
    host_local,
    ips_of,
    masq_chains,
    with_host_local,
)

pytestmark = [pytest.mark.root, pytest.mark.usefixtures("root_netns_guard")]


# --- harness (the shared one in _harness, set up for ptp) -------------------------------
# in-process: ptp and host-local; anything else (Go's static) is exec'd from CNI_PATH

PLUGIN_TYPE = "ptp"  # for the conftest fixtures cni, bare_cni


def conf(tmp: Path, name: str = "ptpnet", **plugin: Any) -> dict[str, Any]:
    return conflist({"type": "ptp", "ipMasq": True, "mtu": 1450,
                     "ipam": host_local(tmp, "10.92.0.0/24", "fd92::/64"), **plugin}, name)


def leases(tmp: Path) -> list[str]:
    return _harness.leases(tmp, "ptpnet")


# --- lifecycle ----------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["in-process", "exec"])
def test_dual_stack_two_containers(mode: str, net_backend: str, netns_factory: NsFactory,
                                   tmp_path: Path) -> None:
    node = netns_factory("node")
    ctrs = [netns_factory("ctr"), netns_factory("ctr")]
    cni = NodeCni(with_host_local("ptp", mode, tmp_path), node)
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
        eth0 = link_info(ctr, "eth0")
        assert eth0["mtu"] == 1450 and eth0["address"] == cont["mac"]
        assert addrs(ctr, "eth0") == {ip["address"] for ip in result["ips"]}
        v4 = {(r["dst"], r.get("gateway"), r.get("scope")) for r in routes(ctr, "-4")}
        assert v4 == {("default", "10.92.0.1", None), ("10.92.0.1", None, "link"),
                      ("10.92.0.0/24", "10.92.0.1", None)}
        v6 = {(r["dst"], r.get("gateway")) for r in routes(ctr, "-6")
              if not r["dst"].startswith("fe80")}
        assert v6 == {("default", "fd92::1"), ("fd92::1", None), ("fd92::/64", "fd92::1")}
        # node: the gateways as host addresses, a host route per container address
        assert link_info(node, host["name"])["mtu"] == 1450
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


def test_del_without_add_and_after_netns_gone(cni: NodeCni, netns_factory: NsFactory,
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


def test_check_detects_drift(cni: NodeCni, container_netns: str, tmp_path: Path) -> None:
    cfg = conf(tmp_path)
    ctr = container_netns
    result = cni.add(cfg, ctr, "c0")
    host = result["interfaces"][0]["name"]

    def error() -> str:
        return check_error(cni, cfg, ctr, "c0")

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

def test_ifname_taken_in_container(bare_cni: NodeCni, container_netns: str, tmp_path: Path) -> None:
    ip(container_netns, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0peer")
    with pytest.raises(CNIError) as err:
        bare_cni.add(conf(tmp_path), container_netns, "c0")
    assert err.value.code == 4 and "interface eth0 already exists" in err.value.msg
    assert link_names(bare_cni.node) == {"lo"} and leases(tmp_path) == []
    bare_cni.delete(conf(tmp_path), container_netns, "c0")  # not ours: DEL leaves it
    assert link_names(container_netns) == {"lo", "eth0", "eth0peer"}


def test_ipam_without_gateway_leaves_nothing(bare_cni: NodeCni, container_netns: str,
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
def test_bad_config_is_code_7(extra: dict[str, Any], message: str, bare_cni: NodeCni,
                              container_netns: str, tmp_path: Path) -> None:
    with pytest.raises(CNIError) as err:
        bare_cni.add(conf(tmp_path, **extra), container_netns, "c0")
    assert err.value.code == 7 and message in str(err.value)
    assert link_names(bare_cni.node) == {"lo"} and leases(tmp_path) == []


def test_status_and_gc(cni: NodeCni, netns_factory: NsFactory, tmp_path: Path) -> None:
    """STATUS asks IPAM (as Go's ptp does); GC reaches IPAM and the masquerade chains."""
    cfg = conf(tmp_path, ipMasqBackend="nftables")  # GC collects the nftables layout
    cfg["cniVersion"] = "1.1.0"
    net = NetworkConfigList.from_dict(cfg)
    cni.runtime.get_status_network_list(net)  # ready; and host-local's "not ready" comes back:
    (tmp_path / "afile").write_text("")
    unwritable = {**cfg["plugins"][0]["ipam"], "dataDir": str(tmp_path / "afile" / "sub")}
    with expect_error(50, "not writable"):
        cni.status({**cfg, "plugins": [{**cfg["plugins"][0], "ipam": unwritable}]})
    ctrs = [netns_factory("ctr"), netns_factory("ctr")]
    cni.add(cfg, ctrs[0], "c0")
    other = NodeCni(with_host_local("ptp", "in-process", tmp_path / "other"), cni.node)
    other.add(cfg, ctrs[1], "c1")
    assert len(masq_chains(cni.node)) == 2 and len(leases(tmp_path)) == 4
    with netns.entered(cni.node):
        cni.runtime.gc_network_list(net, [Attachment("c0", "eth0")])
    assert len(masq_chains(cni.node)) == 1 and len(leases(tmp_path)) == 2
    cni.delete(cfg, ctrs[0], "c0")
    assert masq_chains(cni.node) == [] and leases(tmp_path) == []
