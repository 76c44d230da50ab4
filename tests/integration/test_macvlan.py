"""corecni-contrib's macvlan against the kernel, in-process and exec'd through a launcher.

A "node" namespace stands in for the host; a veth pair ``phys0``/``phys0p`` in
it plays the physical NIC the macvlans sit on. IPAM is Debian's Go plugins
(host-local with its store under the test's tmp dir, so "no IP stays reserved"
is checked on disk; static where the addresses must be known). Every lifecycle
test runs once per net backend and once per way of running the plugin
(in-process through the registry, exec'd through an installed launcher).
Kernel state is read back with ``ip -j``, independently of the backend under
test, and connectivity is proven with ping.

The harness (``_harness``) is shared with the other plugin test modules.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from corecni.testing import (
    GO_PLUGINS,
    MODES,
    PluginCni,
    addrs,
    expect_error,
    ip,
    ip_json,
    link_info,
    link_names,
    ns_name,
    ping,
)
from tests.integration._harness import (
    NODE_LINKS,
    WITH_GO_IPAM,
    NsFactory,
    assert_late_failures_leave_nothing,
    assert_one_address_result,
    assert_status_is_ipams,
    host_local,
    install_launcher,
    plugin_cni,
    reserved,
)

pytestmark = [*WITH_GO_IPAM, pytest.mark.usefixtures("root_netns_guard")]


SUBNET = "10.72.0.0/24"  # host-local's, on the node's "LAN" behind phys0


def macvlan(mode: str, node: str, tmp: Path, **kw: Any) -> PluginCni:
    return plugin_cni("macvlan", mode, node, tmp, **kw)


# --- lifecycle ----------------------------------------------------------------

def test_two_containers_in_bridge_mode_talk(variant: str, node: str, netns_factory: NsFactory,
                                            tmp_path: Path) -> None:
    cni = macvlan(variant, node, tmp_path)
    conf = {"type": "macvlan", "master": "phys0", "mtu": 1400,
            "ipam": host_local(tmp_path, SUBNET), "dns": {"nameservers": ["10.72.0.53"]}}
    ctrs = [netns_factory("ctr"), netns_factory("ctr")]
    results = [cni.add(conf, ctr, cid=f"c{i}") for i, ctr in enumerate(ctrs)]
    phys0 = link_info(node, "phys0")["ifindex"]
    for ctr, result in zip(ctrs, results, strict=True):
        link = link_info(ctr, "eth0")
        assert link["linkinfo"]["info_kind"] == "macvlan"
        assert link["linkinfo"]["info_data"]["mode"] == "bridge"
        assert link["link_index"] == phys0 and link["mtu"] == 1400
        assert "UP" in link["flags"]
        assert_one_address_result(result, ctr, link["address"], "10.72.0.1",
                                  {"nameservers": ["10.72.0.53"]})
        cni.check(conf, ctr, cid=f"c{ctrs.index(ctr)}")
    assert link_names(node) == NODE_LINKS  # nothing left behind in the node
    other = results[1]["ips"][0]["address"].split("/")[0]
    assert ping(ctrs[0], other)
    for i, ctr in enumerate(ctrs):
        cni.delete(conf, ctr, cid=f"c{i}")
        cni.delete(conf, ctr, cid=f"c{i}")  # twice: idempotent
        assert link_names(ctr) == {"lo"}
    assert reserved(tmp_path / "ipam") == []
    assert link_names(node) == NODE_LINKS


def test_l2_only_with_mac_from_capability_and_args(variant: str, node: str,
                                                   container_netns: str, tmp_path: Path) -> None:
    """No ipam: only the link, up; ``mac`` from runtimeConfig beats CNI_ARGS beats config."""
    cni = macvlan(variant, node, tmp_path)
    ctr = container_netns
    conf = {"type": "macvlan", "master": "phys0", "mode": "private", "mac": "02:00:00:00:00:01",
            "capabilities": {"mac": True}}
    result = cni.add(conf, ctr, args=(("MAC", "02:00:00:00:00:02"),),
                     capability_args={"mac": "02:00:00:00:00:03"})
    assert result == {"cniVersion": "1.0.0", "dns": {}, "interfaces": [
        {"name": "eth0", "mac": "02:00:00:00:00:03", "sandbox": ctr}]}
    link = link_info(ctr, "eth0")
    assert link["address"] == "02:00:00:00:00:03" and "UP" in link["flags"]
    assert link["linkinfo"]["info_data"]["mode"] == "private"
    cni.check(conf, ctr)
    cni.delete(conf, ctr)
    result = cni.add(conf, ctr, args=(("MAC", "02:00:00:00:00:02"),))
    assert link_info(ctr, "eth0")["address"] == "02:00:00:00:00:02"
    cni.delete(conf, ctr)
    assert link_names(ctr) == {"lo"}


def test_default_master_is_the_default_route_link(node: str, container_netns: str,
                                                  tmp_path: Path) -> None:
    ip(node, "route", "add", "default", "dev", "phys0")
    cni = macvlan("in-process", node, tmp_path)
    conf = {"type": "macvlan", "mode": "vepa", "ipam": host_local(tmp_path, SUBNET)}
    cni.add(conf, container_netns)
    link = link_info(container_netns, "eth0")
    assert link["link_index"] == link_info(node, "phys0")["ifindex"]
    assert link["linkinfo"]["info_data"]["mode"] == "vepa"
    cni.check(conf, container_netns)
    cni.delete(conf, container_netns)
    assert reserved(tmp_path / "ipam") == []


def test_link_in_container(variant: str, node: str, container_netns: str,
                           tmp_path: Path) -> None:
    """``linkInContainer``: the master is a device of the container itself."""
    ctr = container_netns
    ip(ctr, "link", "add", "up0", "type", "veth", "peer", "name", "up0p")
    ip(ctr, "link", "set", "up0", "up")
    cni = macvlan(variant, node, tmp_path)
    conf = {"type": "macvlan", "master": "up0", "linkInContainer": True,
            "ipam": host_local(tmp_path, SUBNET)}
    result = cni.add(conf, ctr)
    link = link_info(ctr, "eth0")
    assert link["linkinfo"]["info_kind"] == "macvlan"
    assert link["link"] == "up0"  # the lower device, in the same namespace
    assert addrs(ctr, "eth0") == {result["ips"][0]["address"]}
    cni.check(conf, ctr)
    cni.delete(conf, ctr)
    assert link_names(ctr) == {"lo", "up0", "up0p"}
    assert link_names(node) == NODE_LINKS


def test_result_equals_go_macvlan(node: str, netns_factory: NsFactory, tmp_path: Path) -> None:
    """Same config (fixed MAC, static IPAM with its own DNS, config DNS) through Debian's
    Go macvlan and ours: byte-for-byte the same result."""
    conf = {"type": "macvlan", "master": "phys0", "mode": "bridge", "mac": "02:00:00:00:aa:01",
            "dns": {"nameservers": ["192.0.2.53"], "search": ["example"]},
            "ipam": {"type": "static",
                     "addresses": [{"address": "10.72.0.10/24", "gateway": "10.72.0.1"}],
                     "routes": [{"dst": "0.0.0.0/0"}, {"dst": "198.51.100.0/24",
                                                       "gw": "10.72.0.254"}],
                     "dns": {"nameservers": ["10.72.0.53"]}}}
    ctr = netns_factory("ctr")
    results = {}
    for impl in ("go", "ours"):
        cni = macvlan("in-process", node, tmp_path / impl, go=impl == "go")
        results[impl] = cni.add(conf, ctr)
        routes = {r["dst"]: r.get("gateway") for r in ip_json(ctr, "route", "show")}
        assert routes["default"] == "10.72.0.1" and routes["198.51.100.0/24"] == "10.72.0.254"
        cni.check(conf, ctr)
        cni.delete(conf, ctr)
        assert link_names(ctr) == {"lo"}
    assert results["ours"] == results["go"]
    l2 = {"type": "macvlan", "master": "phys0", "mac": "02:00:00:00:aa:02"}
    for impl in ("go", "ours"):
        cni = macvlan("in-process", node, tmp_path / f"l2{impl}", go=impl == "go")
        results[impl] = cni.add(l2, ctr)
        cni.delete(l2, ctr)
    assert results["ours"] == results["go"]


def test_check_detects_drift(variant: str, node: str, container_netns: str,
                             tmp_path: Path) -> None:
    ctr = container_netns
    cni = macvlan(variant, node, tmp_path)
    conf = {"type": "macvlan", "master": "phys0", "ipam": host_local(tmp_path, SUBNET)}
    result = cni.add(conf, ctr)
    address = result["ips"][0]["address"]
    cni.check(conf, ctr)
    ip(ctr, "route", "del", "default")
    with expect_error(999, "0.0.0.0/0", "missing"):
        cni.check(conf, ctr)
    ip(ctr, "route", "add", "default", "via", "10.72.0.1", "dev", "eth0")
    cni.check(conf, ctr)
    ip(ctr, "addr", "del", address, "dev", "eth0")
    with expect_error(999, address, "missing"):
        cni.check(conf, ctr)
    ip(ctr, "link", "del", "eth0")
    ip(ctr, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0p")
    with expect_error(999, "eth0", "not of type macvlan"):
        cni.check(conf, ctr)
    ip(ctr, "link", "del", "eth0")
    with expect_error(999, "eth0", "not found"):
        cni.check(conf, ctr)
    cni.delete(conf, ctr)
    assert reserved(tmp_path / "ipam") == []


def test_check_detects_mode_drift(variant: str, node: str, container_netns: str,
                                  tmp_path: Path) -> None:
    """The mode changed behind the plugin's back: CHECK names the expected and the
    found mode; changed back, CHECK passes again."""
    ctr = container_netns
    cni = macvlan(variant, node, tmp_path)
    conf = {"type": "macvlan", "master": "phys0", "mode": "bridge",
            "ipam": host_local(tmp_path, SUBNET)}
    cni.add(conf, ctr)
    cni.check(conf, ctr)
    ip(ctr, "link", "set", "eth0", "type", "macvlan", "mode", "private")
    assert link_info(ctr, "eth0")["linkinfo"]["info_data"]["mode"] == "private"
    with expect_error(999, "eth0", "mode", "'bridge'", "'private'"):
        cni.check(conf, ctr)
    cni.check(conf | {"mode": "private"}, ctr)  # the config that matches the kernel passes
    ip(ctr, "link", "set", "eth0", "type", "macvlan", "mode", "bridge")
    cni.check(conf, ctr)
    cni.delete(conf, ctr)
    assert reserved(tmp_path / "ipam") == []


# --- DEL is idempotent ----------------------------------------------------------

def test_del_without_add_twice_and_with_netns_gone(variant: str, node: str,
                                                   netns_factory: NsFactory,
                                                   tmp_path: Path) -> None:
    cni = macvlan(variant, node, tmp_path)
    conf = {"type": "macvlan", "master": "phys0", "ipam": host_local(tmp_path, SUBNET)}
    ctr = netns_factory("ctr")
    cni.delete(conf, ctr)  # never added
    cni.delete(conf, "")  # no netns at all
    cni.add(conf, ctr)
    assert len(reserved(tmp_path / "ipam")) == 1
    subprocess.run(["ip", "netns", "del", ns_name(ctr)], check=True)
    cni.delete(conf, ctr)  # the container is gone: IPAM is still released
    cni.delete(conf, ctr)
    assert reserved(tmp_path / "ipam") == []
    assert link_names(node) == NODE_LINKS


# --- errors leave nothing behind -----------------------------------------------

@pytest.mark.parametrize("mode", MODES)
def test_errors_are_clear_and_leave_nothing(mode: str, node: str, container_netns: str,
                                            tmp_path: Path) -> None:
    ctr = container_netns
    cni = macvlan(mode, node, tmp_path)
    ipam = host_local(tmp_path, SUBNET)

    def nothing_left(*in_ctr: str) -> None:
        assert link_names(ctr) == {"lo", *in_ctr}
        assert link_names(node) == NODE_LINKS
        assert reserved(tmp_path / "ipam") == []

    with expect_error(7, '"nope0"', "master"):
        cni.add({"type": "macvlan", "master": "nope0", "ipam": ipam}, ctr)
    nothing_left()
    with expect_error(7, "macvlan mode", "passthrough"):
        cni.add({"type": "macvlan", "master": "phys0", "mode": "passthrough", "ipam": ipam}, ctr)
    nothing_left()
    with expect_error(7, "MTU 9000", "1500"):
        cni.add({"type": "macvlan", "master": "phys0", "mtu": 9000, "ipam": ipam}, ctr)
    nothing_left()
    with expect_error(7, "MAC"):
        cni.add({"type": "macvlan", "master": "phys0", "mac": "zz:00", "ipam": ipam}, ctr)
    nothing_left()
    with expect_error(7, "no default route"):
        cni.add({"type": "macvlan", "ipam": ipam}, ctr)
    nothing_left()
    # the IPAM plugin fails after the link exists: the link goes again; CNI_IFNAME
    # taken in the container: refused, and the existing link survives the runtime's
    # rollback DEL (it is not a macvlan)
    assert_late_failures_leave_nothing(cni, {"type": "macvlan", "master": "phys0", "ipam": ipam},
                                       ctr, tmp_path, nothing_left)
    assert link_info(ctr, "eth0")["linkinfo"]["info_kind"] == "veth"


def test_status(variant: str, node: str, tmp_path: Path) -> None:
    """STATUS is the IPAM plugin's: ready without IPAM, else what the IPAM plugin says."""
    assert_status_is_ipams("macvlan", variant, node, tmp_path,
                           {"type": "macvlan", "master": "phys0"})


