"""corecni-contrib's host-device against the kernel, in-process and exec'd.

The "physical" device is one end (``phys1``) of a veth pair in the node
namespace; its peer ``phys1p`` stays on the node with 10.73.0.1, so a
container that received ``phys1`` proves connectivity by pinging the node
through it. Go's host-device (Debian's 1.1.1) runs the same configs for the
result comparison and to show that each implementation can undo the other's
ADD (the node name travels in the link alias).
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from corecni.testing import (
    PluginCni,
    addrs,
    eventually,
    expect_error,
    ip,
    link_info,
    link_names,
    ns_name,
    ping,
)
from tests.integration._harness import (
    WITH_GO_IPAM,
    NsFactory,
    assert_late_failures_leave_nothing,
    assert_one_address_result,
    assert_status_is_ipams,
    host_local,
    plugin_cni,
    reserved,
)

pytestmark = WITH_GO_IPAM

NODE_LINKS = {"lo", "phys1", "phys1p"}


@pytest.fixture
def node(node_netns: str) -> str:
    ip(node_netns, "link", "add", "phys1", "type", "veth", "peer", "name", "phys1p")
    ip(node_netns, "addr", "add", "10.73.0.1/24", "dev", "phys1p")
    ip(node_netns, "link", "set", "phys1", "up")
    ip(node_netns, "link", "set", "phys1p", "up")
    return node_netns


def host_device(mode: str, node: str, tmp: Path, go: bool = False) -> PluginCni:
    return plugin_cni("host-device", mode, node, tmp, go=go)


def ipam(tmp: Path) -> dict[str, Any]:
    return host_local(tmp, "10.73.0.0/24")


def back_on_node(node: str) -> None:
    """phys1 is home again: its own name, no alias left."""
    assert link_names(node) == NODE_LINKS
    assert link_info(node, "phys1").get("ifalias", "") == ""


def test_move_in_configure_ping_and_move_back(variant: str, node: str, container_netns: str,
                                              tmp_path: Path) -> None:
    ctr = container_netns
    mac = link_info(node, "phys1")["address"]
    cni = host_device(variant, node, tmp_path)
    conf = {"type": "host-device", "device": "phys1", "ipam": ipam(tmp_path),
            "dns": {"nameservers": ["10.73.0.53"]}}
    result = cni.add(conf, ctr)
    assert link_names(node) == {"lo", "phys1p"}
    assert addrs(node, "phys1p") == {"10.73.0.1/24"}  # the node side is untouched
    link = link_info(ctr, "eth0")
    assert link["linkinfo"]["info_kind"] == "veth" and link["address"] == mac
    assert link["ifalias"] == "phys1" and "UP" in link["flags"]
    assert_one_address_result(result, ctr, mac, "10.73.0.1", {"nameservers": ["10.73.0.53"]})
    assert ping(ctr, "10.73.0.1")
    cni.check(conf, ctr)
    cni.delete(conf, ctr)
    back_on_node(node)
    assert link_names(ctr) == {"lo"}
    assert addrs(node, "phys1") == set()  # the container's address did not come along
    cni.delete(conf, ctr)  # twice: idempotent
    back_on_node(node)
    assert reserved(tmp_path / "ipam") == []


def test_by_hwaddr_without_ipam(variant: str, node: str, container_netns: str,
                                tmp_path: Path) -> None:
    ctr = container_netns
    mac = link_info(node, "phys1")["address"]
    cni = host_device(variant, node, tmp_path)
    conf = {"type": "host-device", "hwaddr": mac.upper()}
    result = cni.add(conf, ctr, ifname="net1")
    assert result == {"cniVersion": "1.0.0", "dns": {},
                      "interfaces": [{"name": "net1", "mac": mac, "sandbox": ctr}]}
    assert link_info(ctr, "net1")["ifalias"] == "phys1"
    cni.check(conf, ctr, ifname="net1")
    cni.delete(conf, ctr, ifname="net1")
    back_on_node(node)


def test_result_equals_go_and_each_undoes_the_other(node: str, container_netns: str,
                                                     tmp_path: Path) -> None:
    ctr = container_netns
    conf = {"type": "host-device", "device": "phys1", "dns": {"search": ["example"]},
            "ipam": {"type": "static", "addresses": [{"address": "10.73.0.10/24",
                                                      "gateway": "10.73.0.1"}],
                     "routes": [{"dst": "0.0.0.0/0"}]}}
    go = host_device("in-process", node, tmp_path / "go", go=True)
    ours = host_device("in-process", node, tmp_path / "ours")
    go_result = go.add(conf, ctr)
    ours.delete(conf, ctr)  # our DEL undoes Go's ADD
    back_on_node(node)
    our_result = ours.add(conf, ctr)
    assert our_result == go_result
    assert ping(ctr, "10.73.0.1")
    go.delete(conf, ctr)  # and Go's DEL undoes ours (1.1.1 leaves the alias set)
    assert link_names(node) == NODE_LINKS
    l2 = {"type": "host-device", "device": "phys1"}
    go_l2 = go.add(l2, ctr)
    go.delete(l2, ctr)
    assert ours.add(l2, ctr) == go_l2
    ours.delete(l2, ctr)
    back_on_node(node)


def test_check_detects_drift(variant: str, node: str, container_netns: str,
                             tmp_path: Path) -> None:
    ctr = container_netns
    cni = host_device(variant, node, tmp_path)
    conf = {"type": "host-device", "device": "phys1", "ipam": ipam(tmp_path)}
    address = cni.add(conf, ctr)["ips"][0]["address"]
    ip(ctr, "route", "del", "default")
    with expect_error(999, "0.0.0.0/0", "missing"):
        cni.check(conf, ctr)
    ip(ctr, "addr", "del", address, "dev", "eth0")
    with expect_error(999, address, "missing"):
        cni.check(conf, ctr)
    ip(ctr, "link", "set", "eth0", "name", "other0")
    with expect_error(999, "eth0", "not found"):
        cni.check(conf, ctr)
    ip(ctr, "link", "set", "other0", "name", "eth0")
    cni.delete(conf, ctr)
    back_on_node(node)
    assert reserved(tmp_path / "ipam") == []


def test_del_without_add_and_with_netns_gone(variant: str, node: str,
                                             netns_factory: NsFactory, tmp_path: Path) -> None:
    cni = host_device(variant, node, tmp_path)
    conf = {"type": "host-device", "device": "phys1", "ipam": ipam(tmp_path)}
    ctr = netns_factory("ctr")
    cni.delete(conf, ctr)  # never added
    cni.delete(conf, "")
    back_on_node(node)
    cni.add(conf, ctr)
    assert len(reserved(tmp_path / "ipam")) == 1
    # a virtual device dies with its namespace (a physical one would return to init_net)
    subprocess.run(["ip", "netns", "del", ns_name(ctr)], check=True)
    cni.delete(conf, ctr)
    cni.delete(conf, ctr)
    assert reserved(tmp_path / "ipam") == []
    # the namespace is torn down asynchronously; the veth peer goes with it
    assert eventually(lambda: link_names(node) == {"lo"})


@pytest.mark.parametrize("mode", ["in-process", "exec"])
def test_errors_are_clear_and_leave_nothing(mode: str, node: str, container_netns: str,
                                            tmp_path: Path) -> None:
    ctr = container_netns
    cni = host_device(mode, node, tmp_path)

    def untouched(*in_ctr: str) -> None:
        back_on_node(node)
        assert "UP" in link_info(node, "phys1")["flags"]  # as it was before the ADD
        assert link_names(ctr) == {"lo", *in_ctr}
        assert reserved(tmp_path / "ipam") == []

    with expect_error(7, '"nope1"', "host device"):
        cni.add({"type": "host-device", "device": "nope1", "ipam": ipam(tmp_path)}, ctr)
    untouched()
    with expect_error(7, "02:00:00:00:00:99"):
        cni.add({"type": "host-device", "hwaddr": "02:00:00:00:00:99"}, ctr)
    untouched()
    with expect_error(7, "specify either"):
        cni.add({"type": "host-device", "ipam": ipam(tmp_path)}, ctr)
    untouched()
    with expect_error(7, "/sys/devices/"):
        cni.add({"type": "host-device", "kernelpath": "/etc"}, ctr)
    untouched()
    # IPAM fails once the device is in the container: it is moved back, up again;
    # CNI_IFNAME is taken: refused before the device moves; the rollback DEL leaves
    # the container's own eth0 alone (it carries no alias of ours)
    assert_late_failures_leave_nothing(
        cni, {"type": "host-device", "device": "phys1", "ipam": ipam(tmp_path)}, ctr, tmp_path,
        untouched)


def test_status(variant: str, node: str, tmp_path: Path) -> None:
    """STATUS is the IPAM plugin's: ready without IPAM, else what the IPAM plugin says."""
    assert_status_is_ipams("host-device", variant, node, tmp_path,
                           {"type": "host-device", "device": "phys1"})

