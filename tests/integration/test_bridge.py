"""corecni-contrib ``bridge`` against the kernel, in throwaway namespaces.

A "node" namespace stands in for the host (the bridge, the host veths, the
gateway addresses, forwarding and the masquerade rules live there) and each
container gets its own namespace. The plugin runs in-process (corecni's
runtime with the thread inside the node namespace) and exec'd through an
installed launcher, on every net backend that loads here. Kernel state is read
back with ``ip -j``/``nft``/``bridge`` - never through the backend under test -
and pings prove connectivity. Error tests run without the runtime's rollback,
so they show what the plugin itself leaves behind: nothing.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from corecni_contrib.bridge.config import BridgeConf

from corecni import netns
from corecni.plugin import Attachment, Request
from corecni.spec.config import NetworkConfigList, PluginConfig
from corecni.spec.errors import CNIError
from corecni.testing import (
    GO_PLUGINS,
    NodeCni,
    addrs,
    conflist,
    eventually,
    expect_error,
    ip,
    link_info,
    link_names,
    nft,
    ns_name,
    ping,
    routes,
    sysctl,
)
from tests.integration import _harness
from tests.integration._harness import (
    NsFactory,
    check_error,
    host_local,
    install_launcher,
    ips_of,
    masq_chains,
    with_host_local,
)

pytestmark = [pytest.mark.root, pytest.mark.usefixtures("root_netns_guard")]

BRIDGE = "cnitest0"


# --- harness (the shared one in _harness, set up for bridge) ----------------------------

PLUGIN_TYPE = "bridge"  # for the conftest fixtures cni, bare_cni


def conf(tmp: Path, name: str = "brnet", **plugin: Any) -> dict[str, Any]:
    return conflist({"type": "bridge", "bridge": BRIDGE, "isGateway": True, "ipMasq": True,
                     "ipam": host_local(tmp, "10.91.0.0/24", "fd91::/64"), **plugin}, name)


def leases(tmp: Path) -> list[str]:
    return _harness.leases(tmp, "brnet")


def host_of(result: dict[str, Any]) -> str:
    return str(result["interfaces"][1]["name"])


# --- the main lifecycle -------------------------------------------------------------

@pytest.mark.parametrize("mode", ["in-process", "exec"])
def test_dual_stack_two_containers(mode: str, net_backend: str, netns_factory: NsFactory,
                                   tmp_path: Path) -> None:
    node = netns_factory("node")
    ctrs = [netns_factory("ctr"), netns_factory("ctr")]
    cni = NodeCni(with_host_local("bridge", mode, tmp_path), node)
    cfg = conf(tmp_path, hairpinMode=True, mtu=1400, isDefaultGateway=True)
    results = [cni.add(cfg, ctr, f"c{i}") for i, ctr in enumerate(ctrs)]

    for i, (ctr, result) in enumerate(zip(ctrs, results, strict=True)):
        # Go's shape: bridge, host veth, container interface; ips on the container one
        names = [iface["name"] for iface in result["interfaces"]]
        assert names[0] == BRIDGE and names[2] == "eth0"
        assert re.fullmatch(r"veth[0-9a-f]{8}", names[1])
        assert "sandbox" not in result["interfaces"][0] and "sandbox" not in result["interfaces"][1]
        assert result["interfaces"][2]["sandbox"] == ctr
        assert all(ip["interface"] == 2 for ip in result["ips"])
        assert [ip["gateway"] for ip in result["ips"]] == ["10.91.0.1", "fd91::1"]
        assert {"dst": "0.0.0.0/0"} in result["routes"]
        # kernel: container side
        eth0 = link_info(ctr, "eth0")
        assert eth0["mtu"] == 1400 and "UP" in eth0["flags"]
        assert eth0["address"] == result["interfaces"][2]["mac"]
        assert eth0["linkinfo"]["info_kind"] == "veth"
        assert addrs(ctr, "eth0") == {ip["address"] for ip in result["ips"]}
        assert [r["gateway"] for r in routes(ctr, "-4") if r["dst"] == "default"] == ["10.91.0.1"]
        assert [r["gateway"] for r in routes(ctr, "-6") if r["dst"] == "default"] == ["fd91::1"]
        assert sysctl(ctr, "ipv6/conf/eth0/accept_dad") == "0"  # enabledad defaults to false
        # kernel: node side
        port = link_info(node, host_of(result))
        assert port["master"] == BRIDGE and port["mtu"] == 1400
        assert port["linkinfo"]["info_slave_data"]["hairpin"] is True
        assert port["address"] == result["interfaces"][1]["mac"]
        cni.check(cfg, ctr, f"c{i}")

    bridge = link_info(node, BRIDGE)
    assert bridge["linkinfo"]["info_kind"] == "bridge" and bridge["mtu"] == 1400
    assert bridge["address"] == results[1]["interfaces"][0]["mac"]
    assert addrs(node, BRIDGE) == {"10.91.0.1/24", "fd91::1/64"}
    assert sysctl(node, "ipv4/ip_forward") == "1"
    assert sysctl(node, "ipv6/conf/all/forwarding") == "1"
    assert len(masq_chains(node)) == 2
    assert len(leases(tmp_path)) == 4

    # container <-> gateway and container <-> container, IPv4 and IPv6
    assert ping(ctrs[0], "10.91.0.1") and ping(ctrs[0], "fd91::1")
    for address in ips_of(results[1]):
        assert ping(ctrs[0], address), address
    for address in ips_of(results[0]):
        assert ping(ctrs[1], address), address

    for i, ctr in enumerate(ctrs):
        cni.delete(cfg, ctr, f"c{i}")
        cni.delete(cfg, ctr, f"c{i}")  # DEL is idempotent
        assert link_names(ctr) == {"lo"}
    assert link_names(node) == {"lo", BRIDGE}
    assert masq_chains(node) == []
    assert leases(tmp_path) == []


# --- DEL ------------------------------------------------------------------------------

def test_del_without_add_and_after_netns_gone(cni: NodeCni, netns_factory: NsFactory,
                                              tmp_path: Path) -> None:
    cfg = conf(tmp_path)
    ctr = netns_factory("ctr")
    cni.delete(cfg, ctr, "never-added")
    cni.delete(cfg, "", "never-added")  # no netns at all: IPAM only

    result = cni.add(cfg, ctr, "c0")
    assert len(masq_chains(cni.node)) == 1 and len(leases(tmp_path)) == 2
    subprocess.run(["ip", "netns", "del", ns_name(ctr)], check=True)
    cni.delete(cfg, ctr, "c0")  # the namespace is gone: IPAM and rules still go
    cni.delete(cfg, ctr, "c0")
    assert leases(tmp_path) == []
    assert masq_chains(cni.node) == []
    assert eventually(lambda: host_of(result) not in link_names(cni.node))


# --- CHECK ----------------------------------------------------------------------------

def test_check_detects_drift(cni: NodeCni, container_netns: str, tmp_path: Path) -> None:
    cfg = conf(tmp_path)
    ctr, node = container_netns, cni.node
    result = cni.add(cfg, ctr, "c0")
    host = host_of(result)
    cni.check(cfg, ctr, "c0")

    def error() -> str:
        return check_error(cni, cfg, ctr, "c0")

    address = result["ips"][0]["address"]
    ip(ctr, "addr", "del", address, "dev", "eth0")
    assert f"expected address {address} is missing" in error()
    ip(ctr, "addr", "add", address, "dev", "eth0")
    ip(ctr, "route", "add", "default", "via", "10.91.0.1")  # the address' removal took it

    ip(ctr, "-6", "route", "del", "default")
    assert "expected route to ::/0 via fd91::1 is missing" in error()
    ip(ctr, "-6", "route", "add", "default", "via", "fd91::1")
    cni.check(cfg, ctr, "c0")

    ip(node, "link", "set", host, "nomaster")
    assert f"host veth {host} is not attached to bridge {BRIDGE}" in error()
    ip(node, "link", "set", host, "master", BRIDGE)
    cni.check(cfg, ctr, "c0")

    ip(node, "link", "set", host, "name", "gone0")  # the peer is no longer what ADD made
    assert f"host veth {host} from prevResult not found" in error()
    ip(node, "link", "set", "gone0", "name", host)

    ip(node, "link", "set", BRIDGE, "promisc", "on")
    assert "promiscuous mode False doesn't match" in error()
    ip(node, "link", "set", BRIDGE, "promisc", "off")

    ip(ctr, "link", "del", "eth0")  # takes its peer along
    assert "container interface eth0 from prevResult not found" in error()
    cni.delete(cfg, ctr, "c0")


def test_bridge_mac_is_set_at_creation(cni: NodeCni, netns_factory: NsFactory,
                                       tmp_path: Path) -> None:
    """Born with a set MAC (addr_assign_type 3), the bridge never takes a port's MAC, so
    concurrent ADDs all report the MAC it keeps and CHECK agrees (a race before)."""
    cfg = conf(tmp_path, isGateway=False, ipMasq=False)
    first = cni.add(cfg, netns_factory("ctr"), "c0")
    cni.add(cfg, netns_factory("ctr"), "c1")
    assign = subprocess.run(["ip", "netns", "exec", ns_name(cni.node), "cat",
                             f"/sys/class/net/{BRIDGE}/addr_assign_type"],
                            capture_output=True, text=True, check=True).stdout.strip()
    assert assign == "3"  # NET_ADDR_SET
    mac = link_info(cni.node, BRIDGE)["address"]
    assert first["interfaces"][0]["mac"] == mac


# --- errors: each leaves nothing behind ------------------------------------------------

def test_bridge_name_taken_by_non_bridge(bare_cni: NodeCni, container_netns: str,
                                         tmp_path: Path) -> None:
    node = bare_cni.node
    ip(node, "link", "add", BRIDGE, "type", "veth", "peer", "name", "squatter1")
    with pytest.raises(CNIError) as err:
        bare_cni.add(conf(tmp_path), container_netns, "c0")
    assert err.value.code == 7
    assert f'"{BRIDGE}" already exists but is not a bridge' in err.value.msg
    assert link_names(node) == {"lo", BRIDGE, "squatter1"}
    assert link_info(node, BRIDGE)["linkinfo"]["info_kind"] == "veth"
    assert link_names(container_netns) == {"lo"}
    assert leases(tmp_path) == []


@pytest.mark.parametrize("rollback", [False, True])
def test_ifname_taken_in_container(rollback: bool, net_backend: str, node_netns: str,
                                   container_netns: str, tmp_path: Path) -> None:
    """Refused before anything is made; with the runtime's rollback DEL the foreign
    eth0 (a veth, but with its peer in the container) survives too: DEL removes only
    a veth whose peer is in the node."""
    cni = NodeCni(with_host_local("bridge", "in-process", tmp_path, rollback=rollback), node_netns)
    ip(container_netns, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0peer")
    with pytest.raises(CNIError) as err:
        cni.add(conf(tmp_path), container_netns, "c0")
    assert err.value.code == 4 and "interface eth0 already exists" in err.value.msg
    assert link_names(container_netns) == {"lo", "eth0", "eth0peer"}
    assert link_names(node_netns) <= {"lo", BRIDGE}
    assert leases(tmp_path) == []
    assert masq_chains(node_netns) == []


def test_failure_after_ipam_leaves_nothing_and_force_address(bare_cni: NodeCni,
                                                             container_netns: str,
                                                             tmp_path: Path) -> None:
    """The bridge holds another IPv4 address: Go's error, after IPAM ran - the lease is
    released and no veth or rule remains. ``forceAddress`` replaces the address."""
    node = bare_cni.node
    ip(node, "link", "add", BRIDGE, "type", "bridge")
    ip(node, "addr", "add", "10.91.0.254/24", "dev", BRIDGE)
    with pytest.raises(CNIError) as err:
        bare_cni.add(conf(tmp_path), container_netns, "c0")
    assert f'"{BRIDGE}" already has an IP address different from 10.91.0.1/24' in err.value.msg
    assert leases(tmp_path) == []
    assert link_names(node) == {"lo", BRIDGE}
    assert link_names(container_netns) == {"lo"}
    assert masq_chains(node) == []

    bare_cni.add(conf(tmp_path, forceAddress=True), container_netns, "c0")
    assert addrs(node, BRIDGE) == {"10.91.0.1/24", "fd91::1/64"}
    assert ping(container_netns, "10.91.0.1")
    bare_cni.delete(conf(tmp_path, forceAddress=True), container_netns, "c0")


def test_late_failure_undoes_veth_and_rules(bare_cni: NodeCni, container_netns: str, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A failure at the very last step (masquerade) undoes everything before it."""
    from corecni_contrib import _masq

    def broken(*_args: object) -> None:
        raise CNIError(999, "masquerade broke")

    monkeypatch.setattr(_masq, "setup", broken)
    with pytest.raises(CNIError, match="masquerade broke"):
        bare_cni.add(conf(tmp_path, macspoofchk=True), container_netns, "c0")
    assert link_names(bare_cni.node) == {"lo"}  # this ADD made the bridge: it goes too
    assert link_names(container_netns) == {"lo"}
    assert leases(tmp_path) == []
    assert "chain cni-br-iface" not in nft(bare_cni.node, "list", "ruleset")