def test_launcher_exec_by_hand_speaks_0_4_0(node: str, container_netns: str,
                                                 tmp_path: Path) -> None:
    """The exec'd launcher prints exactly what the in-process plugin returns."""
    conf = {"cniVersion": "0.4.0", "name": "wire", "type": "macvlan", "master": "phys0",
            "mac": "02:00:00:00:bb:01"}
    binary = install_launcher(tmp_path / "bin", "macvlan")
    env = {**os.environ, "CNI_COMMAND": "ADD", "CNI_CONTAINERID": "w1",
           "CNI_NETNS": container_netns, "CNI_IFNAME": "net1", "CNI_PATH": GO_PLUGINS}
    out = subprocess.run(["ip", "netns", "exec", ns_name(node), binary],
                         input=json.dumps(conf).encode(), env=env, capture_output=True,
                         check=True).stdout
    assert json.loads(out) == {"cniVersion": "0.4.0", "dns": {}, "interfaces": [
        {"name": "net1", "mac": "02:00:00:00:bb:01", "sandbox": container_netns}]}
    subprocess.run(["ip", "netns", "exec", ns_name(node), binary],
                   input=json.dumps(conf).encode(), env={**env, "CNI_COMMAND": "DEL"},
                   check=True, capture_output=True)
    assert link_names(container_netns) == {"lo"}