def test_bridge_gone_before_the_port_joins_leaves_nothing(
        bare_cni: NodeCni, container_netns: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """An unknown master (the bridge vanished after it was ensured): the veth batch's
    own rollback removes the pair, IPAM is released, the error names the bridge."""
    from corecni_contrib.bridge import add

    from corecni.net import Link

    monkeypatch.setattr(add, "ensure_bridge",
                        lambda *_: Link(index=999, name=BRIDGE, kind="bridge", mtu=1500,
                                        mac="02:00:00:00:00:01", up=True))
    with pytest.raises(CNIError) as err:
        bare_cni.add(conf(tmp_path, isGateway=False), container_netns, "c0")
    assert err.value.code == 7 and f"to bridge {BRIDGE}: not found" in err.value.msg
    assert link_names(bare_cni.node) == {"lo"}
    assert link_names(container_netns) == {"lo"}
    assert leases(tmp_path) == []


def test_netns_that_is_not_a_netns_via_exec(tmp_path: Path, node_netns: str) -> None:
    """skel refuses a CNI_NETNS that is a plain file with code 4, before the plugin runs."""
    bindir = tmp_path / "bin"
    bridge = install_launcher(bindir, "bridge")
    fake = tmp_path / "not-a-netns"
    fake.write_text("")
    env = {**os.environ, "CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c0", "CNI_NETNS": str(fake),
           "CNI_IFNAME": "eth0", "CNI_PATH": f"{bindir}:{GO_PLUGINS}"}
    plugin = json.dumps({**conf(tmp_path)["plugins"][0], "cniVersion": "1.0.0", "name": "brnet"})
    proc = subprocess.run(["ip", "netns", "exec", ns_name(node_netns), bridge],
                          input=plugin, env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 1
    error = json.loads(proc.stdout)
    assert error["code"] == 4 and "not a network namespace" in error["msg"]
    assert link_names(node_netns) == {"lo"}
    assert leases(tmp_path) == []


BAD_CONFIGS = [
    ({"hairpinMode": True, "promiscMode": True}, "cannot set hairpin mode and promiscuous mode"),
    ({"vlan": 5000}, "invalid VLAN ID 5000"),
    ({"vlanTrunk": [{"minID": 10}]}, "maxID is missing"),
    ({"vlanTrunk": [{"id": 0}]}, "incorrect trunk id parameter"),
    ({"disableContainerInterface": True}, "cannot use IPAM when DisableContainerInterface"),
    ({"mtu": "1400"}, "'mtu' must be an integer"),
    ({"isGateway": "yes"}, "'isGateway' must be a boolean"),
    ({"ipMasqBackend": "pf"}, "unknown ipmasq backend 'pf'"),
    ({"bridge": "a-name-far-too-long"}, "invalid bridge name"),
    ({"runtimeConfig": {"mac": "not-a-mac"}}, "invalid MAC address"),
]


@pytest.mark.parametrize(("extra", "message"), BAD_CONFIGS)
def test_bad_config_is_code_7_and_touches_nothing(extra: dict[str, Any], message: str,
                                                  bare_cni: NodeCni, container_netns: str,
                                                  tmp_path: Path) -> None:
    with pytest.raises(CNIError) as err:
        bare_cni.add(conf(tmp_path, **extra), container_netns, "c0")
    assert err.value.code == 7 and message in str(err.value)
    assert link_names(bare_cni.node) == {"lo"}
    assert leases(tmp_path) == []


# --- options ------------------------------------------------------------------------

def test_l2_only_disabled_interface_promisc_and_dad(cni: NodeCni, netns_factory: NsFactory,
                                                    tmp_path: Path) -> None:
    l2 = {"cniVersion": "1.0.0", "name": "l2net",
          "plugins": [{"type": "bridge", "bridge": BRIDGE, "promiscMode": True,
                       "portIsolation": True, "ipam": {}}]}
    ctrs = [netns_factory("ctr") for _ in range(3)]
    # CNI_ARGS MAC= picks the container MAC
    result = cni.add(l2, ctrs[0], "c0", args=(("MAC", "02:42:ac:11:00:02"),))
    assert "ips" not in result and [i["name"] for i in result["interfaces"]][2] == "eth0"
    eth0 = link_info(ctrs[0], "eth0")
    assert "UP" in eth0["flags"] and eth0["address"] == "02:42:ac:11:00:02"
    assert result["interfaces"][2]["mac"] == "02:42:ac:11:00:02"
    assert link_info(cni.node, BRIDGE)["promiscuity"] >= 1
    assert link_info(cni.node, host_of(result))["linkinfo"]["info_slave_data"]["isolated"] is True
    cni.check(l2, ctrs[0], "c0")

    disabled = json.loads(json.dumps(l2))
    disabled["plugins"][0]["disableContainerInterface"] = True
    cni.add(disabled, ctrs[1], "c1")
    assert "UP" not in link_info(ctrs[1], "eth0")["flags"]

    dad = conf(tmp_path, name="dadnet", enabledad=True, ipMasq=False)
    cni.add(dad, ctrs[2], "c2")
    assert sysctl(ctrs[2], "ipv6/conf/eth0/accept_dad") == "1"
    assert sysctl(ctrs[2], "ipv6/conf/eth0/enhanced_dad") == "1"

    cni.delete(l2, ctrs[0], "c0")
    cni.delete(disabled, ctrs[1], "c1")
    cni.delete(dad, ctrs[2], "c2")
    assert link_names(cni.node) == {"lo", BRIDGE}


def test_macspoofchk_drops_foreign_source_mac(cni: NodeCni, container_netns: str,
                                              tmp_path: Path) -> None:
    cfg = conf(tmp_path, macspoofchk=True)
    result = cni.add(cfg, container_netns, "c0")
    ruleset = nft(cni.node, "list", "table", "bridge", "corecni_macspoofchk")
    mac = result["interfaces"][2]["mac"]
    assert f'iifname "{host_of(result)}" ether saddr != {mac} drop' in ruleset
    assert ping(container_netns, "10.91.0.1")
    ctr = ns_name(container_netns)
    subprocess.run(["ip", "-n", ctr, "link", "set", "eth0", "address", "02:00:00:00:be:ef"],
                   check=True)
    for ns, dev in ((ns_name(cni.node), BRIDGE), (ctr, "eth0")):  # both sides must ARP anew
        subprocess.run(["ip", "-n", ns, "neigh", "flush", "dev", dev], check=True)
    assert not ping(container_netns, "10.91.0.1", deadline=1)
    # control: without the rule the spoofed MAC gets through, so the rule was the cause
    subprocess.run(["ip", "netns", "exec", ns_name(cni.node), "nft", "delete", "table",
                    "bridge", "corecni_macspoofchk"], check=True)
    assert ping(container_netns, "10.91.0.1")
    cni.delete(cfg, container_netns, "c0")
    assert "chain" not in nft(cni.node, "list", "table", "bridge", "corecni_macspoofchk")


def test_iptables_backend_is_gos_layout_and_go_deletes_it(cni: NodeCni, container_netns: str,
                                                          tmp_path: Path) -> None:
    """``ipMasqBackend: iptables`` writes Go's chain and comment, so Go's bridge DEL
    removes what ours added."""
    from corecni_contrib._masq import format_chain_name

    cfg = conf(tmp_path, ipMasqBackend="iptables")
    cni.add(cfg, container_netns, "c0")
    chain = format_chain_name("brnet", "c0")
    saved = iptables_nat(cni.node)
    assert saved.count(f"-j {chain}") == 2  # one jump per family
    assert '--comment "name: \\"brnet\\" id: \\"c0\\""' in saved
    assert "corecni_masquerade" not in nft(cni.node, "list", "tables")
    go = NodeCni(_harness.runtime("go", tmp_path), cni.node)
    go.delete(cfg, container_netns, "c0")
    assert chain not in iptables_nat(cni.node)
    assert leases(tmp_path) == []
    cni.add(cfg, container_netns, "c1")  # and our own DEL removes them too
    assert format_chain_name("brnet", "c1") in iptables_nat(cni.node)
    cni.delete(cfg, container_netns, "c1")
    assert "CNI-" not in iptables_nat(cni.node)


def iptables_nat(ns: str) -> str:
    """Both families' nat tables, as iptables-save prints them."""
    return "".join(subprocess.run(["ip", "netns", "exec", ns_name(ns), tool, "-t", "nat"],
                                  capture_output=True, text=True, check=True).stdout
                   for tool in ("iptables-save", "ip6tables-save"))


def test_status_and_gc(cni: NodeCni, netns_factory: NsFactory, tmp_path: Path) -> None:
    """GC (SPEC 1.1.0) reaches IPAM and the masquerade chains through the bridge plugin:
    an attachment the runtime does not know of (added through another cache) goes."""
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
    other = NodeCni(with_host_local("bridge", "in-process", tmp_path / "other"), cni.node)
    other.add(cfg, ctrs[1], "c1")
    assert len(masq_chains(cni.node)) == 2 and len(leases(tmp_path)) == 4
    with netns.entered(cni.node):
        cni.runtime.gc_network_list(net, [Attachment("c0", "eth0")])
    assert len(masq_chains(cni.node)) == 1 and len(leases(tmp_path)) == 2
    cni.check(cfg, ctrs[0], "c0")
    cni.delete(cfg, ctrs[0], "c0")
    assert masq_chains(cni.node) == [] and leases(tmp_path) == []


def test_vlan_access_and_trunk_ports(cni: NodeCni, container_netns: str, tmp_path: Path) -> None:
    probe = subprocess.run(["ip", "-n", ns_name(cni.node), "link", "add", "vfprobe", "type",
                            "bridge", "vlan_filtering", "1"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip("this kernel has no bridge VLAN filtering (CONFIG_BRIDGE_VLAN_FILTERING)")
    ip(cni.node, "link", "del", "vfprobe")
    cfg = {"cniVersion": "1.0.0", "name": "vlnet", "plugins": [{
        "type": "bridge", "bridge": BRIDGE, "vlan": 100,
        "vlanTrunk": [{"id": 101}, {"minID": 200, "maxID": 202}], "ipam": {}}]}
    result = cni.add(cfg, container_netns, "c0")
    shown = subprocess.run(["ip", "netns", "exec", ns_name(cni.node), "bridge", "-j", "vlan",
                            "show", "dev", host_of(result)], capture_output=True, text=True,
                           check=True).stdout
    vids = {v["vlan"]: v.get("flags", []) for e in json.loads(shown) for v in e["vlans"]}
    assert set(vids) >= {100, 101, 200} and 1 not in vids  # default VLAN dropped
    assert "PVID" in vids[100]
    assert link_info(cni.node, BRIDGE)["linkinfo"]["info_data"]["vlan_filtering"] == 1
    cni.delete(cfg, container_netns, "c0")


# --- config parsing (no kernel) --------------------------------------------------------

def _conf(**raw: Any) -> BridgeConf:
    body = {"cniVersion": "1.0.0", "name": "n", "type": "bridge", **raw}
    return BridgeConf.from_request(Request.for_config("ADD", PluginConfig.from_dict(body),
                                                      args=(("MAC", "02:00:00:00:00:01"),)))


def test_config_defaults_and_trunk_parsing() -> None:
    conf_ = _conf()
    assert (conf_.bridge, conf_.is_gateway, conf_.preserve_default_vlan, conf_.mac) == \
        ("cni0", False, False, "02:00:00:00:00:01")
    assert _conf(isDefaultGateway=True).is_gateway
    trunk = _conf(vlanTrunk=[{"id": 5}, {"minID": 7, "maxID": 9}, {"id": 8}])
    assert trunk.vlan_trunk == (5, 7, 8, 9) and trunk.vlan_filtering
    assert _conf(vlanTrunk=[]).vlan_filtering and not _conf(vlanTrunk=[]).tags_port
    assert _conf(args={"cni": {"mac": "02:00:00:00:00:02"}},
                 runtimeConfig={"mac": "02-00-00-00-00-03"}).mac == "02:00:00:00:00:03"
